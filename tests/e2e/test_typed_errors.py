"""Typed errors and failing fast: bad recipes are refused before any worker starts (exit 2, file and
field named, nothing written); a worker reports bad input as not retryable; a transient failure (a
worker killed mid-job) is retried and the retry renders the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from render_tag.batch.launcher import make_launcher
from render_tag.batch.options import WorkerLimits
from render_tag.batch.pool import Job, JobOutcome, WorkerPool
from render_tag.cli.render import main_render
from render_tag_shared.recipe import SceneRecipe

from ..builders import time_limit
from .test_pool import tiny_recipe

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00"


def recipe_dict(scene_id: int = 0) -> dict[str, Any]:
    return tiny_recipe(scene_id).model_dump(mode="json")


def with_texture(path: Callable[[Path], str]) -> Callable[[Path], dict[str, Any]]:
    def make(folder: Path) -> dict[str, Any]:
        recipe = recipe_dict()
        recipe["objects"][0]["texture"] = path(folder)
        return recipe

    return make


def text_file(folder: Path) -> str:
    (folder / "notes.png").write_text("not an image", encoding="utf-8")
    return str(folder / "notes.png")


def huge_resolution(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    recipe["cameras"][0]["intrinsics"]["resolution"] = [100000, 100000]
    return recipe


def many_cameras(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    camera = recipe["cameras"][0]
    recipe["cameras"] = [{**camera, "name": f"cam{i}"} for i in range(1001)]
    return recipe


def bright_light(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    recipe["world"]["lights"][0]["energy"] = 4e307
    return recipe


def long_shutter(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    recipe["cameras"][0]["dynamics"] = {"shutter_s": 1e308}
    return recipe


def bool_samples(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    recipe["renderer"]["samples"] = True
    return recipe


def hdri_folder(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    (folder / "sky.hdr").mkdir()
    recipe["world"]["hdri"] = {"path": str(folder / "sky.hdr")}
    return recipe


def background_device(folder: Path) -> dict[str, Any]:
    recipe = recipe_dict()
    recipe["world"]["background_texture"] = "/dev/zero"
    return recipe


RECIPE_CASES: list[tuple[str, Callable[[Path], dict[str, Any]], list[str]]] = [
    ("resolution 100000²", huge_resolution, ["recipes[1].cameras[0].intrinsics.resolution[0]"]),
    ("1001 cameras", many_cameras, ["recipes[1].cameras", "64"]),
    ("light of 4e307 W", bright_light, ["recipes[1].world.lights[0].energy"]),
    ("shutter of 1e308 s", long_shutter, ["recipes[1].cameras[0].dynamics.shutter_s"]),
    ("samples true", bool_samples, ["recipes[1].renderer.samples", "True"]),
    (
        "missing texture",
        with_texture(lambda f: str(f / "wood.png")),
        ["recipes[1].objects[0].texture", "wood.png"],
    ),
    ("texture is a folder", with_texture(lambda f: str(f)), ["recipes[1].objects[0].texture", "a folder"]),
    ("texture is not an image", with_texture(text_file), ["recipes[1].objects[0].texture", "not an image"]),
    (
        "texture is /proc",
        with_texture(lambda f: "/proc/self/status"),
        ["recipes[1].objects[0].texture", "empty"],
    ),
    ("hdri is a folder", hdri_folder, ["recipes[1].world.hdri.path", "a folder"]),
    ("background is /dev/zero", background_device, ["recipes[1].world.background_texture", "not a regular"]),
]


@pytest.mark.parametrize(("name", "make", "words"), RECIPE_CASES, ids=[case[0] for case in RECIPE_CASES])
def test_a_bad_recipe_is_refused_before_any_worker_starts(
    name: str, make: Callable[[Path], dict[str, Any]], words: list[str], tmp_path: Path, capsys: Any
) -> None:
    good = recipe_dict(1)
    bad = make(tmp_path)
    bad["scene_id"] = 1
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps({"job_id": "t", "recipes": [recipe_dict(0), bad, good | {"scene_id": 2}]}))
    out = tmp_path / "out"
    with time_limit(30):  # a worker would take longer than this to start and render a 100000² frame
        code = main_render(path, out, workers=1, retries=2, progress=False)
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists(), "something was written"
    assert "Traceback" not in err and err.startswith(f"render-tag: error: {path}: "), err
    for word in words:
        assert word in err, err


def run_pool(
    recipes: list[SceneRecipe],
    out: Path,
    *,
    retries: int = 2,
    on_start: Callable[[WorkerPool, Job, str], None] | None = None,
) -> tuple[list[JobOutcome], list[dict[str, Any]]]:
    """Renders `recipes` on one real worker; the outcomes and the pool's telemetry events."""
    outcomes: list[JobOutcome] = []
    events: list[dict[str, Any]] = []
    jobs = [Job(index=i, recipe=r, out_dir=out.resolve()) for i, r in enumerate(recipes)]
    pool = WorkerPool(make_launcher(None), WorkerLimits(retries=retries), workers=1, telemetry=events.append)
    with pool:
        pool.run(
            jobs,
            on_start=(lambda job, worker: on_start(pool, job, worker)) if on_start else None,
            on_finish=outcomes.append,
        )
    return sorted(outcomes, key=lambda o: o.job.index), events


def test_a_worker_reports_bad_input_as_not_retryable(tmp_path: Path) -> None:
    """An asset the host never saw (gone since, or checked on another machine) fails once: no retry."""
    missing = str(tmp_path / "gone" / "sky.hdr")
    outcomes, events = run_pool([tiny_recipe(0), tiny_recipe(1, hdri=missing)], tmp_path / "out", retries=2)
    done, failed = outcomes
    assert done.status == "done"
    assert failed.status == "failed" and failed.attempts == 1, failed
    assert failed.error_type == "InputError"
    assert "world.hdri.path" in (failed.error_message or "") and "sky.hdr" in (failed.error_message or "")
    attempts = [e for e in events if e["event"] == "job_attempt_failed"]
    assert len(attempts) == 1 and attempts[0]["retryable"] is False
    assert not [e for e in events if e["event"] == "worker_restart"], "bad input must not cost a worker"


def image_hashes(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "images").glob("*.png"))
    }


def test_a_retry_after_a_killed_worker_renders_the_same_bytes(tmp_path: Path) -> None:
    """SIGKILL the worker mid-job (a real process kill): the job is retried as transient and its image
    and labels are byte-identical to a clean run's."""
    recipes = [tiny_recipe(0, samples=32, cameras=3), tiny_recipe(1, samples=16)]
    clean, _ = run_pool(recipes, tmp_path / "clean")
    assert [o.status for o in clean] == ["done", "done"] and all(o.attempts == 1 for o in clean)

    killed: list[int] = []

    def kill_first_attempt(pool: WorkerPool, job: Job, worker_id: str) -> None:
        if job.index != 0 or job.attempts != 1:
            return
        slot = next(s for s in pool.supervisor.slots if s.worker_id == worker_id)
        assert slot.process is not None
        pid = slot.process.pid
        first_image = tmp_path / "retried" / "images" / "scene000000_cam00.png"

        def kill() -> None:  # mid-job: the first camera is written, two more are still to render
            deadline = time.monotonic() + 120
            while not first_image.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        threading.Thread(target=kill, daemon=True).start()

    started = time.monotonic()
    retried, events = run_pool(recipes, tmp_path / "retried", on_start=kill_first_attempt)
    assert killed, "the worker was never killed"
    assert [o.status for o in retried] == ["done", "done"], retried
    assert retried[0].attempts == 2, "the killed job was not retried"
    failures = [e for e in events if e["event"] == "job_attempt_failed"]
    assert [(e["error_type"], e["retryable"]) for e in failures] == [("WorkerCrashed", True)]
    assert time.monotonic() - started < 300
    clean_images, retried_images = image_hashes(tmp_path / "clean"), image_hashes(tmp_path / "retried")
    assert len(clean_images) == 4 and retried_images == clean_images
    for label in sorted((tmp_path / "clean" / "labels").glob("*.json")):
        assert (tmp_path / "retried" / "labels" / label.name).read_bytes() == label.read_bytes(), label.name
