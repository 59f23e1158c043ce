"""The reader: typed records, per-image access, and calibration frames that recover K with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import render_tag
from render_tag.dataset import RenderTagDataset
from render_tag.dataset.merge import merge_dataset
from render_tag_shared.errors import InputError
from render_tag_shared.records import DetectionRecord

from ..builders import K, build_dataset, charuco_scene, tag_scene


@pytest.fixture(scope="module")
def charuco_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    k = [[812.0, 0.0, 331.25], [0.0, 798.0, 236.75], [0.0, 0.0, 1.0]]  # fx != fy, off-centre principal point
    return build_dataset(tmp_path_factory.mktemp("charuco"), [charuco_scene(0, n_cameras=12, k=k)])


def test_exported_at_package_level() -> None:
    assert render_tag.RenderTagDataset is RenderTagDataset


def test_per_image_access_and_typed_records(tmp_path: Path) -> None:
    build_dataset(tmp_path, [tag_scene(0), tag_scene(1)])
    ds = RenderTagDataset(tmp_path)
    assert len(ds) == 6
    assert ds.image_ids == sorted(ds.image_ids)
    image = ds["scene000001_cam02"]
    assert image.path == tmp_path / "images" / "scene000001_cam02.png"
    assert (image.width, image.height) == (640, 480)
    assert all(isinstance(r, DetectionRecord) for r in image.records)
    assert sorted(r.tag_id for r in image.tags) == [3, 4, 5]
    assert len(ds.tags("tag36h11")) == 18 and ds.tags("DICT_4X4_50") == []
    with pytest.raises(KeyError, match="scene000009_cam00"):
        ds["scene000009_cam00"]


def test_reader_falls_back_on_rich_truth(tmp_path: Path) -> None:
    build_dataset(tmp_path, [tag_scene(0)])
    merge_dataset(tmp_path)
    from_labels = RenderTagDataset(tmp_path)
    for label in (tmp_path / "labels").iterdir():
        label.unlink()
    (tmp_path / "labels").rmdir()
    from_truth = RenderTagDataset(tmp_path)
    assert from_truth.image_ids == from_labels.image_ids
    assert from_truth.records == from_labels.records


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a render-tag dataset"):
        RenderTagDataset(tmp_path)


def test_calibration_frames_are_filtered_and_typed(tmp_path: Path) -> None:
    scene = charuco_scene(0, n_cameras=2)
    build_dataset(tmp_path, [scene])
    label = tmp_path / "labels" / "scene000000_cam00.json"
    text = label.read_text()
    ds = RenderTagDataset(tmp_path)
    record = ds["scene000000_cam00"].boards[0]
    # Hide three keypoints: two as sentinels (0), one inside the eval margin (1).
    vis = list(record.keypoints_visibility or [])
    points = list(record.keypoints or [])
    vis[0] = vis[5] = 0
    points[0] = points[5] = (-1.0, -1.0)
    vis[7] = 1
    edited = record.model_copy(update={"keypoints_visibility": vis, "keypoints": points})
    labels_doc = text.replace(record.model_dump_json(), edited.model_dump_json())
    assert labels_doc != text
    label.write_text(labels_doc)
    frames = RenderTagDataset(tmp_path).calibration_frames()
    frame = next(f for f in frames if f.image_id == "scene000000_cam00")
    assert frame.object_points.dtype == np.float32 and frame.object_points.shape == (21, 3)
    assert frame.image_points.dtype == np.float32 and frame.image_points.shape == (21, 2)
    assert 0 not in frame.point_ids and 5 not in frame.point_ids and 7 not in frame.point_ids
    assert not np.any(frame.image_points == -1.0)
    # The true pose reprojects the library-frame points onto the labels (OpenCV's board frame).
    projected, _ = cv2.projectPoints(
        frame.object_points.astype(np.float64), frame.rvec, frame.tvec, frame.k_matrix, frame.dist_coeffs
    )
    assert np.abs(projected.reshape(-1, 2) - frame.image_points).max() < 1e-3
    # solvePnP on a frame recovers that pose.
    ok, _, tvec = cv2.solvePnP(frame.object_points, frame.image_points, frame.k_matrix, frame.dist_coeffs)
    assert ok and np.allclose(tvec.ravel(), frame.tvec, atol=1e-4)


def test_tag_frames_only_when_asked(tmp_path: Path) -> None:
    build_dataset(tmp_path, [tag_scene(0)])
    ds = RenderTagDataset(tmp_path)
    assert ds.calibration_frames() == []
    frames = ds.calibration_frames(board_only=False)
    assert len(frames) == 9 and all(len(f) == 4 for f in frames)


def test_calibration_recovers_k(charuco_dataset: Path) -> None:
    ds = RenderTagDataset(charuco_dataset)
    frames = ds.calibration_frames()
    assert len(frames) >= 10
    true_k = frames[0].k_matrix
    rms, k, dist, _, _ = cv2.calibrateCamera(
        [f.object_points for f in frames],
        [f.image_points for f in frames],
        frames[0].resolution,
        None,
        None,
    )
    assert rms < 0.01
    assert abs(k[0, 0] / true_k[0, 0] - 1) < 1e-3
    assert abs(k[1, 1] / true_k[1, 1] - 1) < 1e-3
    assert abs(k[0, 2] - true_k[0, 2]) < 0.2
    assert abs(k[1, 2] - true_k[1, 2]) < 0.2
    assert np.abs(dist.ravel()[:4]).max() < 1e-3  # k3 is weakly observed by a small board
    assert true_k.tolist() != K  # the dataset's own K, not the builder's default
