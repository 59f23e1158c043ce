"""What the auditor adds beyond single records: coverage and balance gates that warn or fail, lighting
measured on the pixels, a quarantine of failing images, and the diff of two datasets."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from render_tag.cli import main
from render_tag.qa.audit import audit_dataset
from render_tag.qa.coverage import range_coverage
from render_tag.qa.diff import AuditDiff
from render_tag_shared.records import ImageLabels

from ..builders import build_dataset, charuco_scene, tag_scene

GATE_KEYS = {
    "name",
    "value",
    "threshold",
    "warn_threshold",
    "kind",
    "status",
    "passed",
    "limit",
    "description",
}


def textured(path: Path, value: int = 128, seed: int = 0) -> None:
    """A PNG of the same size with noise around `value` (contrast 0.1 of the range)."""
    height, width = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
    noise = np.random.default_rng(seed).normal(value, 25.5, (height, width))
    cv2.imwrite(str(path), np.clip(noise, 0, 255).astype(np.uint8))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = build_dataset(tmp_path / "a", [tag_scene(0), charuco_scene(1, n_cameras=3)], images=True)
    for png in (root / "images").iterdir():
        textured(png, seed=hash(png.name) % 1000)
    return root


def test_every_gate_has_one_shape(dataset: Path) -> None:
    report = audit_dataset(dataset)
    assert report.passed and report.warnings == [] and report.quarantine == []
    document = json.loads((dataset / "audit.json").read_text())
    assert document["version"] == 3
    for name, gate in document["gates"].items():
        assert set(gate) == GATE_KEYS and gate["name"] == name
        assert gate["status"] in ("pass", "warn", "fail") and gate["passed"] == (gate["status"] != "fail")
    for name in ("distance_coverage", "angle_coverage", "ppm_coverage", "bin_share", "id_coverage"):
        assert name in document["gates"]
    for name in ("distance_m", "brightness", "contrast", "tag_id"):
        histogram = document["distributions"][name]["histogram"]
        assert sum(histogram["counts"]) == document["distributions"][name]["count"] > 0
        assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert (dataset / "quarantine.txt").read_text() == ""


def test_range_coverage_counts_bins_and_the_largest_share() -> None:
    result = range_coverage([0.1, 0.15, 0.35, 0.95, 7.0], 0.0, 1.0)
    assert result["coverage"] == 0.3  # bins 1, 3 and 9 of 10
    assert result["largest_bin_share"] == 0.5 and result["outside"] == 1


def test_coverage_of_the_configured_range_warns_then_fails(dataset: Path) -> None:
    distances = audit_dataset(dataset, write=False).distributions["distance_m"]
    assert distances["min"] > 0.7 and distances["max"] < 1.4
    # Against the data's own range there is no hole worth a warning ...
    own = audit_dataset(dataset, write=False).gates["distance_coverage"]
    assert own["status"] == "pass" and "data's" in own["description"]
    # ... against a config that asked for 0.5-5 m, most of the range is empty: a warning, exit code 0.
    wide = {"distance_m": (0.5, 5.0), "angle_of_incidence_deg": (0.0, 65.0)}
    report = audit_dataset(dataset, configured=wide)
    gate = report.gates["distance_coverage"]
    assert gate["status"] == "warn" and gate["value"] == 0.2 and "config's" in gate["description"]
    assert report.passed and "distance_coverage" in report.warnings
    assert "warning distance_coverage: 0.2 (warns at 0.6)" in report.summary()
    assert report.coverage["distance_m"]["source"] == "config"
    # A failure limit turns the same finding into a failed gate (exit code 1).
    gates = {"min_distance_coverage": 0.5, "distance_range_m": [0.5, 5.0]}
    report = audit_dataset(dataset, gates)
    assert report.gates["distance_coverage"]["status"] == "fail" and not report.passed
    assert report.coverage["distance_m"]["source"] == "gates"
    (dataset / "gates.yaml").write_text(
        "audit: {gates: {min_distance_coverage: 0.5, distance_range_m: [0.5, 5]}}\n"
    )
    assert main(["audit", str(dataset), "--gates", str(dataset / "gates.yaml")]) == 1


def test_id_coverage(dataset: Path) -> None:
    report = audit_dataset(dataset, {"warn_id_coverage": 0.5})
    ids = report.coverage["tag_ids"]["families"]["tag36h11"]
    assert ids == {"ids_seen": 3, "ids_in_family": 587, "coverage": 3 / 587}
    assert report.gates["id_coverage"]["status"] == "warn"


def test_lighting_from_the_pixels_and_the_quarantine(dataset: Path) -> None:
    dark = dataset / "images" / "scene000000_cam01.png"
    cv2.imwrite(str(dark), np.full(cv2.imread(str(dark)).shape[:2], 3, dtype=np.uint8))
    flat = dataset / "images" / "scene000001_cam02.png"
    cv2.imwrite(str(flat), np.full(cv2.imread(str(flat)).shape[:2], 128, dtype=np.uint8))
    label = dataset / "labels" / "scene000000_cam02.json"
    labels = ImageLabels.model_validate_json(label.read_text())
    mirrored = [
        r.model_copy(update={"corners": [r.corners[i] for i in (0, 3, 2, 1)]}) for r in labels.records
    ]
    label.write_text(labels.model_copy(update={"records": mirrored}).model_dump_json())
    (dataset / "images" / "scene000001_cam00.png").unlink()

    report = audit_dataset(dataset)
    pixels = cv2.imread(str(dataset / "images" / "scene000000_cam00.png"), cv2.IMREAD_GRAYSCALE)
    stats = report.lighting["scene000000_cam00"]
    assert stats["brightness"] == pytest.approx(pixels.mean() / 255) and 0.45 < stats["brightness"] < 0.55
    assert stats["contrast"] == pytest.approx(pixels.std() / 255) and 0.08 < stats["contrast"] < 0.12
    assert report.lighting["scene000000_cam01"]["brightness"] == pytest.approx(3 / 255)
    assert "scene000001_cam00" not in report.lighting  # missing: no pixels to measure

    reasons = {entry["image_id"]: " | ".join(entry["reasons"]) for entry in report.quarantine}
    assert set(reasons) == {
        "scene000000_cam01",
        "scene000001_cam02",
        "scene000000_cam02",
        "scene000001_cam00",
    }
    assert "too dark" in reasons["scene000000_cam01"]
    assert "flat" in reasons["scene000001_cam02"]
    assert "chirality: tag0" in reasons["scene000000_cam02"]
    assert "missing" in reasons["scene000001_cam00"]
    listed = (dataset / "quarantine.txt").read_text().splitlines()
    assert listed == [f"images/{image_id}.png" for image_id in sorted(reasons)]
    assert json.loads((dataset / "audit.json").read_text())["quarantine"] == report.quarantine
    assert report.gates["quarantined_images"]["status"] == "warn"


def test_audit_diff_reports_what_changed(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = build_dataset(
        tmp_path / "b", [tag_scene(0), tag_scene(2), charuco_scene(1, n_cameras=3)], images=True
    )
    for png in (other / "images").iterdir():
        textured(png, value=60, seed=1)
    flat = other / "images" / "scene000002_cam00.png"
    cv2.imwrite(str(flat), np.zeros(cv2.imread(str(flat)).shape[:2], dtype=np.uint8))
    a = audit_dataset(dataset, write=False)
    b = audit_dataset(other, write=False)
    changes = AuditDiff(a, b)
    seed = changes.calculate()
    assert seed["image_count"] == 3 and seed["tag_count"] == 9 and seed["score_diff"] == 0.0
    assert seed["distance_mean_diff"] == pytest.approx(
        b.distributions["distance_m"]["mean"] - a.distributions["distance_m"]["mean"]
    )
    full = changes.to_dict()
    assert full["counts"]["images"] == {"a": 6, "b": 9, "change": 3}
    assert full["distributions"]["brightness"]["median"]["change"] < -0.2  # darker images in b
    assert full["changed_gates"] == ["quarantined_images"]  # b holds one black image
    assert full["gates"]["quarantined_images"]["status"] == {"a": "pass", "b": "warn"}
    assert full["quarantined"] == {"a": 0, "b": 1, "change": 1}

    assert main(["audit", str(dataset), "--diff", str(other)]) == 0
    out = capsys.readouterr().out
    assert f"audit diff {dataset} -> {other}" in out
    assert "images: 6 -> 9 (+3)" in out and "brightness median" in out
    assert "gate quarantined_images: pass -> warn" in out
    assert json.loads((dataset / "audit_diff.json").read_text())["counts"]["images"]["change"] == 3
    # Against itself, nothing changed.
    assert "nothing changed" in AuditDiff(a, audit_dataset(dataset, write=False)).summary()


def test_a_bad_diff_folder_writes_nothing(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(dataset), "--diff", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (dataset / "audit.json").exists() and not (dataset / "audit_diff.json").exists()
