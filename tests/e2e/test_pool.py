"""The headless batch: persistent bpy workers over ZeroMQ, the manifest, resume, crashes and sharding.

Real workers (the `bpy` module in child processes), real sockets on loopback and real files; tiny
renders (160x120, 2 Cycles samples) keep the file to about a minute on two cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from render_tag.batch.shards import resolve_shard, shard_slice
from render_tag.cli.render import main_render
from render_tag_shared.messages import (
    Heartbeat,
    RenderReply,
    RenderRequest,
    Shutdown,
    decode_host_message,
    decode_worker_message,
    encode,
)
from render_tag_shared.recipe import RecipeFile, SceneRecipe
from render_tag_shared.recipe_io import dump_recipe_file

from ..builders import look_at, pinhole


def tiny_recipe(scene_id: int, samples: int = 2, hdri: str | None = None, cameras: int = 1) -> SceneRecipe:
    """A tag (two for odd scenes) on a grey plane, seen from above at 160x120."""
    objects: list[dict[str, Any]] = [
        {"type": "PLANE", "name": "ground", "size_m": [2.0, 2.0], "pose": {"position": [0, 0, -0.001]}},
        {
            "type": "TAG",
            "name": "t0",
            "tag_family": "tag36h11",
            "tag_id": scene_id % 500,
            "size_mm": 120,
            "pose": {"position": [-0.1, 0.0, 0.0]},
        },
    ]
    if scene_id % 2:
        objects.append(
            {
                "type": "TAG",
                "name": "t1",
                "tag_family": "DICT_4X4_50",
                "tag_id": scene_id % 50,
                "size_mm": 100,
                "pose": {"position": [0.15, 0.05, 0.0]},
            }
        )
    world: dict[str, Any] = {"lights": [{"type": "SUN", "energy": 3.0, "pose": {"position": [0, 0, 3]}}]}
    if hdri is not None:
        world["hdri"] = {"path": hdri}
    return SceneRecipe.model_validate(
        {
            "scene_id": scene_id,
            "random_seed": 1000 + scene_id,
            "world": world,
            "renderer": {"mode": "cycles", "samples": samples, "seed": scene_id},
            "objects": objects,
            "cameras": [
                {
                    "name": f"cam{c}",
                    "cam_to_world": look_at([0.05 * c, -0.3, 0.9], [0, 0, 0]),
                    "intrinsics": pinhole(fx=150, fy=150, cx=79.5, cy=59.5, resolution=(160, 120)),
                }
                for c in range(cameras)
            ],
        }
    )


def write_recipes(path: Path, recipes: list[SceneRecipe], job: str = "test-job") -> Path:
    path.write_text(dump_recipe_file(RecipeFile(job_id=job, recipes=recipes)), encoding="utf-8")
    return path


def telemetry(out: Path) -> list[dict[str, Any]]:
    path = out / "telemetry.ndjson"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nState:\tZ" in status:
            return False
    return True


def worker_pids(out: Path) -> list[int]:
    return [e["pid"] for e in telemetry(out) if e["event"] == "worker_started"]


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


# -- without Blender --------------------------------------------------------------------------------


def test_messages_round_trip_as_json() -> None:
    request = RenderRequest(job_index=3, recipe=tiny_recipe(3), out_dir="/tmp/x y'\"")
    assert decode_host_message(encode(request)) == request
    assert isinstance(decode_host_message(encode(Shutdown())), Shutdown)
    beat = Heartbeat(
        worker_id="w0.1", pid=1, rss_mb=280.5, cpu_percent=99.0, renders_done=2, state="rendering"
    )
    assert decode_worker_message(encode(beat)) == beat
    reply = RenderReply(
        worker_id="w0.1", job_index=3, status="error", error_type="RuntimeError", error_message="x"
    )
    assert decode_worker_message(encode(reply)) == reply
    with pytest.raises(ValueError):
        decode_worker_message(b"\x80\x04pickle")
    with pytest.raises(ValueError):
        decode_worker_message(
            json.dumps({"kind": "reply", "worker_id": "w", "job_index": 1, "status": "maybe"}).encode()
        )


def test_shards_partition_the_job_deterministically() -> None:
    from render_tag.compile import shard_range

    recipes = [tiny_recipe(i) for i in range(7)]
    slices = [shard_slice(recipes, (i, 3)) for i in range(3)]
    # Contiguous blocks, as `compile --shard` cuts them: the shards in order are the whole job.
    assert [r.scene_id for s in slices for r in s] == list(range(7))
    assert [[r.scene_id for r in s] for s in slices] == [[0, 1], [2, 3], [4, 5, 6]]
    assert all([r.scene_id for r in slices[i]] == list(shard_range(7, (i, 3))) for i in range(3))
    assert resolve_shard("2/4", {}) == (2, 4)
    assert resolve_shard(None, {}) == (0, 1)
    assert resolve_shard(None, {"CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "3"}) == (1, 3)
    assert resolve_shard("*/5", {"JOB_COMPLETION_INDEX": "4"}) == (4, 5)
    assert resolve_shard(None, {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "RENDER_TAG_SHARD_COUNT": "3"}) == (2, 3)
    from render_tag_shared.errors import InputError

    bad_inputs = (("3/3", {}), ("x", {}), ("*/2", {}), ("*/x", {"JOB_COMPLETION_INDEX": "0"}), ("-1/2", {}))
    for bad, env in (*bad_inputs, (None, {"AWS_BATCH_JOB_ARRAY_INDEX": "0"})):
        with pytest.raises(InputError):
            resolve_shard(bad, env)


# -- with real workers ------------------------------------------------------------------------------


def test_two_workers_render_every_scene_and_a_second_plan_is_refused(tmp_path: Path, capsys: Any) -> None:
    recipes = [tiny_recipe(i, cameras=2 if i == 0 else 1) for i in range(4)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / 'o u\'t "q" $HOME;{x}\\'  # travels as data, never as code
    assert main_render(path, out, workers=2) == 0
    expected = {
        "scene000000_cam00",
        "scene000000_cam01",
        "scene000001_cam00",
        "scene000002_cam00",
        "scene000003_cam00",
    }
    assert {p.stem for p in (out / "images").glob("*.png")} == expected
    assert {p.stem for p in (out / "labels").glob("*.json")} == expected
    doc = manifest(out)
    assert doc["status"] == "complete" and len(doc["plan_hash"]) == 64
    assert [j["status"] for j in doc["jobs"]] == ["done"] * 4
    for job in doc["jobs"]:
        assert set(job["timings"]) == {"build", "render", "post", "write", "total"}
        assert job["timings"]["render"] > 0 and job["attempts"] == 1
    events = telemetry(out)
    ready = [e for e in events if e["event"] == "worker_ready"]
    assert len(ready) == 2 and all(e["threads"] >= 1 for e in ready)
    assert {j["worker"] for j in doc["jobs"]} <= {e["worker"] for e in ready}
    assert not [e for e in events if e["event"] == "worker_restart"]
    # The workers end through the interpreter's normal teardown (no os._exit) and exit 0: the add-on
    # unregisters at exit, so the bpy module shuts Blender down without a crash.
    assert [e["exit_code"] for e in events if e["event"] == "worker_stopped"] == [0, 0]
    assert wait_gone(worker_pids(out)) == []
    assert json.loads((out / "coco_labels.json").read_text())["images"], "the render merges at its end"
    summary = capsys.readouterr().out
    assert "4 done, 0 skipped, 0 failed" in summary and "img/s" in summary

    # Resume of a complete folder: nothing to do, nothing started.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    assert main_render(path, out, workers=2, resume=True) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == before
    assert "0 done, 4 skipped" in capsys.readouterr().out

    # Another plan (one recipe changed) is refused, and nothing is written.
    manifest_bytes = (out / "manifest.json").read_bytes()
    changed = [tiny_recipe(0, samples=3, cameras=2), *recipes[1:]]
    other = write_recipes(tmp_path / "other.json", changed)
    assert main_render(other, out, workers=2, resume=True) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "plan_hash" in err and "recipes_sha256" in err
    assert main_render(path, out, workers=2) == 2  # neither --resume nor --force
    assert "--resume" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == manifest_bytes


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    from render_tag.dataset.merge import merge_dataset

    recipes = [tiny_recipe(i, samples=24) for i in range(8)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            labels = list((out / "labels").glob("*.json")) if (out / "labels").is_dir() else []
            ready = [e["pid"] for e in telemetry(out) if e["event"] == "worker_ready"]
            if labels and ready:
                time.sleep(0.3)  # a label was just written: now both workers are inside a render
                os.kill(ready[0], signal.SIGKILL)
                killed.append(ready[0])
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    assert main_render(path, out, workers=2) == 0
    thread.join(timeout=5)
    assert killed, "the worker was never killed"
    events = telemetry(out)
    restarts = [e for e in events if e["event"] == "worker_restart"]
    assert [e["reason"] for e in restarts] == ["crash"] and restarts[0]["exit_code"] == -signal.SIGKILL
    crashed = [e for e in events if e["event"] == "job_attempt_failed"]
    assert crashed and crashed[0]["error_type"] == "WorkerCrashed"
    doc = manifest(out)
    assert [j["status"] for j in doc["jobs"]] == ["done"] * 8
    assert any(j["attempts"] == 2 for j in doc["jobs"])

    report = merge_dataset(out)
    assert report.num_images == 8
    coco = json.loads((out / "coco_labels.json").read_text())
    files = [image["file_name"] for image in coco["images"]]
    assert sorted(files) == sorted(f"images/scene{i:06d}_cam00.png" for i in range(8))
    assert len(set(files)) == len(files)
    expected_records = sum(2 if i % 2 else 1 for i in range(8))
    keys = [
        (a["image_id"], a["category_id"], a.get("attributes", {}).get("tag_id", a.get("tag_id")))
        for a in coco["annotations"]
    ]
    assert len(coco["annotations"]) == expected_records and len(set(keys)) == len(keys)
    assert wait_gone(worker_pids(out)) == []


def render_host(recipes: Path, out: Path, cwd: Path, **popen: Any) -> subprocess.Popen[Any]:
    """`render-tag render RECIPES -o OUT` with one worker, as a process of its own (to kill or attack)."""
    code = (
        "import sys; from render_tag.cli.render import main_render; "
        "sys.exit(main_render(sys.argv[1], sys.argv[2], workers=1, progress=False))"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(recipes), str(out)], cwd=cwd, **popen)


def test_a_killed_host_resumes_without_redoing_finished_images(tmp_path: Path) -> None:
    recipes = [tiny_recipe(i, samples=16) for i in range(8)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    host = render_host(path, out, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if sum(j["status"] == "done" for j in manifest(out)["jobs"]) >= 3:
                    break
            assert host.poll() is None, "the host finished before it could be killed"
            time.sleep(0.02)
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
    finally:
        if host.poll() is None:
            host.kill()
    assert wait_gone(worker_pids(out)) == [], "a worker outlived its host"

    doc = manifest(out)
    done = [j for j in doc["jobs"] if j["status"] == "done"]
    assert 3 <= len(done) < 8
    before = {
        j["image_ids"][0]: (out / "images" / f"{j['image_ids'][0]}.png").stat().st_mtime_ns for j in done
    }
    # A half-written job: its image is there but its labels are not.
    torn = done[-1]["image_ids"][0]
    (out / "labels" / f"{torn}.json").unlink()

    assert main_render(path, out, workers=1, resume=True, progress=False) == 0
    doc = manifest(out)
    assert doc["status"] == "complete"
    assert [j["status"] for j in doc["jobs"]] == ["done"] * 8
    for image_id, mtime in before.items():
        now = (out / "images" / f"{image_id}.png").stat().st_mtime_ns
        assert (now != mtime) == (image_id == torn), image_id
    resumed = {j["image_ids"][0] for j in doc["jobs"] if j["resumed"]}
    assert resumed == set(before) - {torn}
    assert len(list((out / "images").glob("*.png"))) == 8
    assert len(list((out / "labels").glob("*.json"))) == 8


def test_a_recipe_naming_a_missing_asset_is_refused_before_any_worker_starts(
    tmp_path: Path, capsys: Any
) -> None:
    """Bad input, not a crash: exit 2 naming the file and field, no worker, nothing written."""
    missing = str(tmp_path / "no such folder" / "sky.hdr")
    recipes = [tiny_recipe(0), tiny_recipe(1, hdri=missing), tiny_recipe(2)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    started = time.monotonic()
    assert main_render(path, out, workers=2, retries=1) == 2
    assert time.monotonic() - started < 5, "a worker was started"
    assert not out.exists(), "something was written"
    err = capsys.readouterr().err
    assert "recipes[1].world.hdri.path" in err and "sky.hdr" in err and str(path) in err
    assert "Traceback" not in err


def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_folder(tmp_path: Path) -> None:
    # The last scene takes seconds (512 samples): when two scenes are done it cannot be, so Ctrl-C
    # always lands in the middle of the render, however fast the machine.
    recipes = [*(tiny_recipe(i, samples=16) for i in range(5)), tiny_recipe(5, samples=512)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    code = (
        "import sys; from render_tag.cli.render import main_render; "
        "sys.exit(main_render(sys.argv[1], sys.argv[2], workers=2, progress=False))"
    )
    host = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(out)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "two scenes were not done within 120 s"
            with contextlib.suppress(OSError, ValueError, KeyError):
                jobs = manifest(out)["jobs"]
                if sum(j["status"] == "done" for j in jobs) >= 2:
                    assert jobs[-1]["status"] != "done", "the slow scene finished too early"
                    break
            assert host.poll() is None, "the host exited before it could be interrupted"
            time.sleep(0.02)
        host.send_signal(signal.SIGINT)
        _, err = host.communicate(timeout=30)
    finally:
        if host.poll() is None:
            host.kill()
    assert host.returncode == 130, err
    assert "--resume" in err
    doc = manifest(out)
    assert doc["status"] == "interrupted"
    assert {j["status"] for j in doc["jobs"]} <= {"done", "pending"}
    assert wait_gone(worker_pids(out)) == []
    assert main_render(path, out, workers=2, resume=True, progress=False) == 0
    assert manifest(out)["status"] == "complete"
    assert len(list((out / "images").glob("*.png"))) == 6


def test_merging_the_shards_gives_the_dataset_of_one_run(tmp_path: Path) -> None:
    from render_tag.dataset.merge import merge_dataset

    path = write_recipes(tmp_path / "recipes.json", [tiny_recipe(i) for i in range(5)])
    whole, merged = tmp_path / "whole", tmp_path / "merged"
    assert main_render(path, whole, workers=2, progress=False) == 0
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    for index, folder in enumerate(shards):
        assert main_render(path, folder, workers=1, shard=f"{index}/2", progress=False) == 0
    assert [len(manifest(f)["jobs"]) for f in shards] == [2, 3]
    assert [j["scene_id"] for f in shards for j in manifest(f)["jobs"]] == list(range(5))
    merge_dataset(whole)
    merge_dataset(shards, merged)
    for name in ("coco_labels.json", "rich_truth.json", "ground_truth.csv", "recipes.json"):
        assert (merged / name).read_bytes() == (whole / name).read_bytes(), name
    for sub in ("images", "labels"):
        names = sorted(p.name for p in (whole / sub).iterdir())
        assert names == sorted(p.name for p in (merged / sub).iterdir())
        for name in names:
            assert (merged / sub / name).read_bytes() == (whole / sub / name).read_bytes(), name


def test_the_launch_expression_carries_no_path(tmp_path: Path) -> None:
    from render_tag.batch.launcher import LAUNCH_PROGRAM, BlenderBinaryLauncher, WorkerSettings

    launcher = BlenderBinaryLauncher("/opt/blender 4.2/blender")
    settings = WorkerSettings("w0.1", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", threads=3)
    command = launcher.command(settings)
    assert command[:4] == ["/opt/blender 4.2/blender", "-b", "--factory-startup", "--python-exit-code"]
    assert command[-2:] == ["--python-expr", LAUNCH_PROGRAM] and command[5:7] == ["-t", "3"]
    assert "/" not in LAUNCH_PROGRAM and '.worker")' in LAUNCH_PROGRAM  # the add-on's own worker
    payload = settings.payload(launcher)
    assert payload["addon_module"] == "bl_ext.user_default.render_tag" and payload["host_pid"] == os.getpid()


def test_a_blender_binary_launcher_runs_the_same_worker(tmp_path: Path, monkeypatch: Any) -> None:
    """A stand-in `blender` that checks its arguments and runs the expression with this Python."""
    fake = tmp_path / "bin dir" / "blender"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "args = sys.argv[1:]\n"
        "if '--version' in args:\n"
        "    print('Blender 4.2.23 LTS'); sys.exit(0)\n"
        "assert args[:2] == ['-b', '--factory-startup'], args\n"
        "os.execv(sys.executable, [sys.executable, '-c', args[args.index('--python-expr') + 1]])\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("BLENDER", str(fake))
    path = write_recipes(tmp_path / "recipes.json", [tiny_recipe(0), tiny_recipe(1)])
    out = tmp_path / "out"
    assert main_render(path, out, workers=1, progress=False) == 0
    started = [e for e in telemetry(out) if e["event"] == "run_started"]
    assert "Blender binary" in started[0]["launcher"]
    assert manifest(out)["plan"]["blender_version"] == "4.2.23"
    assert len(list((out / "images").glob("*.png"))) == 2


def test_a_hung_render_and_a_memory_ceiling_restart_the_worker(tmp_path: Path, capsys: Any) -> None:
    # A render far longer than its timeout: killed, reported, and the worker replaced.
    slow = write_recipes(tmp_path / "slow.json", [tiny_recipe(0, samples=512)])
    out = tmp_path / "slow"
    assert main_render(slow, out, workers=1, timeout_s=0.5, retries=0, progress=False) == 1
    job = manifest(out)["jobs"][0]
    assert job["status"] == "failed" and job["error_type"] == "RenderTimeout"
    assert [e["reason"] for e in telemetry(out) if e["event"] == "worker_restart"] == ["render_timeout"]
    assert wait_gone(worker_pids(out)) == []

    # Workers use about 280 MB: a 100 MB ceiling recycles the worker after every scene.
    path = write_recipes(tmp_path / "recipes.json", [tiny_recipe(i) for i in range(3)])
    out = tmp_path / "memory"
    assert main_render(path, out, workers=1, memory_limit_mb=100, progress=False) == 0
    recycled = [e for e in telemetry(out) if e["event"] == "worker_recycle"]
    assert [e["reason"] for e in recycled] == ["memory_limit"] * 2 and recycled[0]["rss_mb"] > 100
    assert len({j["worker"] for j in manifest(out)["jobs"]}) == 3
    assert "3 done" in capsys.readouterr().out
