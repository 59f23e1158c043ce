"""`RenderTagDataset`: a render-tag dataset folder as typed records and calibration-ready point sets.

People load a dataset in one line and hand it to OpenCV; this module is that line. It reads the per-image
label files (the source of truth, written with each image) and falls back on `rich_truth.json` when a
dataset was shipped without them. `calibration_frames` matches 3D points in the library's board frame
(OpenCV's ChArUco frame, Kalibr's AprilGrid frame) with their 2D ground truth, sentinels and points
outside the eval margin removed, so `cv2.calibrateCamera` and `cv2.solvePnP` take them as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from render_tag_shared.boards import BoardDefinition, board_keypoints
from render_tag_shared.errors import InputError
from render_tag_shared.recipe import tag_corners_object_frame
from render_tag_shared.records import DetectionRecord

from .labels import image_file_name, read_labels_folder

__all__ = ["CalibrationFrame", "DatasetImage", "RenderTagDataset", "opencv_dist_coeffs"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def opencv_dist_coeffs(model: str, coeffs: list[float]) -> F64:
    """The distortion vector OpenCV takes: 5 zeros for a pinhole, k1 k2 p1 p2 k3, or fisheye k1..k4."""
    if model == "none":
        return np.zeros(5)
    return np.asarray(coeffs, dtype=np.float64)


@dataclass(frozen=True)
class DatasetImage:
    """One image of a dataset: where it is and what is in it."""

    image_id: str
    path: Path
    width: int
    height: int
    scene_id: int
    camera_name: str
    records: list[DetectionRecord] = field(default_factory=list)

    @property
    def tags(self) -> list[DetectionRecord]:
        return [r for r in self.records if r.record_type == "TAG"]

    @property
    def boards(self) -> list[DetectionRecord]:
        return [r for r in self.records if r.record_type == "BOARD"]


@dataclass(frozen=True)
class CalibrationFrame:
    """Matched points of one object in one image, ready for cv2.calibrateCamera / cv2.solvePnP.

    `object_points` are in the object's library frame (boards: OpenCV's or Kalibr's board frame; tags:
    OpenCV's single-marker frame, centre origin, y up), `point_ids` the library's corner ids.
    `k_matrix`, `dist_coeffs` and `distortion_model` are the true camera (dist_coeffs as OpenCV takes
    them: `cv2.fisheye` for "kannala_brandt"); `rvec`/`tvec` the true pose of that frame.
    """

    image_id: str
    object_name: str
    record_type: str
    object_points: F32
    image_points: F32
    point_ids: npt.NDArray[np.int32]
    k_matrix: F64
    dist_coeffs: F64
    distortion_model: str
    resolution: tuple[int, int]
    rvec: F64
    tvec: F64
    board_definition: BoardDefinition | None = None

    def __len__(self) -> int:
        return len(self.point_ids)


def _rotation_vector(quaternion: tuple[float, float, float, float]) -> F64:
    import cv2

    from render_tag_shared.geometry import quat_to_matrix

    rvec, _ = cv2.Rodrigues(quat_to_matrix(np.asarray(quaternion, dtype=np.float64)))
    return np.asarray(rvec, dtype=np.float64).reshape(3)


def frame_of_record(record: DetectionRecord, min_points: int = 4) -> CalibrationFrame | None:
    """The calibration frame of one record, or None when fewer than `min_points` points are visible."""
    if record.record_type == "BOARD":
        if record.board_definition is None or record.keypoints is None or record.keypoints_visibility is None:
            return None
        object_all = board_keypoints(record.board_definition)
        points = np.asarray(record.keypoints, dtype=np.float64)
        vis = np.asarray(record.keypoints_visibility)
    else:
        object_all = tag_corners_object_frame(record.tag_size_mm)
        points = np.asarray(record.corners, dtype=np.float64)
        vis = np.asarray(record.corners_visibility)
    if len(points) != len(object_all) or len(vis) != len(object_all):
        return None
    keep = (vis == 2) & np.isfinite(points).all(axis=1)
    if int(keep.sum()) < min_points:
        return None
    return CalibrationFrame(
        image_id=record.image_id,
        object_name=record.object_name,
        record_type=record.record_type,
        object_points=object_all[keep].astype(np.float32),
        image_points=points[keep].astype(np.float32),
        point_ids=np.flatnonzero(keep).astype(np.int32),
        k_matrix=np.asarray(record.k_matrix, dtype=np.float64),
        dist_coeffs=opencv_dist_coeffs(record.distortion_model, list(record.distortion_coeffs)),
        distortion_model=record.distortion_model,
        resolution=(int(record.resolution[0]), int(record.resolution[1])),
        rvec=_rotation_vector(record.rotation_quaternion),
        tvec=np.asarray(record.position, dtype=np.float64),
        board_definition=record.board_definition,
    )


class RenderTagDataset:
    """A dataset folder: `dataset.images`, `dataset[image_id]`, `dataset.records`, calibration frames.

    Corrupt label files do not stop the reader: they are listed in `skipped` as (file, reason).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(str(self.root), "", "not a dataset folder")
        self.skipped: list[tuple[str, str]] = []
        self._images: dict[str, DatasetImage] = {}
        if (self.root / "labels").is_dir():
            self._load_labels()
        elif (self.root / "rich_truth.json").is_file():
            self._load_rich_truth()
        else:
            raise InputError(
                str(self.root), "labels", "neither labels/ nor rich_truth.json: not a render-tag dataset"
            )

    def _image_path(self, file_name: str, image_id: str) -> Path:
        direct = self.root / file_name
        if direct.exists():
            return direct
        under_images = self.root / "images" / Path(file_name).name
        return under_images if under_images.exists() else self.root / image_file_name(image_id)

    def _load_labels(self) -> None:
        loaded, self.skipped = read_labels_folder(self.root)
        for _, labels in loaded:
            self._images[labels.image_id] = DatasetImage(
                image_id=labels.image_id,
                path=self._image_path(labels.file_name, labels.image_id),
                width=labels.width,
                height=labels.height,
                scene_id=labels.scene_id,
                camera_name=labels.camera_name,
                records=list(labels.records),
            )

    def _load_rich_truth(self) -> None:
        source = self.root / "rich_truth.json"
        try:
            document = json.loads(source.read_text(encoding="utf-8"))
            records = [DetectionRecord.model_validate(r) for r in document["records"]]
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            raise InputError(str(source), "records", f"cannot be read: {exc}") from exc
        grouped: dict[str, list[DetectionRecord]] = {}
        for image_id in document.get("evaluation_context", {}).get("image_ids", []):
            grouped.setdefault(image_id, [])
        for record in records:
            grouped.setdefault(record.image_id, []).append(record)
        for image_id, group in grouped.items():
            width, height = group[0].resolution if group else (0, 0)
            self._images[image_id] = DatasetImage(
                image_id=image_id,
                path=self._image_path(image_file_name(image_id), image_id),
                width=width,
                height=height,
                scene_id=group[0].scene_id if group else -1,
                camera_name=group[0].camera_name if group else "",
                records=group,
            )

    # -- access ----------------------------------------------------------------------------------

    @property
    def image_ids(self) -> list[str]:
        return sorted(self._images)

    @property
    def images(self) -> list[DatasetImage]:
        """Every image, sorted by image id."""
        return [self._images[k] for k in self.image_ids]

    def __getitem__(self, image_id: str) -> DatasetImage:
        try:
            return self._images[image_id]
        except KeyError:
            raise KeyError(f"no image {image_id!r} in {self.root}") from None

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._images

    def __len__(self) -> int:
        return len(self._images)

    def __iter__(self) -> Iterator[DatasetImage]:
        return iter(self.images)

    @property
    def records(self) -> list[DetectionRecord]:
        return [r for image in self.images for r in image.records]

    def tags(self, family: str | None = None) -> list[DetectionRecord]:
        return [
            r for r in self.records if r.record_type == "TAG" and (family is None or r.tag_family == family)
        ]

    def boards(self) -> list[DetectionRecord]:
        return [r for r in self.records if r.record_type == "BOARD"]

    def scene(self, scene_id: int) -> list[DatasetImage]:
        return [image for image in self.images if image.scene_id == scene_id]

    def calibration_frames(self, board_only: bool = True, min_points: int = 6) -> list[CalibrationFrame]:
        """Matched 3D-2D points per object and image (visibility 2 only), sorted by image id.

        Tags count too with `board_only=False` (4 points each; `min_points` is then at most 4 for them).
        """
        frames = []
        for record in self.records:
            if board_only and record.record_type != "BOARD":
                continue
            needed = min_points if record.record_type == "BOARD" else min(min_points, 4)
            frame = frame_of_record(record, needed)
            if frame is not None:
                frames.append(frame)
        return frames
