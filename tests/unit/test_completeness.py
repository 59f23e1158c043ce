"""Completeness is checked, not assumed (issue 10, point 2): merge and audit against the manifest.

Folders here are what a render leaves (labels, grey PNGs, recipes.json and a manifest whose done jobs
record each file's SHA-256), built without Blender; tests/e2e/test_completeness.py does the same on
rendered folders.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from render_tag.cli import main as cli_main
from render_tag.cli.dataset import main_merge
from render_tag.cli.qa import main_audit
from render_tag.dataset.merge import merge_dataset
from render_tag.qa.audit import audit_dataset
from render_tag_shared.recipe import SceneRecipe, recipe_hash

from ..builders import build_dataset, tag_scene

MERGED = ("rich_truth.json", "coco_labels.json", "ground_truth.csv", "provenance.json")


def rendered_folder(
    out: Path,
    recipes: list[SceneRecipe],
    job: str = "job-test",
    shard: str = "0/1",
    failed: tuple[int, ...] = (),
) -> Path:
    """A folder as `render` leaves it: images, labels, recipes.json, and a manifest whose done jobs
    carry their files' hashes (scenes in `failed` are failed jobs with no files)."""
    build_dataset(out, recipes, images=True)
    document = json.loads((out / "recipes.json").read_text())
    document["job_id"] = job
    (out / "recipes.json").write_text(json.dumps(document, indent=1))
    jobs = []
    for index, recipe in enumerate(recipes):
        image_ids = [recipe.image_id(i) for i in range(len(recipe.cameras))]
        job_record: dict[str, Any] = {
            "job_index": index,
            "scene_id": recipe.scene_id,
            "image_ids": image_ids,
            "recipe_hash": recipe_hash(recipe),
            "status": "done",
            "files": {},
        }
        for image_id in image_ids:
            for name in (f"images/{image_id}.png", f"labels/{image_id}.json"):
                if recipe.scene_id in failed:
                    (out / name).unlink()
                else:
                    job_record["files"][name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
        if recipe.scene_id in failed:
            job_record.update(status="failed", files={}, error_type="RuntimeError", error_message="boom")
        jobs.append(job_record)
    plan = {
        "job_id": job,
        "num_jobs": len(recipes),
        "recipes_sha256": "0" * 64,
        "addon_version": "1.0.0",
        "blender_version": "4.2.23",
        "shard": shard,
    }
    manifest = {"version": 1, "plan_hash": "1" * 64, "plan": plan, "status": "complete", "jobs": jobs}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def eight_scenes() -> list[SceneRecipe]:
    return [tag_scene(i, n_cameras=1) for i in range(8)]


def _delete_image_and_label(out: Path) -> str:
    (out / "images" / "scene000003_cam00.png").unlink()
    (out / "labels" / "scene000003_cam00.json").unlink()
    return "scene000003_cam00"


def _delete_image(out: Path) -> str:
    (out / "images" / "scene000005_cam00.png").unlink()
    return "images/scene000005_cam00.png"


def _delete_label(out: Path) -> str:
    (out / "labels" / "scene000005_cam00.json").unlink()
    return "labels/scene000005_cam00.json"


def _change_image(out: Path) -> str:
    path = out / "images" / "scene000002_cam00.png"
    path.write_bytes(path.read_bytes() + b"\0")
    return "images/scene000002_cam00.png"


def _label_without_image(out: Path) -> str:
    labels = json.loads((out / "labels" / "scene000001_cam00.json").read_text())
    labels["image_id"], labels["scene_id"] = "scene000009_cam00", 9
    labels["file_name"] = "images/scene000009_cam00.png"
    for record in labels["records"]:
        record["image_id"] = "scene000009_cam00"
    (out / "labels" / "scene000009_cam00.json").write_text(json.dumps(labels))
    return "labels/scene000009_cam00.json"


def _image_of_another_job(out: Path) -> str:
    (out / "images" / "scene000042_cam00.png").write_bytes(
        (out / "images" / "scene000000_cam00.png").read_bytes()
    )
    return "images/scene000042_cam00.png"


def _image_linked_out_of_the_folder(out: Path) -> str:
    image = out / "images" / "scene000004_cam00.png"
    outside = out.parent / "elsewhere.png"
    outside.write_bytes(image.read_bytes())
    image.unlink()
    os.symlink(outside, image)
    return "images/scene000004_cam00.png"


DAMAGES: dict[str, Callable[[Path], str]] = {
    "image and label deleted": _delete_image_and_label,
    "image deleted": _delete_image,
    "label deleted": _delete_label,
    "image changed": _change_image,
    "label without image": _label_without_image,
    "image no job made": _image_of_another_job,
}
"""Damage merge and audit report as an incomplete dataset (exit 1). A link out of the folder is refused
earlier, as bad input, by the folder lock (dataset/folder.py): see the test below."""


def test_an_intact_rendered_folder_merges_and_passes_the_audit(tmp_path: Path) -> None:
    out = rendered_folder(tmp_path / "out", eight_scenes())
    assert main_merge(out) == 0
    report = audit_dataset(out, plots=False)
    assert report.passed and report.counts["completeness_problems"] == 0, report.summary()
    assert main_audit(out) == 0


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_merge_refuses_a_folder_whose_files_and_manifest_disagree(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = rendered_folder(tmp_path / "out", eight_scenes())
    named = DAMAGES[damage](out)
    assert main_merge(out) == 1
    printed = capsys.readouterr().out
    assert "refused" in printed and named in printed, printed
    assert not any((out / name).exists() for name in MERGED), "a refused merge wrote files"


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_audit_fails_a_folder_whose_files_and_manifest_disagree(tmp_path: Path, damage: str) -> None:
    out = rendered_folder(tmp_path / "out", eight_scenes())
    assert main_merge(out) == 0  # merged while whole, then damaged: the merged files are stale
    named = DAMAGES[damage](out)
    report = audit_dataset(out, plots=False)
    assert "max_incomplete" in report.failed_gates and not report.passed, report.summary()
    assert any(named in text for text in report.checks["completeness"]["examples"])
    assert main_audit(out) == 1


def test_an_image_linked_out_of_the_folder_is_refused_and_counted_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands refuse the folder (exit 2, naming the link) before reading through the link; the
    audit's own completeness check, asked directly, counts the linked image as not part of the dataset."""
    out = rendered_folder(tmp_path / "out", eight_scenes())
    assert main_merge(out) == 0
    named = _image_linked_out_of_the_folder(out)
    report = audit_dataset(out, plots=False)
    assert "max_incomplete" in report.failed_gates and not report.passed, report.summary()
    assert any(named in text for text in report.checks["completeness"]["examples"])
    capsys.readouterr()
    for command in (["merge", str(out)], ["audit", str(out)]):
        assert cli_main(command) == 2, command
        assert named in capsys.readouterr().err, command


def test_one_of_eight_images_and_its_label_deleted_fails_without_a_manifest_too(tmp_path: Path) -> None:
    """recipes.json alone is enough to see an image missing from the dataset."""
    out = build_dataset(tmp_path / "out", eight_scenes(), images=True)
    assert audit_dataset(out, plots=False).passed
    _delete_image_and_label(out)
    merge_dataset(out)
    report = audit_dataset(out, plots=False)
    assert report.failed_gates == ["max_incomplete"], report.summary()
    assert report.checks["completeness"]["examples"] == [
        "scene000003_cam00: no label file (labels/scene000003_cam00.json)"
    ]


def test_a_failed_job_makes_the_dataset_incomplete_but_consistent(tmp_path: Path) -> None:
    out = rendered_folder(tmp_path / "out", eight_scenes(), failed=(6,))
    report = merge_dataset(out)
    assert report.ok and report.num_images == 7  # what is there agrees with the manifest
    audit = audit_dataset(out, plots=False)
    assert audit.failed_gates == ["max_incomplete"]
    assert any("scene 6: failed" in text for text in audit.checks["completeness"]["examples"])


def test_a_manifest_of_other_recipes_fails_the_audit(tmp_path: Path) -> None:
    out = rendered_folder(tmp_path / "out", eight_scenes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["jobs"][2]["recipe_hash"] = "f" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    report = audit_dataset(out, plots=False)
    assert report.failed_gates == ["max_incomplete"]
    assert (
        "manifest job of scene 2: not a recipe of recipes.json" in report.checks["completeness"]["examples"]
    )


def test_merge_refuses_shards_of_different_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenes = eight_scenes()
    a = rendered_folder(tmp_path / "a", scenes[:4], job="job-aaaa", shard="0/2")
    b = rendered_folder(tmp_path / "b", scenes[4:], job="job-bbbb", shard="1/2")
    assert main_merge([a, b], tmp_path / "merged") == 1
    printed = capsys.readouterr().out
    assert "different jobs" in printed and "job-aaaa" in printed and "job-bbbb" in printed
    assert not (tmp_path / "merged").exists()
    # Without manifests (labels-only folders) the job ids of recipes.json still tell them apart.
    for folder in (a, b):
        (folder / "manifest.json").unlink()
    assert main_merge([a, b], tmp_path / "merged") == 1
    assert not (tmp_path / "merged").exists()


def test_merge_checks_the_shards_of_one_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenes = eight_scenes()
    shards = [rendered_folder(tmp_path / f"s{i}", scenes[i::3], shard=f"{i}/3") for i in range(3)]
    assert main_merge(shards[:2], tmp_path / "partial") == 1
    assert "shard(s) 2/3 not among the folders" in capsys.readouterr().out
    assert main_merge([shards[0], shards[0], shards[1], shards[2]], tmp_path / "twice") == 1
    assert "shard 0/3 given twice" in capsys.readouterr().out
    other = rendered_folder(tmp_path / "other", scenes[2::3], shard="1/2")
    assert main_merge([*shards[:2], other], tmp_path / "split") == 1
    assert "different splits" in capsys.readouterr().out
    for folder in ("partial", "twice", "split"):
        assert not (tmp_path / folder).exists()

    assert main_merge(shards, tmp_path / "merged") == 0
    report = audit_dataset(tmp_path / "merged", plots=False)
    assert report.passed, report.summary()
    assert report.counts["images"] == 8 and report.counts["completeness_problems"] == 0
