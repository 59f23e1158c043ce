"""Code written against the seed system's reader runs unchanged: its method names, version-1 rich-truth
files (a bare array), object points in millimetres, `eval_complete`, and its COCO attributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from render_tag import RenderTagDataset
from render_tag.dataset.merge import merge_dataset
from render_tag_shared.errors import InputError
from render_tag_shared.records import DetectionRecord

from ..builders import build_dataset, charuco_scene, tag_scene


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tags (scene 0) and a ChArUco board seen by 12 cameras (scene 1), merged."""
    root = build_dataset(tmp_path_factory.mktemp("seed"), [tag_scene(0), charuco_scene(1, n_cameras=12)])
    merge_dataset(root)
    return root


def version_1(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as the seed's version 1 wrote them: a bare array; no visibilities, no eval_complete, TAG
    records without record_type, a board's definition under `metadata`."""
    old = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in ("corners_visibility", "keypoints_visibility")}
        record.pop("eval_complete")
        if record["record_type"] == "TAG":
            del record["record_type"]
        else:
            record["metadata"] = {"board_definition": record.pop("board_definition")}
        old.append(record)
    return old


def test_seed_methods_on_a_version_1_file(merged: Path, tmp_path: Path) -> None:
    document = json.loads((merged / "rich_truth.json").read_text())
    assert document["version"] == "2.0"
    v1_file = tmp_path / "rich_truth.json"
    v1_file.write_text(json.dumps(version_1(document["records"])))
    assert isinstance(json.loads(v1_file.read_text()), list)

    ds = RenderTagDataset.from_json(v1_file)
    v2 = RenderTagDataset.from_json(merged / "rich_truth.json")
    assert ds.image_ids == v2.image_ids and len(ds.records) == len(v2.records) == len(document["records"])
    assert ds.evaluation_context == {} and v2.evaluation_context["photometric_margin_px"] == 5.0

    tags = ds.get_tag_records("scene000000_cam01")
    assert (
        [r.tag_id for r in tags] == [r.tag_id for r in v2.get_tag_records("scene000000_cam01")] == [0, 1, 2]
    )
    assert ds.get_board_record("scene000000_cam01") is None
    assert ds.get_tag_records("no-such-image") == [] and ds.get_records("no-such-image") == []
    board = ds.get_board_record("scene000001_cam03")
    assert board is not None and board.board_definition == v2.board_definition is not None

    # Version 1 had no eval margin: its visibilities are derived with none. What version 2 calls
    # visible stays visible, sentinels stay 0, and a point inside the 5 px margin becomes 2.
    for old, new in zip(ds.records, v2.records, strict=True):
        assert old.corners == new.corners and old.keypoints == new.keypoints
        for a, b in ((old.corners_visibility, new.corners_visibility),
                     (old.keypoints_visibility or [], new.keypoints_visibility or [])):  # fmt: skip
            assert all(x == 2 for x, y in zip(a, b, strict=True) if y == 2)
            assert all(x == 0 for x, y in zip(a, b, strict=True) if y == 0)

    frames = list(ds.iter_calibration_frames())
    assert [f.image_id for f in frames] == [i for i in ds.image_ids if i.startswith("scene000001")]
    object_points, image_points, ids = [], [], []
    for frame in frames:
        obj, img, valid = frame.get_valid_calibration_pairs()
        assert obj.dtype == img.dtype == np.float64 and valid.dtype == np.int32
        assert obj.shape == (len(valid), 3) and img.shape == (len(valid), 2)
        keypoints, visible = frame.get_all_keypoints_with_visibility()
        assert frame.board_definition is not None
        assert keypoints.shape == (frame.board_definition.num_keypoints, 2) and visible.dtype == bool
        assert np.array_equal(np.flatnonzero(visible), valid)
        assert np.array_equal(keypoints[valid], img)
        object_points.append(obj.astype(np.float32))
        image_points.append(img.astype(np.float32))
        ids.append(valid)
    # Millimetres, as the seed gave them: neighbouring ChArUco corners are one square (40 mm) apart.
    square = frames[0].board_definition.square_size_mm if frames[0].board_definition else None
    assert square == 40.0
    obj0 = object_points[0]
    assert np.isclose(np.min(np.linalg.norm(obj0[1:] - obj0[0], axis=1)), square)
    # ... and they calibrate: the camera comes back (in mm the pose is in mm, K is unit-free).
    true_k = frames[0].k_matrix
    rms, k, _, _, tvecs = cv2.calibrateCamera(object_points, image_points, frames[0].resolution, None, None)
    assert rms < 0.01 and abs(k[0, 0] / true_k[0, 0] - 1) < 2e-3 and abs(k[0, 2] - true_k[0, 2]) < 0.5
    assert np.allclose(np.asarray(tvecs[0]).ravel() / 1000.0, frames[0].tvec, atol=1e-3)


def test_from_records_and_the_seed_filter(merged: Path) -> None:
    records = RenderTagDataset(merged).records
    ds = RenderTagDataset.from_records(records)
    assert set(ds.image_ids) == set(RenderTagDataset(merged).image_ids)
    assert ds.get_tag_records("scene000000_cam00") == RenderTagDataset(merged).get_tag_records(
        "scene000000_cam00"
    )
    usable = [r for r in ds.records if r.eval_complete]  # the seed's filter of whole objects
    assert len(usable) == len(records) > 0  # the builder's cameras see every object whole
    for record in records:
        points = record.keypoints_visibility if record.record_type == "BOARD" else record.corners_visibility
        assert record.eval_complete == all(v == 2 for v in points or [])


def test_eval_complete_is_written_and_derived_on_reading(merged: Path) -> None:
    document = json.loads((merged / "rich_truth.json").read_text())
    raw = next(r for r in document["records"] if r["record_type"] == "TAG" and r["eval_complete"])
    raw = dict(raw, corners_visibility=[2, 2, 1, 2])  # one corner in the margin: no longer complete
    record = DetectionRecord.model_validate(raw)  # the file's stale `eval_complete: true` is not input
    assert record.eval_complete is False
    assert record.model_dump(mode="json")["eval_complete"] is False
    assert DetectionRecord.model_validate_json(record.model_dump_json()) == record
    label = json.loads(next((merged / "labels").iterdir()).read_text())
    assert all("eval_complete" in r for r in label["records"])


def test_coco_annotations_carry_the_seed_attributes(merged: Path) -> None:
    coco = json.loads((merged / "coco_labels.json").read_text())
    by_name = {c["id"]: c["name"] for c in coco["categories"]}
    # A board's markers share its object name: the marker's id tells them apart (None: the board).
    records = {(r.image_id, r.object_name, r.tag_id): r for r in RenderTagDataset(merged).records}
    keys = {i["id"]: i["image_key"] for i in coco["images"]}
    assert coco["annotations"]
    for annotation in coco["annotations"]:
        attributes = annotation["attributes"]
        record = records[(keys[annotation["image_id"]], attributes["object_name"], attributes["tag_id"])]
        assert attributes["tag_family"] == record.tag_family
        assert attributes["distance"] == record.distance > 0
        assert attributes["angle_of_incidence"] == record.angle_of_incidence
        assert attributes["ppm"] == record.ppm > 0
        assert attributes["eval_complete"] == record.eval_complete
        if record.record_type in ("TAG", "MARKER"):
            assert by_name[annotation["category_id"]] == record.tag_family


def test_a_version_1_record_missing_a_field_is_named(tmp_path: Path, merged: Path) -> None:
    records = version_1(json.loads((merged / "rich_truth.json").read_text())["records"])
    del records[3]["k_matrix"]
    (tmp_path / "rich_truth.json").write_text(json.dumps(records))
    with pytest.raises(InputError) as error:
        RenderTagDataset.from_json(tmp_path / "rich_truth.json")
    assert error.value.field == "[3].k_matrix"
    (tmp_path / "rich_truth.json").write_text(json.dumps({"version": "2.0"}))
    with pytest.raises(InputError, match="records"):
        RenderTagDataset(tmp_path)
