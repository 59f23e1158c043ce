"""The auditor: each check fails on the defect it is there for, and gates drive the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from render_tag.cli.qa import main_audit
from render_tag.dataset.merge import merge_dataset
from render_tag.qa.audit import audit_dataset
from render_tag.qa.gates import AuditGates
from render_tag_shared.errors import InputError
from render_tag_shared.records import ImageLabels

from ..builders import build_dataset, charuco_scene, tag_scene


def _edit(label: Path, edit) -> None:  # type: ignore[no-untyped-def]
    labels = ImageLabels.model_validate_json(label.read_text())
    records = [edit(r) if r.record_type == "TAG" else r for r in labels.records]
    label.write_text(labels.model_copy(update={"records": records}).model_dump_json())


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return build_dataset(tmp_path, [tag_scene(0), charuco_scene(1, n_cameras=3)], images=True)


def test_clean_dataset_passes_with_plots(dataset: Path) -> None:
    merge_dataset(dataset)
    report = audit_dataset(dataset)
    assert report.passed and report.score == 100.0
    assert report.checks["images"] == {"checked": 6, "missing": [], "unreadable": []}
    markers = sum(
        1
        for label in (dataset / "labels").glob("*.json")
        for r in ImageLabels.model_validate_json(label.read_text()).records
        if r.record_type == "MARKER" and all(v == 2 for v in r.corners_visibility)
    )
    assert markers >= 17  # the board's markers are records too, checked like tags
    assert report.checks["chirality"]["checked"] == 12 + markers
    assert report.checks["anchor"]["diagnoses"] == {"ok": 12 + markers}
    assert report.checks["anchor"]["max_error_px"] < 1e-6
    assert report.checks["margin"]["inconsistent"] == 0
    assert report.checks["margin"]["margin_known_for_images"] == 6
    assert report.distributions["distance_m"]["count"] == 12
    assert 0.5 < report.distributions["distance_m"]["median"] < 1.5
    doc = json.loads((dataset / "audit.json").read_text())
    assert doc["passed"] and doc["score"] == 100.0
    for plot in doc["plots"]:
        image = cv2.imread(str(dataset / plot))
        assert image is not None and image.shape[0] > 100
    assert main_audit(dataset) == 0


def test_reordered_corners_fail_chirality(dataset: Path) -> None:
    label = dataset / "labels" / "scene000000_cam01.json"
    _edit(label, lambda r: r.model_copy(update={"corners": [r.corners[i] for i in (0, 3, 2, 1)]}))
    report = audit_dataset(dataset)
    assert report.checks["chirality"]["failures"] == 3
    assert {e["image_id"] for e in report.checks["chirality"]["examples"]} == {"scene000000_cam01"}
    assert "max_chirality_failures" in report.failed_gates and report.score < 100
    assert main_audit(dataset) == 1


def test_flipped_pose_is_diagnosed(dataset: Path) -> None:
    # Turn each tag's stored pose by half a turn about its normal: corner 2 now projects onto corners[0].
    def flip(r):  # type: ignore[no-untyped-def]
        w, x, y, z = r.rotation_quaternion
        return r.model_copy(update={"rotation_quaternion": (-z, y, -x, w)})  # q * (0, 0, 0, 1)

    _edit(dataset / "labels" / "scene000000_cam02.json", flip)
    report = audit_dataset(dataset)
    anchor = report.checks["anchor"]
    assert anchor["failures"] == 3 and anchor["diagnoses"]["texture_flip_180"] == 3
    assert all(e["diagnosis"] == "texture_flip_180" for e in anchor["examples"])
    assert not report.passed


def test_a_shifted_pose_is_a_mismatch(dataset: Path) -> None:
    _edit(
        dataset / "labels" / "scene000000_cam00.json",
        lambda r: r.model_copy(update={"position": (r.position[0] + 0.01, *r.position[1:])}),
    )
    report = audit_dataset(dataset)
    assert report.checks["anchor"]["diagnoses"]["pose_mismatch"] == 3


def test_visibility_that_ignores_the_margin_is_inconsistent(dataset: Path) -> None:
    merge_dataset(dataset)

    def push_to_edge(r):  # type: ignore[no-untyped-def]
        corners = list(r.corners)
        corners[1] = (637.0, corners[1][1])  # inside the 5 px eval margin, still flagged 2
        return r.model_copy(update={"corners": corners})

    _edit(dataset / "labels" / "scene000000_cam00.json", push_to_edge)
    report = audit_dataset(dataset)
    assert report.checks["margin"]["inconsistent"] == 3
    assert "max_margin_inconsistencies" in report.failed_gates


def test_gates_from_yaml(dataset: Path, tmp_path: Path) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text("audit:\n  gates:\n    min_images: 100\n    max_distance_m: 0.5\n")
    report = audit_dataset(dataset, gates)
    assert set(report.failed_gates) == {"min_images", "max_distance_m"}
    assert main_audit(dataset, gates) == 1
    gates.write_text("min_score: 99.5\n")
    assert main_audit(dataset, gates) == 0
    gates.write_text("min_scor: 99\n")
    with pytest.raises(InputError, match="min_scor"):
        AuditGates.load(gates)
    with pytest.raises(InputError, match="number"):
        AuditGates.load({"min_score": "high"})


def test_corrupt_label_lowers_the_score_and_fails_its_gate(dataset: Path) -> None:
    (dataset / "labels" / "scene000000_cam00.json").write_text("{")
    report = audit_dataset(dataset)
    assert report.counts["skipped_labels"] == 1 and report.failed_gates == ["max_skipped_labels"]
    assert 90 < report.score < 100


def test_missing_and_unreadable_images_fail_their_gates(dataset: Path) -> None:
    images = dataset / "images"
    (images / "scene000000_cam00.png").unlink()
    truncated = images / "scene000000_cam01.png"
    truncated.write_bytes(truncated.read_bytes()[:40])
    cv2.imwrite(str(images / "scene000001_cam00.png"), np.zeros((48, 64), dtype=np.uint8))  # wrong size
    (images / "scene000001_cam01.png").write_bytes(b"")
    report = audit_dataset(dataset)
    assert report.counts["missing_images"] == 1 and report.counts["unreadable_images"] == 3
    assert set(report.failed_gates) == {"max_missing_images", "max_unreadable_images"}
    doc = json.loads((dataset / "audit.json").read_text())
    assert [e["image_id"] for e in doc["checks"]["images"]["missing"]] == ["scene000000_cam00"]
    unreadable = {e["file"]: e["reason"] for e in doc["checks"]["images"]["unreadable"]}
    assert set(unreadable) == {
        "images/scene000000_cam01.png",
        "images/scene000001_cam00.png",
        "images/scene000001_cam01.png",
    }
    assert "64x48" in unreadable["images/scene000001_cam00.png"]
    assert main_audit(dataset) == 1


def test_a_dataset_without_images_fails(tmp_path: Path) -> None:
    build_dataset(tmp_path, [tag_scene(0)])  # labels only: no pixels at all
    report = audit_dataset(tmp_path)
    assert report.counts["missing_images"] == 3 and not report.passed
    assert report.failed_gates == ["max_missing_images"]
    # A labels-only dataset is audited as such by switching the gate off.
    assert audit_dataset(tmp_path, {"max_missing_images": None}).passed


def test_audit_json_says_which_checks_look_at_pixels(dataset: Path) -> None:
    audit_dataset(dataset, plots=False)
    doc = json.loads((dataset / "audit.json").read_text())
    described = doc["check_descriptions"]
    assert set(described) >= {"images", "chirality", "anchor", "margin", "structure"}
    for name in ("anchor", "margin"):
        assert "consistency" in described[name] and "not pixels" in described[name]
    assert "verify" in described["anchor"]
