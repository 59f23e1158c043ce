"""Dask distributed against the local pool on the same job, side by side (`make bench`; not a test).

The same recipes (the default job's scenes at 320x240) rendered three ways, each with 2 Blender workers
of 1 thread: `render --workers 2` (the local pool), `render --dask local:2` (a LocalCluster started and
stopped by the command, so its start-up is in the time), and `render --dask tcp://...` against a cluster
already running (the cost of the engine alone). Prints the times, the ratios and whether the images are
byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pool_bench import job_recipes, timed_render, write


def image_hashes(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "images").glob("*.png"))
    }


def timed_dask(recipes_path: Path, out: Path, address: str) -> float:
    import contextlib
    import io

    from render_tag.cli.render import main_render

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main_render(recipes_path, out, dask=address, progress=False, memory_limit_mb=None)
    if code != 0:
        raise SystemExit(f"dask render failed ({code}); see {out}/manifest.json")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 scenes instead of 24")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="the test suite's size: 4 tiny scenes")
    args = parser.parse_args(argv)
    import distributed

    root = Path(tempfile.mkdtemp(prefix="render_tag_dask_bench_"))
    count = 4 if args.smoke else 12 if args.quick else 24
    size = (160, 120) if args.smoke else (320, 240)
    samples = 2 if args.smoke else args.samples
    recipes_path = write(root / "recipes.json", job_recipes(count, size, samples))
    t_pool = timed_render(recipes_path, root / "pool", workers=2)
    t_local = timed_dask(recipes_path, root / "dask_local", "local:2")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster),
    ):
        t_running = timed_dask(recipes_path, root / "dask_running", cluster.scheduler_address)
    reference = image_hashes(root / "pool")
    same = all(image_hashes(root / name) == reference for name in ("dask_local", "dask_running"))
    print(
        f"5. Dask vs local pool, 2 workers x 1 thread, {count} scenes {size[0]}x{size[1]} {samples} spp: "
        f"pool {t_pool:.1f} s; --dask local:2 {t_local:.1f} s ({t_local / t_pool:.2f}x, cluster start-up "
        f"included); --dask tcp:// on a running cluster {t_running:.1f} s ({t_running / t_pool:.2f}x); "
        f"images byte-identical: {same}  [target within 10 %]"
    )
    print(
        json.dumps(
            {
                "pool_2_workers_s": t_pool,
                "dask_local_2_s": t_local,
                "dask_running_2_s": t_running,
                "same": same,
            }
        )
    )
    shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
