"""Detection records: one format for the add-on and the host, with COCO and CSV forms."""

from __future__ import annotations

import csv
import io
import json

import pytest

from render_tag_shared.families import FAMILY_NAMES
from render_tag_shared.recipe import SceneRecipe
from render_tag_shared.records import (
    CSV_COLUMNS,
    DetectionRecord,
    clip_polygon,
    coco_annotation,
    coco_categories,
    csv_text,
    rich_truth_document,
)
from render_tag_shared.truth import camera_ground_truth

from ..builders import look_at, pinhole


def recipe_with_two_tags(distortion: dict | None = None) -> SceneRecipe:
    return SceneRecipe.model_validate(
        {
            "scene_id": 4,
            "random_seed": 4,
            "objects": [
                {"type": "TAG", "name": "a", "tag_family": "tag36h11", "tag_id": 1, "size_mm": 80},
                {
                    "type": "TAG",
                    "name": "b",
                    "pose": {"position": [0.2, 0.05, 0]},
                    "tag_family": "DICT_4X4_50",
                    "tag_id": 7,
                    "size_mm": 60,
                },
            ],
            "cameras": [
                {
                    "cam_to_world": look_at([0.1, -0.4, 0.8], [0.1, 0, 0]),
                    "intrinsics": pinhole(**(distortion or {})),
                }
            ],
        }
    )


def test_coco_annotation_carries_the_corners_in_order() -> None:
    records = camera_ground_truth(recipe_with_two_tags(), 0)
    assert [r.tag_id for r in records] == [1, 7]
    annotation = coco_annotation(records[1], annotation_id=12, image_number=3)
    assert annotation["id"] == 12 and annotation["image_id"] == 3
    assert annotation["category_id"] == FAMILY_NAMES.index("DICT_4X4_50") + 1
    flat = [
        c
        for (x, y), v in zip(records[1].corners, records[1].corners_visibility, strict=True)
        for c in (x, y, v)
    ]
    assert annotation["keypoints"] == pytest.approx(flat)
    assert annotation["num_keypoints"] == 4
    xs = [p[0] for p in records[1].corners]
    ys = [p[1] for p in records[1].corners]
    assert annotation["bbox"] == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
    assert annotation["area"] > 0
    categories = coco_categories()
    assert [c["name"] for c in categories] == list(FAMILY_NAMES)
    assert all(c["keypoints"] == ["tl", "tr", "br", "bl"] for c in categories)


def test_distorted_outline_bends_and_bbox_follows_it() -> None:
    plain = camera_ground_truth(recipe_with_two_tags(), 0)[0]
    bent = camera_ground_truth(
        recipe_with_two_tags(
            {"distortion_model": "brown_conrady", "distortion_coeffs": [-0.4, 0.1, 0, 0, 0]}
        ),
        0,
    )[0]
    assert len(plain.outline) == 4 and len(bent.outline) == 64
    annotation = coco_annotation(bent, 1, 1)
    assert len(annotation["segmentation"][0]) == 128
    xs = [p[0] for p in bent.outline]
    assert annotation["bbox"][0] == pytest.approx(min(xs))


def test_csv_has_one_row_per_tag_with_four_corners() -> None:
    records = camera_ground_truth(recipe_with_two_tags(), 0)
    rows = list(csv.reader(io.StringIO(csv_text(records))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3
    assert rows[1][:3] == ["scene000004_cam00", "tag36h11", "1"]
    assert [float(c) for c in rows[1][3:11]] == pytest.approx(
        [c for p in records[0].corners for c in p], abs=1e-6
    )


def test_rich_truth_document_round_trips() -> None:
    records = camera_ground_truth(recipe_with_two_tags(), 0)
    document = json.loads(json.dumps(rich_truth_document(records, {"dataset": "t"})))
    assert document["version"] == "2.0"
    assert document["evaluation_context"]["dataset"] == "t"
    assert [DetectionRecord.model_validate(r) for r in document["records"]] == records


def test_coco_geometry_is_clipped_to_the_image() -> None:
    record = camera_ground_truth(recipe_with_two_tags(), 0)[0]
    shifted = record.model_copy(
        update={"corners": [(-20.0, 10.0), (30.0, 10.0), (30.0, 60.0), (-20.0, 60.0)], "outline": []}
    )
    annotation = coco_annotation(shifted, 1, 1)
    assert annotation["bbox"] == pytest.approx([-0.5, 10.0, 30.5, 50.0])
    assert annotation["area"] == pytest.approx(30.5 * 50.0)
    assert clip_polygon([(700.0, 10.0), (710.0, 10.0), (710.0, 20.0)], (640, 480)) == []
