"""Dask distributed against the local pool on the same job, side by side (`make bench`; not a test).

The same recipes (the default job's scenes at 320x240) rendered three ways, each with 2 Blender workers
of 1 thread: `render --workers 2` (the local pool), `render --dask local:2` (a LocalCluster started and
stopped by the command, so its start-up is in the time), and `render --dask tcp://...` against a cluster
already running, started as `--dask local` starts its own (dask_engine.local_cluster: the cost of the
engine alone). Each round runs the three back to back (the order alternates between rounds, so a load
that drifts does not always favour the same one) and prints the load, the times, the ratios, the time
Blender spent in its render stage (a Blender slowed by the engine's own processes shows there; time
between chunks shows as wall time beyond it) and whether the images are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from pool_bench import job_recipes, timed_render, write


def image_hashes(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "images").glob("*.png"))
    }


def render_stage_s(out: Path) -> float:
    """Seconds Blender spent in its render call, summed over the scenes (the manifest's timings)."""
    jobs = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["jobs"]
    return sum((job.get("timings") or {}).get("render", 0.0) for job in jobs)


def one_round(recipes_path: Path, root: Path, reverse: bool) -> dict[str, float]:
    import distributed

    from render_tag.batch.dask_engine import local_cluster

    def pool() -> float:
        return timed_render(recipes_path, root / "pool", workers=2)

    def local() -> float:
        return timed_render(recipes_path, root / "dask_local", dask="local:2")

    def running() -> float:
        with local_cluster(2) as cluster, distributed.Client(cluster):
            return timed_render(recipes_path, root / "dask_running", dask=cluster.scheduler_address)

    order = [("pool", pool), ("local", local), ("running", running)]
    times: dict[str, float] = {}
    for name, run in reversed(order) if reverse else order:
        times[name] = run()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 scenes instead of 24, one round")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the three (default 2; 1 quick)")
    parser.add_argument("--smoke", action="store_true", help="the test suite's size: 4 tiny scenes")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick or args.smoke else 2)

    root = Path(tempfile.mkdtemp(prefix="render_tag_dask_bench_"))
    count = 4 if args.smoke else 12 if args.quick else 24
    size = (160, 120) if args.smoke else (320, 240)
    samples = 2 if args.smoke else args.samples
    recipes_path = write(root / "recipes.json", job_recipes(count, size, samples))
    ratios: dict[str, list[float]] = {"local": [], "running": []}
    same = True
    records = []
    for index in range(rounds):
        load_before = os.getloadavg()[0]
        for name in ("pool", "dask_local", "dask_running"):
            shutil.rmtree(root / name, ignore_errors=True)
        t = one_round(recipes_path, root, reverse=index % 2 == 1)
        load_after = os.getloadavg()[0]
        stage = {name: render_stage_s(root / name) for name in ("pool", "dask_local", "dask_running")}
        reference = image_hashes(root / "pool")
        differ = {
            name: sorted(
                key for key, digest in image_hashes(root / name).items() if reference.get(key) != digest
            )
            for name in ("dask_local", "dask_running")
        }
        same_now = not any(differ.values())
        if not same_now:
            kept = root / f"round{index + 1}"
            kept.mkdir()
            for name in ("pool", "dask_local", "dask_running"):
                (root / name).rename(kept / name)
            print(f"images that differ from the pool's: {differ}; outputs kept in {kept}")
        same = same and same_now
        ratios["local"].append(t["local"] / t["pool"])
        ratios["running"].append(t["running"] / t["pool"])
        print(
            f"5. Dask vs local pool, round {index + 1}/{rounds} "
            f"(load {load_before:.1f} -> {load_after:.1f}), 2 workers x 1 thread, "
            f"{count} scenes {size[0]}x{size[1]} {samples} spp: pool {t['pool']:.1f} s; "
            f"--dask local:2 {t['local']:.1f} s ({t['local'] / t['pool']:.2f}x, cluster start-up included); "
            f"--dask tcp:// on a running cluster {t['running']:.1f} s ({t['running'] / t['pool']:.2f}x); "
            f"Blender render stage {stage['pool']:.1f} / {stage['dask_local']:.1f} / "
            f"{stage['dask_running']:.1f} s; images byte-identical: {same_now}  [target within 10 %]"
        )  # fmt: skip
        records.append(
            {
                "load_1min": [load_before, load_after],
                "pool_2_workers_s": t["pool"],
                "dask_local_2_s": t["local"],
                "dask_running_2_s": t["running"],
                "render_stage_s": stage,
                "same": same_now,
            }
        )
    if rounds > 1:
        print(
            f"5. Dask vs local pool, median of {rounds} rounds: --dask local:2 "
            f"{statistics.median(ratios['local']):.2f}x, running cluster "
            f"{statistics.median(ratios['running']):.2f}x  [target within 10 %]"
        )
    print(json.dumps(records))
    if same:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
