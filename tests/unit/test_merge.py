"""The merge: atomic, byte-stable, shard-independent, and robust to broken label files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from render_tag.cli.dataset import main_merge
from render_tag.dataset.merge import merge_dataset
from render_tag_shared.errors import InputError
from render_tag_shared.records import COORDINATE_CONVENTION

from ..builders import build_dataset, charuco_scene, tag_scene

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
    markers = [r for r in truth["records"] if r["record_type"] == "MARKER"]
    assert len(markers) == 17 * 3  # each view of the ChArUco board: its 17 markers, beside the board
    assert len(truth["records"]) == report.num_records == 9 * 3 + 3 + 17 * 3
    record = truth["records"][0]
    keys = "image_id record_type tag_family tag_id corners corners_visibility k_matrix resolution"
    keys += " distortion_model"
    keys += " distortion_coeffs position rotation_quaternion distance angle_of_incidence ppm tag_size_mm"
    assert set(keys.split()) <= set(record)

    coco = json.loads((tmp_path / "coco_labels.json").read_text())
    assert COORDINATE_CONVENTION in coco["info"]["coordinate_convention"]
    # Ids from what an image is (scene * 1000 + camera + 1), annotations from (image id, record index).
    assert [im["id"] for im in coco["images"]] == [1000 * s + c + 1 for s in range(4) for c in range(3)]
    assert [im["image_key"] for im in coco["images"]] == sorted(im["image_key"] for im in coco["images"])
    ids = [a["id"] for a in coco["annotations"]]
    per_image = {im["id"]: 3 if im["scene_id"] != 2 else 1 + 17 for im in coco["images"]}
    assert ids == [1000 * image + k + 1 for image, n in per_image.items() for k in range(n)]
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
    assert len(rows) == 1 + 27 + 17 * 3  # tags, and the board's markers
    assert sum(1 for row in rows if row.startswith("scene000002_cam00,DICT_5X5_100,")) == 17

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
    shards = [build_dataset(tmp_path / f"shard{i}", recipes[i::2]) for i in range(2)]
    # A worker of shard 1 wrote its image too (as did the one run): the merge brings it along.
    for folder in (shards[1], whole):
        (folder / "images").mkdir(exist_ok=True)
        (folder / "images" / "scene000001_cam00.png").write_bytes(b"png bytes")
    merge_dataset(whole)
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

    from ..builders import camera, orbit

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


def test_coco_ids_survive_added_images(tmp_path: Path) -> None:
    """A resumed render or another shard adds images: every other image and annotation keeps its id."""

    def ids(folder: Path) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        coco = json.loads((folder / "coco_labels.json").read_text())
        keys = {im["id"]: im["image_key"] for im in coco["images"]}
        images = {im["image_key"]: im["id"] for im in coco["images"]}
        annotations = {
            (keys[a["image_id"]], a["attributes"]["object_name"]): a["id"] for a in coco["annotations"]
        }
        return images, annotations

    build_dataset(tmp_path, [tag_scene(0), tag_scene(3, n_cameras=2)])
    merge_dataset(tmp_path)
    images_before, annotations_before = ids(tmp_path)
    # Scene 1 arrives (it sorts between the others), and scene 3 gains a camera.
    build_dataset(tmp_path, [tag_scene(1, n_cameras=1), tag_scene(3, n_cameras=3)])
    merge_dataset(tmp_path)
    images_after, annotations_after = ids(tmp_path)
    assert len(images_after) == len(images_before) + 2
    assert {k: images_after[k] for k in images_before} == images_before
    assert {k: annotations_after[k] for k in annotations_before} == annotations_before
    assert images_after["scene000001_cam00"] == 1001 and images_after["scene000003_cam02"] == 3003
    coco = json.loads((tmp_path / "coco_labels.json").read_text())
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])


def test_a_camera_index_beyond_the_id_range_is_refused(tmp_path: Path) -> None:
    from render_tag_shared.truth import image_labels

    build_dataset(tmp_path, [tag_scene(0, n_cameras=1)])
    labels = image_labels(tag_scene(0, n_cameras=1), 0)
    big = "scene000000_cam1000"
    records = [r.model_copy(update={"image_id": big}) for r in labels.records]
    labels = labels.model_copy(update={"image_id": big, "file_name": f"images/{big}.png", "records": records})
    (tmp_path / "labels" / f"{big}.json").write_text(labels.model_dump_json())
    with pytest.raises(InputError, match="camera index 1000") as info:
        merge_dataset(tmp_path)
    assert f"labels/{big}.json" in str(info.value)
    assert not (tmp_path / "coco_labels.json").exists()


def test_board_polygons_are_clipped_to_the_image(tmp_path: Path) -> None:
    """A board that runs off the image: its COCO polygon, bbox and area cover only the part inside."""
    import numpy as np

    from render_tag_shared.records import ImageLabels

    from ..builders import camera, orbit

    target = np.array([0.16, 0.0, 0.0])
    scene = charuco_scene(0, n_cameras=1)
    scene = scene.model_copy(update={"cameras": [camera("cam0", orbit(0.45, 0.0, 85.0, target), target)]})
    build_dataset(tmp_path, [scene])
    labels = ImageLabels.model_validate_json((tmp_path / "labels" / "scene000000_cam00.json").read_text())
    (board,) = [r for r in labels.records if r.record_type == "BOARD"]
    outline = np.asarray(board.outline or board.corners)
    assert outline[:, 0].min() < -0.5 or outline[:, 0].max() > 639.5  # the board does run off the image
    merge_dataset(tmp_path)
    coco = json.loads((tmp_path / "coco_labels.json").read_text())
    (annotation,) = [a for a in coco["annotations"] if a["category_id"] >= 1000]
    polygon = annotation["segmentation"][0]
    xs, ys = polygon[0::2], polygon[1::2]
    assert min(xs) >= -0.5 and max(xs) <= 639.5 and min(ys) >= -0.5 and max(ys) <= 479.5
    x, y, w, h = annotation["bbox"]
    assert x >= -0.5 and y >= -0.5 and x + w <= 639.5 + 1e-9 and y + h <= 479.5 + 1e-9
    assert 0 < annotation["area"] <= 640 * 480


def test_provenance_records_the_render_environment_and_image_hashes(tmp_path: Path) -> None:
    import hashlib

    build_dataset(tmp_path, [tag_scene(0)])
    environment = {
        "blender_version": "4.2.23 LTS",
        "blender_build": "abc123",
        "cpu": "x86_64 Xeon",
        "oidn": "2.2",
    }
    label = tmp_path / "labels" / "scene000000_cam01.json"
    doc = json.loads(label.read_text())
    doc["render_environment"] = environment
    label.write_text(json.dumps(doc))
    (tmp_path / "images").mkdir()
    png = b"\x89PNG\r\n\x1a\n not really a png"
    (tmp_path / "images" / "scene000000_cam01.png").write_bytes(png)
    merge_dataset(tmp_path)
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    entry = provenance["images"]["scene000000_cam01"]
    assert entry["render_environment"] == environment
    assert entry["image_sha256"] == hashlib.sha256(png).hexdigest()
    missing = provenance["images"]["scene000000_cam00"]
    assert missing["image_sha256"] is None and missing["render_environment"] == {}
