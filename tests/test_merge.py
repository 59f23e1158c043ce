"""The merge: atomic, byte-stable, shard-independent, and robust to broken label files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from render_tag.merge import main_merge, merge_dataset
from render_tag_shared.errors import InputError
from render_tag_shared.records import COORDINATE_CONVENTION

from .dataset_builders import build_dataset, charuco_scene, tag_scene

OUTPUTS = ("rich_truth.json", "coco_labels.json", "ground_truth.csv", "provenance.json")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def _recipes() -> list:
    return [tag_scene(0), tag_scene(1), charuco_scene(2, n_cameras=3), tag_scene(3, family="DICT_4X4_50")]


def test_merge_writes_the_dataset_files(tmp_path: Path) -> None:
    build_dataset(tmp_path, _recipes())
    report = merge_dataset(tmp_path)
    assert report.ok and report.num_images == 12
    truth = json.loads((tmp_path / "rich_truth.json").read_text())
    assert truth["version"] == "2.0"
    assert truth["evaluation_context"]["coordinate_convention"] == COORDINATE_CONVENTION
    assert truth["evaluation_context"]["eval_margin_px"] == 5.0
    assert len(truth["records"]) == report.num_records == 9 * 3 + 3
    record = truth["records"][0]
    keys = "image_id record_type tag_family tag_id corners corners_visibility k_matrix resolution"
    keys += " distortion_model"
    keys += " distortion_coeffs position rotation_quaternion distance angle_of_incidence ppm tag_size_mm"
    assert set(keys.split()) <= set(record)

    coco = json.loads((tmp_path / "coco_labels.json").read_text())
    assert COORDINATE_CONVENTION in coco["info"]["coordinate_convention"]
    assert [im["id"] for im in coco["images"]] == list(range(1, 13))
    assert [im["image_key"] for im in coco["images"]] == sorted(im["image_key"] for im in coco["images"])
    ids = [a["id"] for a in coco["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    categories = {c["id"]: c for c in coco["categories"]}
    image_ids = {im["id"] for im in coco["images"]}
    for annotation in coco["annotations"]:
        category = categories[annotation["category_id"]]
        assert annotation["image_id"] in image_ids
        assert len(annotation["keypoints"]) == 3 * len(category["keypoints"])
        assert annotation["area"] > 0 and annotation["bbox"][2] > 0
        x, y, _, h = annotation["bbox"]
        polygon = annotation["segmentation"][0]
        assert min(polygon[0::2]) == pytest.approx(x) and max(polygon[1::2]) == pytest.approx(y + h)
    board = [
        a for a in coco["annotations"] if categories[a["category_id"]]["supercategory"] == "calibration_board"
    ]
    assert len(board) == 3 and len(board[0]["keypoints"]) == 3 * 24

    rows = (tmp_path / "ground_truth.csv").read_text().splitlines()
    assert rows[0].startswith("image_id,tag_family,tag_id,x_tl,y_tl")
    assert len(rows) == 1 + 27

    provenance = json.loads((tmp_path / "provenance.json").read_text())
    entry = provenance["images"]["scene000001_cam02"]
    assert entry["random_seed"] == 1001 and entry["recipe_in_dataset"] and entry["eval_margin_px"] == 5.0
    assert provenance["job_id"] == "job-test" and "render_tag_shared" in provenance["versions"]


def test_merging_twice_changes_nothing(tmp_path: Path) -> None:
    build_dataset(tmp_path, _recipes())
    merge_dataset(tmp_path)
    first = _snapshot(tmp_path)
    merge_dataset(tmp_path)
    assert _snapshot(tmp_path) == first
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_shards_merge_like_one_folder(tmp_path: Path) -> None:
    recipes = _recipes()
    whole = build_dataset(tmp_path / "whole", recipes)
    merge_dataset(whole)
    shards = [build_dataset(tmp_path / f"shard{i}", recipes[i::2]) for i in range(2)]
    # A worker of shard 1 wrote its image too: the merge brings it along.
    (shards[1] / "images").mkdir()
    (shards[1] / "images" / "scene000001_cam00.png").write_bytes(b"png bytes")
    report = merge_dataset(list(reversed(shards)), tmp_path / "merged")
    assert report.ok
    assert _snapshot(tmp_path / "merged") == _snapshot(whole)
    assert (tmp_path / "merged" / "images" / "scene000001_cam00.png").read_bytes() == b"png bytes"
    # The merged folder is a dataset of its own: merging it again gives the same bytes.
    merge_dataset(tmp_path / "merged")
    assert _snapshot(tmp_path / "merged") == _snapshot(whole)


def test_record_order_in_a_label_file_does_not_matter(tmp_path: Path) -> None:
    a = build_dataset(tmp_path / "a", [tag_scene(0)])
    b = build_dataset(tmp_path / "b", [tag_scene(0)])
    label = b / "labels" / "scene000000_cam01.json"
    doc = json.loads(label.read_text())
    doc["records"].reverse()
    label.write_text(json.dumps(doc, indent=4))
    merge_dataset(a)
    merge_dataset(b)
    assert _snapshot(a) == _snapshot(b)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "", "not valid JSON"),
        (lambda text: text.replace('"width"', '"wdith"'), "not a label document"),
        (lambda text: text.replace("scene000000_cam01", "scene000000_cam07"), "is named"),
    ],
)
def test_broken_label_files_are_named_and_skipped(tmp_path: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    build_dataset(tmp_path, [tag_scene(0)])
    label = tmp_path / "labels" / "scene000000_cam01.json"
    label.write_text(damage(label.read_text()))
    (tmp_path / "labels" / "garbage.json").write_bytes(b"\xff\xfe\x00binary")
    report = merge_dataset(tmp_path)
    names = sorted(Path(name).name for name, _ in report.skipped)
    assert names == ["garbage.json", "scene000000_cam01.json"]
    assert reason in dict((Path(n).name, r) for n, r in report.skipped)["scene000000_cam01.json"]
    assert report.num_images == 2 and not report.ok
    coco = json.loads((tmp_path / "coco_labels.json").read_text())
    assert [im["image_key"] for im in coco["images"]] == ["scene000000_cam00", "scene000000_cam02"]
    assert main_merge(tmp_path) == 1


def test_labels_without_recipes(tmp_path: Path) -> None:
    build_dataset(tmp_path, [tag_scene(0)], write_recipes=False)
    assert main_merge(tmp_path) == 0
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert provenance["images"]["scene000000_cam00"]["random_seed"] is None


def test_conflicting_shards_are_reported(tmp_path: Path) -> None:
    a = build_dataset(tmp_path / "a", [tag_scene(0)])
    b = tmp_path / "b"
    shutil.copytree(a, b)
    label = b / "labels" / "scene000000_cam00.json"
    label.write_text(label.read_text().replace('"camera_name":"cam0"', '"camera_name":"camX"', 1))
    report = merge_dataset([a, b], tmp_path / "m")
    assert report.conflicts and "scene000000_cam00" in report.conflicts[0]


def test_nothing_to_merge(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no label files"):
        merge_dataset(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        merge_dataset(tmp_path / "missing")
    assert not (tmp_path / "rich_truth.json").exists()


@pytest.mark.parametrize(
    "distortion",
    [("brown_conrady", [-0.3, 0.1, 0.001, -0.001, 0.0]), ("kannala_brandt", [0.05, -0.02, 0.004, -0.001])],
)
def test_coco_polygons_follow_the_lens(tmp_path: Path, distortion: tuple[str, list[float]]) -> None:
    """Under distortion straight edges curve: the COCO polygon is the traced outline, not the 4 corners."""
    from render_tag_shared.records import polygon_bbox_area

    from .dataset_builders import camera, orbit

    scene = tag_scene(0, n_cameras=1)
    lens = camera("cam0", orbit(0.5, 30, 60), distortion=distortion)
    scene = scene.model_copy(update={"cameras": [lens]})
    build_dataset(tmp_path, [scene])
    merge_dataset(tmp_path)
    coco = json.loads((tmp_path / "coco_labels.json").read_text())
    assert len(coco["annotations"]) == 3
    for annotation in coco["annotations"]:
        polygon = annotation["segmentation"][0]
        # The traced outline (16 points an edge), clipped to the image: far more than 4 corners.
        assert len(polygon) % 2 == 0 and len(polygon) > 2 * 4 * 8
        assert min(polygon[0::2]) >= -0.5 and max(polygon[0::2]) <= 639.5
        assert min(polygon[1::2]) >= -0.5 and max(polygon[1::2]) <= 479.5
        x, y, w, h = annotation["bbox"]
        xs, ys = polygon[0::2], polygon[1::2]
        assert (x, y, x + w, y + h) == pytest.approx((min(xs), min(ys), max(xs), max(ys)))
        corners = [annotation["keypoints"][i : i + 2] for i in range(0, 12, 3)]
        _, straight_area = polygon_bbox_area(corners)
        assert annotation["area"] != pytest.approx(straight_area, rel=1e-4)
