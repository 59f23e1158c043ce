"""The plan/chunk contract with real workers: `render-chunk` per cluster index, and `render --dask`.

Real Blender workers (the `bpy` module), a real Dask LocalCluster on loopback (worker processes with
nannies), real files; tiny renders (160x120, 4 Cycles samples). What is checked: the same image bytes
as the local pool, a chunk whose Dask worker is killed mid-run is retried and the dataset is complete,
a transient failure is retried by Dask while a plan that does not match its hash is refused once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import distributed  # the `dask` extra: part of the dev environment (make setup)
import psutil
import pytest

from render_tag.batch.dask_engine import (
    DASK_CONFIG,
    BlenderWorkerPlugin,
    ChunkRefused,
    chunk_attempts,
    local_cluster,
    submit_chunks,
)
from render_tag.batch.launcher import make_launcher
from render_tag.batch.options import RenderOptions, WorkerLimits
from render_tag.batch.plan import PlanHashMismatch, build_plan, dump_plan, load_plan
from render_tag.cli import main as cli_main
from render_tag.pipeline import render_and_merge
from render_tag_shared.recipe_io import load_recipe_file

from .test_pool import alive, manifest, telemetry, tiny_recipe, wait_gone, write_recipes

SCENES = 6


def image_hashes(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "images").glob("*.png"))
    }


@pytest.fixture(scope="module")
def recipes_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dask_recipes")
    return write_recipes(folder / "recipes.json", [tiny_recipe(i, samples=4) for i in range(SCENES)])


@pytest.fixture(scope="module")
def pool_reference(recipes_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The image hashes of the local pool with 2 workers: what every other path must reproduce."""
    out = tmp_path_factory.mktemp("pool") / "out"
    assert cli_main(["render", str(recipes_path), "-o", str(out), "--workers", "2"]) == 0
    hashes = image_hashes(out)
    assert len(hashes) == SCENES
    return hashes


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, Any]]:
    """A Dask cluster on loopback (2 worker processes, 1 thread each), as `--dask local:2` starts its
    own, and a client of it."""
    with local_cluster(2, silence_logs=logging.CRITICAL) as local, distributed.Client(local) as client:
        yield local, client


def test_dask_local_gives_the_bytes_of_the_local_pool(
    recipes_path: Path, pool_reference: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dask"
    assert cli_main(["render", str(recipes_path), "-o", str(out), "--dask", "local:2"]) == 0
    assert image_hashes(out) == pool_reference
    assert manifest(out)["status"] == "complete"
    assert (out / "rich_truth.json").is_file()  # merged as `render` merges
    started = next(e for e in telemetry(out) if e["event"] == "dask_started")
    assert started["dask_workers"] == 2
    assert started["scheduler"].startswith("tcp://127.0.0.1:")  # loopback only
    assert started["untuned_workers"] == {}  # its own cluster runs with DASK_CONFIG
    # Each Dask worker kept one Blender worker for all its chunks.
    logs = sorted((out / "logs").glob("dask-*"))
    assert len(logs) <= 2 and all(len(list(folder.glob("worker-*.log"))) == 1 for folder in logs)
    assert started["chunks"] > len(logs)
    # ... and says so in its telemetry: one Blender start, then every chunk's steps in order.
    chunks_seen: list[int] = []
    for folder in logs:
        events = telemetry(folder)
        assert [e["event"] for e in events].count("worker_started") == 1
        assert [e["event"] for e in events].count("worker_ready") == 1
        for chunk in {e["chunk"] for e in events if "chunk" in e}:
            steps = [e for e in events if e.get("chunk") == chunk]
            names = [e["event"] for e in steps]
            assert names[0] == "chunk_started" and names[-1] == "chunk_finished"
            assert {"job_started", "job_finished", "chunk_rendered"} <= set(names)
            assert [e["t"] for e in steps] == sorted(e["t"] for e in steps)
            chunks_seen.append(chunk)
    assert sorted(chunks_seen) == list(range(started["chunks"]))
    plan = load_plan(out / "plan.json", expected_hash=started["plan_hash"])
    assert plan.num_jobs == SCENES
    assert "render [" in capfd.readouterr().err  # the progress display


def test_render_chunk_per_cluster_index_assembles_to_the_pool_bytes(
    recipes_path: Path,
    pool_reference: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan_path = tmp_path / "plan.json"
    assert cli_main(["plan", str(recipes_path), "-o", str(plan_path), "--chunk-size", "4"]) == 0
    folders = []
    for index in (1, 0):  # a Kubernetes Indexed Job: the index is the chunk, in any order
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        folder = tmp_path / f"chunk-{index}"
        assert cli_main(["render-chunk", str(plan_path), "-o", str(folder), "--workers", "1"]) == 0
        result = json.loads((folder / "chunk.json").read_text())
        assert result["chunk"] == index and result["status"] == "complete"
        listed = {f["path"]: f["sha256"] for f in result["files"]}
        assert {Path(p).name: h for p, h in listed.items() if p.startswith("images/")} == image_hashes(folder)
        assert len(listed) == 2 * len(image_hashes(folder))  # every image and its label
        folders.append(folder)
    # The scheduler retries an index that already finished: nothing is rendered again.
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    assert cli_main(["render-chunk", str(plan_path), "-o", str(folders[1]), "--workers", "1"]) == 0
    assert all(job["resumed"] for job in manifest(folders[1])["jobs"])
    dest = tmp_path / "assembled"
    assert cli_main(["merge", *map(str, folders), "-o", str(dest)]) == 0
    assert image_hashes(dest) == pool_reference
    # One chunk short is refused.
    assert cli_main(["merge", str(folders[0]), "-o", str(tmp_path / "short")]) == 1


def test_a_chunk_whose_dask_worker_is_killed_mid_run_is_retried(
    recipes_path: Path, pool_reference: dict[str, str], cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    local, client = cluster
    out = tmp_path / "out"
    options = RenderOptions(dask=local.scheduler_address, chunk_size=SCENES, progress=False)
    outcome: dict[str, Any] = {}

    def render() -> None:
        try:
            outcome["result"] = render_and_merge(load_recipe_file(recipes_path), out, options)
        except BaseException as exc:  # surfaced by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    first_image = out / "images" / f"{tiny_recipe(0).image_id(0)}.png"
    killed: list[int] = []
    blender: list[int] = []
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline and thread.is_alive():
        running = [w for w, keys in client.processing().items() if any("render-tag-chunk" in k for k in keys)]
        if running and first_image.is_file():  # the chunk is mid-run: one scene done, five to go
            pid = client.run(os.getpid, workers=running)[running[0]]
            children = psutil.Process(pid).children(recursive=True)
            blender = [p.pid for p in children if "-c" in p.cmdline()]  # the launcher's `python -c`
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.02)
    thread.join(timeout=120)
    assert killed, "the chunk finished before it could be killed"
    assert not thread.is_alive() and "error" not in outcome
    assert blender and wait_gone(blender) == [], "the killed worker's Blender outlived it"
    assert not alive(killed[0])

    result = outcome["result"]
    assert result.render.manifest.status == "complete"
    assert result.merge is not None and result.merge.num_images == SCENES
    assert image_hashes(out) == pool_reference  # complete, and the retry made the same bytes
    finished = next(e for e in telemetry(out) if e["event"] == "dask_finished")
    assert finished["chunk_attempts"] == {"0": 2}  # started, killed, started again by Dask
    jobs = manifest(out)["jobs"]
    assert all(job["status"] == "done" for job in jobs)


def test_a_transient_failure_is_retried_and_a_bad_plan_is_not(
    cluster: tuple[Any, Any], tmp_path: Path
) -> None:
    local, client = cluster
    # A render of seconds against a timeout of 10 ms: every attempt hangs past its timeout and is killed.
    recipes = write_recipes(tmp_path / "recipes.json", [tiny_recipe(0, samples=512)])

    # Every render times out (a hung Blender): Dask retries the chunk `retries` times, then gives up.
    out = tmp_path / "timeout"
    options = RenderOptions(dask=local.scheduler_address, timeout_s=0.01, retries=1, progress=False)
    rendered = render_and_merge(load_recipe_file(recipes), out, options)
    assert rendered.render.manifest.status == "failed"
    job = manifest(out)["jobs"][0]
    assert (job["status"], job["error_type"]) == ("failed", "TransientChunkError")
    assert "RenderTimeout" in job["error_message"]
    finished = next(e for e in telemetry(out) if e["event"] == "dask_finished")
    assert finished["chunk_attempts"] == {"0": 2}

    # A plan whose content no longer matches its hash: refused as a value, so never retried.
    plan = build_plan(
        load_recipe_file(recipes), addon_version="0.1.0", blender_version="4.2.23", chunk_size=1
    )
    data = json.loads(dump_plan(plan))
    data["recipe_file"]["recipes"][0]["renderer"]["samples"] = 64
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(data), encoding="utf-8")
    run_id = "tampered-plan"
    futures = submit_chunks(client, plan, plan_path, tmp_path / "bad", "no-plugin", retries=3, run_id=run_id)
    (value,) = client.gather(list(futures))
    assert isinstance(value, ChunkRefused)
    error = value.error()
    assert isinstance(error, PlanHashMismatch) and error.retryable is False
    assert (error.source, error.field) == (str(plan_path.resolve()), "plan_hash")
    assert chunk_attempts(client, run_id) == {0: 1}
    assert not (tmp_path / "bad").exists()


def test_a_local_cluster_is_tuned_and_leaves_the_environment_alone(tmp_path: Path) -> None:
    """`--dask local` starts its workers with DASK_CONFIG (no profiler sampling every 10 ms, checks once
    a second); the nannies' variables (MALLOC_TRIM_THRESHOLD_ ...) stay in the Dask workers: neither
    this process nor a Dask worker's Blender inherits them."""
    before = dict(os.environ)
    with local_cluster(1, silence_logs=logging.CRITICAL) as local, distributed.Client(local) as client:
        assert dict(os.environ) == before
        settings = client.run(lambda: {key: dask.config.get(key) for key in DASK_CONFIG})
        assert list(settings.values()) == [DASK_CONFIG]
        assert list(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == ["65536"]
        name = "render-tag-environment-test"
        plugin = BlenderWorkerPlugin(make_launcher(None), WorkerLimits(), threads={})
        client.register_plugin(plugin, name=name)

        def blender_environment(dask_worker: Any) -> dict[str, str]:
            return dict(dask_worker.plugins[name].launcher.environ())

        (environment,) = client.run(blender_environment).values()
        assert "MALLOC_TRIM_THRESHOLD_" not in environment and "OMP_NUM_THREADS" not in environment
        assert environment["PATH"] == os.environ["PATH"]
        client.unregister_worker_plugin(name)
    assert dict(os.environ) == before
