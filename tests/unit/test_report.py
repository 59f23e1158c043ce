"""The report and what commands say: the page's sections from what OUT holds, the render cost read from
telemetry and the manifest, the figures' axes, the contact sheet's marks on a far marker, and each
command's closing block (files, report, next command)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from render_tag.batch.telemetry import Progress
from render_tag.cli import main as cli_main
from render_tag.dataset.completeness import hash_job_files
from render_tag.dataset.merge import merge_dataset
from render_tag.qa.plots import histogram_png, offsets_png
from render_tag.qa.preview import make_preview
from render_tag.qa.runstats import read_run_stats
from render_tag_shared.recipe import SceneRecipe, recipe_hash

from ..builders import build_dataset, charuco_scene, tag_scene

T0 = 1_800_000_000.0


def _telemetry(out: Path, jobs: list[dict[str, Any]] | None = None) -> None:
    """A run's telemetry and manifest; `jobs` (image ids, hashes) as the dataset in `out` has them."""
    events = [
        {"t": T0, "event": "run_started", "workers": 2, "todo": 2, "skipped": 0, "launcher": "bpy"},
        {"t": T0 + 0.1, "event": "worker_started", "worker": "w0.1", "reason": "start"},
        {"t": T0 + 1.6, "event": "worker_ready", "worker": "w0.1"},
        {"t": T0 + 2.0, "event": "heartbeat", "worker": "w0.1", "rss_mb": 300.0, "peak_rss_mb": 310.0},
        {"t": T0 + 4.0, "event": "worker_restart", "worker": "w0.1", "reason": "crash"},
        {"t": T0 + 4.1, "event": "worker_started", "worker": "w0.2", "reason": "crash"},
        {"t": T0 + 5.0, "event": "worker_ready", "worker": "w0.2"},
        {"t": T0 + 6.0, "event": "heartbeat", "worker": "w0.2", "rss_mb": 280.0, "peak_rss_mb": 280.0},
        {"t": T0 + 7.0, "event": "run_finished", "status": "complete", "elapsed_s": 7.0, "done": 2,
         "failed": 0, "images": 4},
    ]  # fmt: skip
    text = "".join(json.dumps(e) + "\n" for e in events) + '{"t": 1800000009, "event": "torn'
    (out / "telemetry.ndjson").write_text(text)
    jobs = jobs or [
        {"job_index": 0, "status": "done", "worker": "w0.1", "image_ids": ["a", "b"], "started_at": T0 + 2.0,
         "finished_at": T0 + 3.0, "timings": {"build": 0.2, "render": 1.0, "post": 0.1, "write": 0.1}},
        {"job_index": 1, "status": "done", "worker": "w0.2", "image_ids": ["c", "d"], "started_at": T0 + 5.0,
         "finished_at": T0 + 6.5, "timings": {"build": 0.2, "render": 2.0, "post": 0.1, "write": 0.1}},
    ]  # fmt: skip
    (out / "manifest.json").write_text(
        json.dumps({"status": "complete", "jobs": jobs, "summary": {"done": 2}})
    )


def _done_jobs(out: Path, recipes: list[SceneRecipe]) -> list[dict[str, Any]]:
    """Manifest records of finished jobs whose files (and hashes) are the ones in `out`."""
    jobs = []
    for index, recipe in enumerate(recipes):
        image_ids = [recipe.image_id(camera) for camera in range(len(recipe.cameras))]
        files, problems = hash_job_files(out, image_ids, recipe_hash(recipe))
        assert not problems, problems
        jobs.append(
            {"job_index": index, "scene_id": recipe.scene_id, "recipe_hash": recipe_hash(recipe),
             "status": "done", "worker": f"w{index}.1", "image_ids": image_ids, "files": files,
             "started_at": T0 + 2.0 + 3 * index, "finished_at": T0 + 3.0 + 3 * index,
             "timings": {"build": 0.2, "render": 1.0 + index, "post": 0.1, "write": 0.1}}
        )  # fmt: skip
    return jobs


def test_run_stats_from_telemetry_and_manifest(tmp_path: Path) -> None:
    _telemetry(tmp_path)
    stats = read_run_stats(tmp_path)
    assert stats.images_timed == 4 and stats.skipped_lines == 1
    assert stats.seconds_per_image == pytest.approx(
        {"build": 0.1, "render": 0.75, "post": 0.05, "write": 0.05}
    )
    assert stats.per_worker["w0.2"]["render"] == pytest.approx(1.0)
    assert stats.startups == {"w0.1": 1.5, "w0.2": 0.9}
    assert stats.restarts == {"crash": 1} and stats.restart_times == [(4.0, "w0.1 crash")]
    assert stats.peak_rss_mb == {"w0.1": 310.0, "w0.2": 280.0}
    assert stats.finished == [(3.0, 2), (6.5, 4)]
    assert stats.runs[0]["status"] == "complete" and stats.runs[0]["elapsed_s"] == 7.0


def test_report_of_an_audited_dataset_shows_every_section(tmp_path: Path) -> None:
    recipes = [tag_scene(0), charuco_scene(1, n_cameras=2)]
    build_dataset(tmp_path, recipes, images=True)
    merge_dataset(tmp_path)
    _telemetry(tmp_path, _done_jobs(tmp_path, recipes))
    assert cli_main(["audit", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    needles = ("Dataset card", "Contact sheet", "min_score", "distance_m", "not verified yet", "Cameras",
               "restarts", "crash 1", 'href="audit.json"', 'href="images/scene000000_cam00.png"')  # fmt: skip
    for needle in needles:
        assert needle in html, needle
    assert html.count("data:image/png;base64,") >= 8  # sheet, 3 histograms, heat map, 3 cost figures
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert (tmp_path / "preview.png").is_file()  # the page drew the contact sheet it shows


def test_report_of_a_folder_with_nothing_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["report", str(tmp_path)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[-3:] == [
        f"report: {tmp_path / 'report.html'}",
        f"next: render-tag audit {tmp_path}",
        f"next: render-tag verify {tmp_path}",
    ]
    assert "not audited yet" in (tmp_path / "report.html").read_text()
    assert cli_main(["report", str(tmp_path / "missing")]) == 2


def test_histogram_has_a_zero_based_count_axis_and_labels() -> None:
    png = histogram_png([3, 0, 7], [0.0, 1.0, 2.0, 3.0], "distance", "distance (m)")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (340, 580)
    same = histogram_png([3, 0, 7], [0.0, 1.0, 2.0, 3.0], "distance", "distance (m)")
    assert png == same  # no version or date stamp: same data, same bytes
    assert offsets_png({"tag36h11": np.array([[0.1, -0.2], [0.3, 0.0]])}).startswith(b"\x89PNG")


def test_compile_and_preview_say_what_they_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        "dataset: {name: t, num_scenes: 2, seed: 1}\n"
        "scenario: {subject: {type: TAGS, tag_families: [tag36h11], size_mm: 100}}\n"
    )
    recipes = tmp_path / "recipes.json"
    assert cli_main(["compile", str(config), "-o", str(recipes)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"wrote: {recipes} (2 scenes, ")
    assert out[-1] == f"next: render-tag render {recipes} -o OUT"

    data = build_dataset(tmp_path / "data", [tag_scene(0), tag_scene(1)], images=True)
    sheet = make_preview(data)
    assert cli_main(["preview", str(data), "--scene", "1"]) == 0
    scene_file = data / "preview" / "scene000001.png"
    assert capsys.readouterr().out.splitlines() == [f"wrote: {scene_file}", f"next: open {scene_file}"]
    assert sheet.read_bytes() == make_preview(data, data / "again.png").read_bytes()  # not overwritten


def test_contact_sheet_marks_shrink_with_a_far_marker(tmp_path: Path) -> None:
    """A marker a few pixels wide keeps most of its pixels visible under its own corner dots."""
    from render_tag.dataset.reader import RenderTagDataset
    from render_tag.qa.preview import draw_ground_truth

    build_dataset(tmp_path, [tag_scene(0, n_cameras=1)], images=True)
    image = RenderTagDataset(tmp_path).images[0]
    near = draw_ground_truth(image, tile_width=640)
    far = draw_ground_truth(image, tile_width=128)  # the same marker at a fifth of the size: ~15 px
    corners = (np.asarray(image.tags[0].corners) + 0.5) * 128 / 640 - 0.5
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    box = far[22 + y0 : 22 + y1 + 1, x0 : x1 + 1].astype(int)
    drawn_over = 1 - (np.abs(box - 128).max(axis=2) < 12).mean()  # the image is plain grey (128)
    assert drawn_over < 0.75, drawn_over  # fixed 4 px dots covered 96 % of it
    assert near.shape[1] == 640


def test_progress_shows_a_line_before_the_first_image() -> None:
    stream = io.StringIO()
    progress = Progress(20, stream=stream, note="starting 2 workers")
    assert stream.getvalue() == "render [........................] 0/20 images  starting 2 workers\n"
    progress.update(done=1)
    assert stream.getvalue().count("\n") == 1  # still in the first tenth: no second line
    progress.update(done=19)
    assert stream.getvalue().splitlines()[-1].startswith("render [########################] 20/20 images  ")
