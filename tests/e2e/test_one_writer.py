"""A dataset folder nobody can silently corrupt: one writer at a time (two real `render-tag render`
processes), `render --force` with planted links deletes nothing outside OUT, and the manifest says
what happened (times, input, output, totals, job wall times; a resume of a finished folder renders
nothing and says so)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from render_tag.batch.launcher import BpyModuleLauncher
from render_tag.cli import main as cli_main
from render_tag.dataset.folder import LOCK_NAME
from render_tag_shared.recipe import recipe_hash

from .test_pool import manifest, telemetry, tiny_recipe, write_recipes
from .test_render_flow import stand_in

__all__ = ["stand_in"]  # the fixture, shared with test_render_flow


def cli(*args: str) -> list[str]:
    """`render-tag ARGS` as its own process."""
    return [sys.executable, "-c", "import sys; from render_tag.cli import main; sys.exit(main())", *args]


def label_files(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "labels").glob("*.json"))}


def test_two_writers_into_one_folder_the_second_is_refused(tmp_path: Path) -> None:
    """Two renders of different recipe files started together: one renders, the other is refused
    (exit 2, naming the holder) and so are --force and --resume while the first still runs; the
    folder holds only the first job's files and its manifest says so."""
    # Slow enough (128 samples) that the winner, either one, still holds OUT through three more CLI
    # starts on a loaded machine.
    jobs = {
        "a": [tiny_recipe(i, samples=128) for i in range(8)],
        "b": [tiny_recipe(100 + i, samples=128) for i in range(5)],
    }
    paths = {name: write_recipes(tmp_path / f"{name}.json", r, job=f"job-{name}") for name, r in jobs.items()}
    out = tmp_path / "out"
    started = {
        name: subprocess.Popen(
            cli("render", str(path), "-o", str(out), "--workers", "1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, path in paths.items()
    }
    try:
        # The one refused leaves at once; the other holds OUT and renders.
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in started.values()):
            assert time.monotonic() < deadline, "neither render ended: no second writer was refused"
            time.sleep(0.05)
        (loser,) = [name for name, p in started.items() if p.poll() is not None]
        (winner,) = [name for name in started if name != loser]
        refused = started[loser]
        err = refused.communicate(timeout=30)[1]
        holder = started[winner]
        assert refused.returncode == 2, err
        assert f"pid {holder.pid} on host {socket.gethostname()}, since " in err, err
        assert f"render-tag render {paths[winner].resolve()}" in err and "Traceback" not in err, err

        # While it runs, neither --force nor --resume (of either job) may take the folder.
        for argv in (
            ("render", str(paths[loser]), "-o", str(out), "--force"),
            ("render", str(paths[winner]), "-o", str(out), "--resume"),
            ("render", str(paths[winner]), "-o", str(out), "--force"),
        ):
            again = subprocess.run(cli(*argv), capture_output=True, text=True, timeout=120)
            assert again.returncode == 2 and f"pid {holder.pid} " in again.stderr, (argv, again.stderr)
        assert holder.poll() is None, "the first render ended too early to test a second writer against it"
        assert holder.wait(timeout=600) == 0, holder.communicate()[1]
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    expected = {r.image_id(0): recipe_hash(r) for r in jobs[winner]}
    labels = label_files(out)
    assert {image_id: doc["recipe_hash"] for image_id, doc in labels.items()} == expected
    assert {p.stem for p in (out / "images").glob("*.png")} == set(expected)
    doc = manifest(out)
    assert doc["status"] == "complete" and doc["recipes"] == str(paths[winner].resolve())
    assert doc["plan"]["job_id"] == f"job-{winner}" and doc["summary"]["done"] == len(jobs[winner])
    assert doc["output"] == str(out.resolve())
    assert not (out / LOCK_NAME).exists()
    runs = [e for e in telemetry(out) if e["event"] == "run_started"]
    assert [e["recipes"] for e in runs] == [str(paths[winner].resolve())], "the refused runs left telemetry"


def test_force_with_planted_links_deletes_nothing_outside_out(
    tmp_path: Path, stand_in: BpyModuleLauncher, monkeypatch: Any, capsys: Any
) -> None:
    import render_tag.batch.render

    monkeypatch.setattr(render_tag.batch.render, "make_launcher", lambda blender=None: stand_in)
    recipes = [tiny_recipe(0), tiny_recipe(1)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    assert cli_main(["render", str(path), "-o", str(out), "--workers", "1"]) == 0

    # Someone links images/ and a label file out of the folder, with files of the same names there.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "images").mkdir(parents=True)
    sentinels = {
        elsewhere / "images" / "scene000000_cam00.png": "a picture that is not the dataset's",
        elsewhere / "images" / "holiday.png": "someone's holiday",
        elsewhere / "labels.json": "someone's file",
        elsewhere / "telemetry.ndjson": "someone's log",
    }
    for sentinel, text in sentinels.items():
        sentinel.write_text(text)
    for image in (out / "images").iterdir():
        image.unlink()
    (out / "images").rmdir()
    (out / "images").symlink_to(elsewhere / "images", target_is_directory=True)
    (out / "labels" / "scene000009_cam00.json").symlink_to(elsewhere / "labels.json")
    (out / "telemetry.ndjson").unlink()
    (out / "telemetry.ndjson").symlink_to(elsewhere / "telemetry.ndjson")
    capsys.readouterr()

    for flag in ("--force", "--resume"):
        assert cli_main(["render", str(path), "-o", str(out), "--workers", "1", flag]) == 2
        err = capsys.readouterr().err
        assert f"{out / 'images'}: is a symbolic link (to {elsewhere / 'images'}) (and 2 more)" in err, err
        assert "never follows a link" in err and "Traceback" not in err
        for sentinel, text in sentinels.items():
            assert sentinel.read_text() == text, sentinel
        assert sorted(p.name for p in (elsewhere / "images").iterdir()) == [
            "holiday.png",
            "scene000000_cam00.png",
        ]
        assert (out / "labels" / "scene000009_cam00.json").is_symlink()

    # Links gone, --force renders OUT again and still nothing outside it changes.
    for link in ("images", "labels/scene000009_cam00.json", "telemetry.ndjson"):
        (out / link).unlink()
    assert cli_main(["render", str(path), "-o", str(out), "--workers", "1", "--force"]) == 0
    assert {p.stem for p in (out / "images").glob("*.png")} == {"scene000000_cam00", "scene000001_cam00"}
    for sentinel, text in sentinels.items():
        assert sentinel.read_text() == text, sentinel


def test_the_manifest_says_what_happened_and_resume_renders_nothing(
    tmp_path: Path, stand_in: BpyModuleLauncher, monkeypatch: Any, capsys: Any
) -> None:
    import render_tag.batch.render

    monkeypatch.setattr(render_tag.batch.render, "make_launcher", lambda blender=None: stand_in)
    recipes = [tiny_recipe(i, cameras=1 + i % 2) for i in range(3)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    before = time.time()
    assert cli_main(["render", str(path), "-o", str(out), "--workers", "1"]) == 0
    after = time.time()
    first = manifest(out)
    assert first["recipes"] == str(path.resolve()) and first["output"] == str(out.resolve())
    assert len(first["plan_hash"]) == 64
    assert before <= first["created_at"] == first["started_at"] <= first["finished_at"] <= after
    assert {k: first["summary"][k] for k in ("done", "skipped", "failed", "pending")} == {
        "done": 3,
        "skipped": 0,
        "failed": 0,
        "pending": 0,
    }
    for job in first["jobs"]:
        assert first["started_at"] <= job["started_at"] <= job["finished_at"] <= first["finished_at"]
        assert job["wall_s"] == pytest.approx(job["finished_at"] - job["started_at"], abs=1e-3)
        assert job["wall_s"] >= job["timings"]["total"] - 1e-3  # the host's clock includes the worker's
    capsys.readouterr()

    # --resume of the finished folder: nothing rendered, no worker started, and the user is told.
    images = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    assert cli_main(["render", str(path), "-o", str(out), "--workers", "1", "--resume"]) == 0
    said = capsys.readouterr().out
    assert "0 done, 3 skipped, 0 failed" in said
    assert f"nothing to render: all 3 scenes in {out} were complete and are skipped" in said
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == images
    second = manifest(out)
    assert second["created_at"] == first["created_at"] and second["started_at"] > first["finished_at"]
    assert second["finished_at"] >= second["started_at"] and second["status"] == "complete"
    assert {k: second["summary"][k] for k in ("done", "skipped", "failed")} == {
        "done": 3,
        "skipped": 3,
        "failed": 0,
    }
    assert all(job["resumed"] for job in second["jobs"])
    assert [job["wall_s"] for job in second["jobs"]] == [job["wall_s"] for job in first["jobs"]]
    started = [e for e in telemetry(out) if e["event"] == "worker_started"]
    assert len(started) == 1, "the resume started a worker"
    assert os.listdir(out).count(LOCK_NAME) == 0
