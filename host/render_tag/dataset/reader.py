"""`RenderTagDataset`: a render-tag dataset folder as typed records and calibration-ready point sets.

People load a dataset in one line and hand it to OpenCV; this module is that line. It reads the per-image
label files (the source of truth, written with each image) and falls back on `rich_truth.json` when a
dataset was shipped without them. `calibration_frames` matches 3D points in the library's board frame
(OpenCV's ChArUco frame, Kalibr's AprilGrid frame) with their 2D ground truth, sentinels and points
outside the eval margin removed, so `cv2.calibrateCamera` and `cv2.solvePnP` take them as they are.

Code written against the seed system's reader works unchanged: `RenderTagDataset.from_json(path)` and
`from_records(records)`, `get_records`, `get_tag_records`, `get_board_record`, `iter_calibration_frames`
and `get_calibration_frame`, and on each frame `get_valid_calibration_pairs()` (object points in
millimetres, as the seed gave them) and `get_all_keypoints_with_visibility()`. `rich_truth.json` is read
in both wire formats: version 2, `{"version": "2.0", "evaluation_context": {...}, "records": [...]}`,
and version 1, a bare JSON array of records (see `read_rich_truth`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from render_tag_shared.boards import BoardDefinition, board_keypoints
from render_tag_shared.errors import InputError, input_error_from_validation
from render_tag_shared.recipe import tag_corners_object_frame
from render_tag_shared.records import DetectionRecord

from .labels import image_file_name, read_labels_folder

__all__ = ["CalibrationFrame", "DatasetImage", "RenderTagDataset", "opencv_dist_coeffs", "read_rich_truth"]

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
    record: DetectionRecord | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.point_ids)

    # -- the seed system's names -------------------------------------------------------------------

    def get_valid_calibration_pairs(self) -> tuple[F64, F64, npt.NDArray[np.int32]]:
        """(object points (N, 3) in MILLIMETRES, image points (N, 2) in px, keypoint ids (N,)) as float64.

        The seed's call: its object points were millimetres, so these are too (`object_points` is in
        metres). The frame is the library's (OpenCV's ChArUco board frame, Kalibr's AprilGrid frame; a
        tag's is OpenCV's single-marker frame), the one the record's pose is given in; the seed used a
        centred board frame, which shifts the points in the plane and changes the pose of the frame
        only. Points are those of visibility 2 (in the image, outside the eval margin): the seed kept
        every non-sentinel point, but visibility 1 here also flags points outside the image.
        """
        ids = self.point_ids.astype(np.int32)
        if self.record is None:
            return self.object_points.astype(np.float64) * 1000.0, self.image_points.astype(np.float64), ids
        object_all, points, _ = _points_of(self.record)
        return object_all[ids] * 1000.0, points[ids], ids

    def get_all_keypoints_with_visibility(self) -> tuple[F64, npt.NDArray[np.bool_]]:
        """(every keypoint (N, 2) with sentinels (-1, -1) kept, True where its visibility is 2).

        Boards: all keypoints in the library's corner-id order; tags: the 4 corners TL, TR, BR, BL.
        """
        record = self.record
        if record is None:
            return self.image_points.astype(np.float64), np.ones(len(self.image_points), dtype=bool)
        if record.record_type == "BOARD" and record.keypoints is not None:
            points, vis = record.keypoints, record.keypoints_visibility or []
        else:
            points, vis = record.corners, record.corners_visibility
        return np.asarray(points, dtype=np.float64).reshape(-1, 2), np.asarray(vis) == 2


def _rotation_vector(quaternion: tuple[float, float, float, float]) -> F64:
    import cv2

    from render_tag_shared.geometry import quat_to_matrix

    rvec, _ = cv2.Rodrigues(quat_to_matrix(np.asarray(quaternion, dtype=np.float64)))
    return np.asarray(rvec, dtype=np.float64).reshape(3)


def _points_of(record: DetectionRecord) -> tuple[F64, F64, npt.NDArray[np.int64]]:
    """(object points (N, 3) in metres in the library frame, image points (N, 2), visibilities (N,)):
    a board's keypoints, a tag's corners. Empty for a board record without its definition."""
    if record.record_type == "BOARD":
        if record.board_definition is None or record.keypoints is None or record.keypoints_visibility is None:
            return np.empty((0, 3)), np.empty((0, 2)), np.empty(0, dtype=np.int64)
        object_all = board_keypoints(record.board_definition)
        points = np.asarray(record.keypoints, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(record.keypoints_visibility, dtype=np.int64)
    else:
        object_all = tag_corners_object_frame(record.tag_size_mm)
        points = np.asarray(record.corners, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(record.corners_visibility, dtype=np.int64)
    return np.asarray(object_all, dtype=np.float64), points, vis


def frame_of_record(record: DetectionRecord, min_points: int = 4) -> CalibrationFrame | None:
    """The calibration frame of one record, or None when fewer than `min_points` points are visible."""
    if record.record_type == "BOARD" and record.board_definition is None:
        return None
    object_all, points, vis = _points_of(record)
    if len(object_all) == 0 or len(points) != len(object_all) or len(vis) != len(object_all):
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
        record=record,
    )


def _visibility_without_margin(points: list[Any], resolution: Any) -> list[int]:
    """Version 1 had no eval margin: 0 for a sentinel, 2 inside the image, 1 outside it."""
    width, height = float(resolution[0]), float(resolution[1])
    flags = []
    for x, y in points:
        if x == -1.0 and y == -1.0:
            flags.append(0)
        else:
            flags.append(2 if -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5 else 1)
    return flags


def _upgrade_v1_record(raw: Any) -> Any:
    """A version-1 record as version 2 reads it: a `board_definition` nested in `metadata` moves up,
    `record_type` defaults to TAG, and missing visibilities are derived with no eval margin."""
    if not isinstance(raw, dict):
        return raw
    record = dict(raw)
    metadata = record.pop("metadata", None)
    if isinstance(metadata, dict) and "board_definition" in metadata and "board_definition" not in record:
        record["board_definition"] = metadata["board_definition"]
    record.setdefault("record_type", "TAG")
    resolution = record.get("resolution")
    if resolution is not None:
        if record.get("corners_visibility") is None and isinstance(record.get("corners"), list):
            record["corners_visibility"] = _visibility_without_margin(record["corners"], resolution)
        if record.get("keypoints_visibility") is None and isinstance(record.get("keypoints"), list):
            record["keypoints_visibility"] = _visibility_without_margin(record["keypoints"], resolution)
    return record


def read_rich_truth(path: str | Path) -> tuple[list[DetectionRecord], dict[str, Any]]:
    """(records, evaluation_context) of a rich_truth.json in either wire format.

    Version 2 (what render-tag writes): `{"version": "2.0", "evaluation_context": {...}, "records": [...]}`.
    Version 1: a bare JSON array of records, no evaluation context (returned as {}). Its records are
    read as version-2 records after the seed's migrations (`metadata.board_definition` moves to the top,
    `record_type` defaults to TAG) and, where `corners_visibility` or `keypoints_visibility` is absent,
    visibilities derived with no eval margin (version 1 had none): 0 sentinel, 2 inside the image, 1
    outside. Every other field a record needs must be there; bad input names the file and the field.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(str(source), "", f"cannot be read: {exc}") from exc
    context: Any = {}
    if isinstance(document, list):
        raw_records, prefix = [_upgrade_v1_record(r) for r in document], ""
    elif isinstance(document, dict) and isinstance(document.get("records"), list):
        raw_records, prefix = document["records"], "records"
        context = document.get("evaluation_context") or {}
    else:
        raise InputError(str(source), "records", "neither a version-2 document with `records` nor a list")
    records = []
    for index, raw in enumerate(raw_records):
        try:
            records.append(DetectionRecord.model_validate(raw))
        except ValidationError as exc:
            where = f"{prefix}[{index}]" if prefix else f"[{index}]"
            raise input_error_from_validation(str(source), exc, prefix=where, data=raw) from None
    return records, context if isinstance(context, dict) else {}


def _images_of(
    root: Path, records: Iterable[DetectionRecord], image_ids: Iterable[str] = ()
) -> list[DatasetImage]:
    """Records grouped by image, in first-seen order; `image_ids` adds images that hold no record."""
    grouped: dict[str, list[DetectionRecord]] = {image_id: [] for image_id in image_ids}
    for record in records:
        grouped.setdefault(record.image_id, []).append(record)
    images = []
    for image_id, group in grouped.items():
        width, height = group[0].resolution if group else (0, 0)
        direct = root / image_file_name(image_id)
        images.append(
            DatasetImage(
                image_id=image_id,
                path=direct,
                width=width,
                height=height,
                scene_id=group[0].scene_id if group else -1,
                camera_name=group[0].camera_name if group else "",
                records=group,
            )
        )
    return images


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
        self.evaluation_context: dict[str, Any] = {}
        """rich_truth.json's `evaluation_context` when the dataset was read from it, else {}."""
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

    def _load_rich_truth(self, source: Path | None = None) -> None:
        records, context = read_rich_truth(source or self.root / "rich_truth.json")
        self.evaluation_context = context
        image_ids = context.get("image_ids") or []
        for image in _images_of(self.root, records, image_ids if isinstance(image_ids, list) else []):
            path = self._image_path(image_file_name(image.image_id), image.image_id)
            self._images[image.image_id] = dataclasses.replace(image, path=path)

    # -- the seed system's constructors ----------------------------------------------------------

    @classmethod
    def from_json(cls, path: str | Path) -> RenderTagDataset:
        """The dataset of one rich_truth.json (version 1 or 2, any file name); images are looked for
        beside it (its folder is the root)."""
        source = Path(path)
        if not source.is_file():
            raise InputError(str(source), "", "no such rich-truth file")
        dataset = cls.__new__(cls)
        dataset.root, dataset.skipped, dataset._images, dataset.evaluation_context = source.parent, [], {}, {}
        dataset._load_rich_truth(source)
        return dataset

    @classmethod
    def from_records(cls, records: Iterable[DetectionRecord], root: str | Path = ".") -> RenderTagDataset:
        """A dataset of records already in memory (images are looked for under `root`/images)."""
        dataset = cls.__new__(cls)
        dataset.root, dataset.skipped, dataset.evaluation_context = Path(root), [], {}
        dataset._images = {image.image_id: image for image in _images_of(dataset.root, records)}
        return dataset

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

    # -- the seed system's accessors -------------------------------------------------------------

    def get_records(self, image_id: str) -> list[DetectionRecord]:
        """Every record of an image ([] for an image the dataset does not hold)."""
        image = self._images.get(image_id)
        return list(image.records) if image is not None else []

    def get_tag_records(self, image_id: str) -> list[DetectionRecord]:
        """The TAG records of an image, in the dataset's record order."""
        return [r for r in self.get_records(image_id) if r.record_type == "TAG"]

    def get_board_record(self, image_id: str) -> DetectionRecord | None:
        """The (first) BOARD record of an image, or None."""
        return next((r for r in self.get_records(image_id) if r.record_type == "BOARD"), None)

    def get_calibration_frame(self, image_id: str, min_points: int = 0) -> CalibrationFrame | None:
        """The calibration frame of the image's board (None without a board or below `min_points`)."""
        board = self.get_board_record(image_id)
        return frame_of_record(board, min_points) if board is not None else None

    def iter_calibration_frames(self, min_points: int = 0) -> Iterator[CalibrationFrame]:
        """A frame per image that holds a board, in image order (the seed yielded every one: hence
        `min_points` 0; pass 6 or more to skip the frames cv2.calibrateCamera cannot use)."""
        for image_id in self.image_ids:
            frame = self.get_calibration_frame(image_id, min_points)
            if frame is not None:
                yield frame

    @property
    def board_definition(self) -> BoardDefinition | None:
        """The board of the first BOARD record (a calibration dataset has one board), or None."""
        return next((r.board_definition for r in self.boards() if r.board_definition is not None), None)
