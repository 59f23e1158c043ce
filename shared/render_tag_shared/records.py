"""Detection records: the rich-truth record of DESIGN.md and its COCO and CSV forms.

The add-on writes `labels/<image_id>.json` with these records and the host merges them, so both go
through this one module. Pixel coordinates follow OpenCV (the centre of the top-left pixel is (0, 0)) in
every format, COCO included; a keypoint that is not labelled is the sentinel (-1, -1) with visibility 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, computed_field, model_serializer, model_validator

from .boards import BoardDefinition
from .families import FAMILY_NAMES
from .image_space import polygon_area
from .lens import DistortionModel
from .recipe import FiniteFloat, StrictModel

RICH_TRUTH_VERSION = "2.0"
COORDINATE_CONVENTION = "opencv: the centre of the top-left pixel is (0, 0)"
COCO_KEYPOINT_NAMES = ("tl", "tr", "br", "bl")
Point2 = tuple[FiniteFloat, FiniteFloat]


class DetectionRecord(StrictModel):
    """One tag, board, or marker of a board as seen by one camera.

    A MARKER record is one marker of a ChArUco board or AprilGrid (`object_name` is the board's): its
    dictionary id and its corners as an ArUco detector reports them (TL, TR, BR, BL), its pose the
    marker's own frame, as a loose tag's is; it sits beside the board's record and keypoints.
    """

    image_id: str
    scene_id: int = Field(ge=0)
    camera_name: str
    object_name: str
    record_type: Literal["TAG", "BOARD", "MARKER"]
    tag_family: str = Field(description="the tag family, or the board's dictionary")
    tag_id: int | None = Field(description="the marker id; None for a board")
    corners: list[Point2] = Field(description="TL, TR, BR, BL of the tag's black border (board: outline)")
    corners_visibility: list[Literal[0, 1, 2]]
    outline: list[Point2] = Field(
        default_factory=list, description="the border traced through the lens (curved under distortion)"
    )
    keypoints: list[Point2] | None = None
    keypoints_visibility: list[Literal[0, 1, 2]] | None = None
    board_definition: BoardDefinition | None = None
    k_matrix: list[list[FiniteFloat]]
    resolution: tuple[int, int]
    distortion_model: DistortionModel
    distortion_coeffs: list[FiniteFloat]
    position: tuple[FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        description="object origin in the camera frame (metres, OpenCV axes)"
    )
    rotation_quaternion: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        description="object-to-camera rotation (w, x, y, z); boards: the library's board frame"
    )
    distance: FiniteFloat = Field(description="metres from the camera centre to the object's centre")
    angle_of_incidence: FiniteFloat = Field(description="degrees between the view ray and the normal")
    ppm: FiniteFloat = Field(description="pixels per module at the object's centre")
    tag_size_mm: FiniteFloat = Field(description="tag: border edge; board: marker size")
    border_bits: int = Field(1, ge=1, description="black border of the marker(s) in modules")

    @model_validator(mode="before")
    @classmethod
    def _derived_fields_are_not_input(cls, data: Any) -> Any:
        """`eval_complete` is written with every record but derived from the visibilities: a file's
        value is dropped on reading (the visibilities are the truth), so records round-trip."""
        if isinstance(data, dict) and "eval_complete" in data:
            data = {key: value for key, value in data.items() if key != "eval_complete"}
        return data

    @property
    def fully_visible(self) -> bool:
        return all(v == 2 for v in self.corners_visibility)

    @computed_field(  # type: ignore[prop-decorator]
        description="every point the object is evaluated on has visibility 2 (in the image, outside the "
        "eval margin, not hidden): tags their 4 corners, boards all their keypoints"
    )
    @property
    def eval_complete(self) -> bool:
        """The seed's record-level filter: `[r for r in records if r.eval_complete]` keeps the objects a
        detector can be scored on whole. Boards roll up their keypoints (the seed left boards out);
        filter single board keypoints with `keypoints_visibility == 2`."""
        if self.record_type == "BOARD" and self.keypoints_visibility is not None:
            return all(v == 2 for v in self.keypoints_visibility)
        return all(v == 2 for v in self.corners_visibility)

    def seed_attributes(self) -> dict[str, Any]:
        """What the seed system put in a COCO annotation's `attributes` (pose units as in the record)."""
        return {
            "tag_family": self.tag_family,
            "tag_id": self.tag_id,
            "object_name": self.object_name,
            "distance": self.distance,
            "angle_of_incidence": self.angle_of_incidence,
            "ppm": self.ppm,
            "eval_complete": self.eval_complete,
        }


class MaskObject(StrictModel):
    """One object's id in the image's instance mask, and the region of it that is visible there."""

    id: int = Field(ge=1, description="its value in masks/<image_id>.png (0: nothing, the world)")
    object_name: str
    object_type: str
    area: int = Field(0, ge=0, description="visible pixels")
    bbox: tuple[float, float, float, float] | None = Field(
        None, description="[x, y, w, h] of the visible pixels, OpenCV coordinates (pixel centres at integers)"
    )
    rle: dict[str, Any] | None = Field(
        None,
        description="COCO's uncompressed RLE of the visible pixels: {size: [h, w], counts}, column-major",
    )


class ImageOutputs(StrictModel):
    """The per-image files besides the picture (renderer.outputs), relative to the dataset folder."""

    masks: str | None = Field(None, description="16-bit PNG: each pixel the id of the object seen there")
    depth: str | None = Field(
        None,
        description="16-bit PNG: z along the optical axis in millimetres (0: no surface, or beyond 65.535 m)",
    )
    normals: str | None = Field(
        None, description="16-bit RGB PNG: unit normal in camera axes (OpenCV), (n + 1) / 2 * 65535; 0 = none"
    )
    mask_objects: list[MaskObject] = Field(default_factory=list, description="every object of the recipe")


class ImageLabels(StrictModel):
    """labels/<image_id>.json: everything the merge needs about one image."""

    image_id: str
    file_name: str
    width: int
    height: int
    scene_id: int
    camera_name: str
    recipe_hash: str
    eval_margin_px: float = Field(0.0, ge=0, description="the camera's eval margin the visibility used")
    render_environment: dict[str, str] = Field(
        default_factory=dict, description="Blender version, CPU, OIDN build: what bit identity depends on"
    )
    records: list[DetectionRecord] = Field(default_factory=list)
    outputs: ImageOutputs | None = Field(None, description="masks, depth, normals: when the recipe asks")

    @model_serializer(mode="wrap")
    def _without_absent_outputs(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A label file without masks or depth keeps the bytes it had before they existed."""
        data: dict[str, Any] = handler(self)
        if data.get("outputs") is None:
            data.pop("outputs", None)
        return data

    def mask_object(self, object_name: str) -> MaskObject | None:
        """The mask entry of an object, when the image has masks."""
        if self.outputs is None:
            return None
        return next((m for m in self.outputs.mask_objects if m.object_name == object_name), None)


def coco_categories() -> list[dict[str, Any]]:
    """One category per tag family, ids fixed by the family list (stable across datasets)."""
    return [
        {
            "id": index + 1,
            "name": name,
            "supercategory": "fiducial",
            "keypoints": list(COCO_KEYPOINT_NAMES),
            "skeleton": [[1, 2], [2, 3], [3, 4], [4, 1]],
        }
        for index, name in enumerate(FAMILY_NAMES)
    ]


def coco_category_id(family: str) -> int:
    return FAMILY_NAMES.index(family) + 1


def clip_polygon(points: Sequence[Sequence[float]], resolution: tuple[int, int]) -> list[tuple[float, float]]:
    """The part of a polygon inside the image area [-0.5, W - 0.5] x [-0.5, H - 0.5] (Sutherland-Hodgman)."""
    x_min, y_min, x_max, y_max = -0.5, -0.5, resolution[0] - 0.5, resolution[1] - 0.5
    edges = [(0, x_min, 1.0), (0, x_max, -1.0), (1, y_min, 1.0), (1, y_max, -1.0)]
    polygon = [(float(p[0]), float(p[1])) for p in points]
    for axis, bound, sign in edges:
        if not polygon:
            break
        clipped: list[tuple[float, float]] = []
        for i, current in enumerate(polygon):
            previous = polygon[i - 1]
            current_in = sign * (current[axis] - bound) >= 0
            previous_in = sign * (previous[axis] - bound) >= 0
            if current_in != previous_in:
                t = (bound - previous[axis]) / (current[axis] - previous[axis])
                clipped.append(
                    (
                        previous[0] + t * (current[0] - previous[0]),
                        previous[1] + t * (current[1] - previous[1]),
                    )
                )
            if current_in:
                clipped.append(current)
        polygon = clipped
    return polygon


def polygon_bbox_area(points: Sequence[Sequence[float]]) -> tuple[list[float], float]:
    """COCO bbox [x, y, w, h] and the polygon's unsigned area."""
    if not points:
        return [0.0, 0.0, 0.0, 0.0], 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, y0 = min(xs), min(ys)
    return [x0, y0, max(xs) - x0, max(ys) - y0], abs(polygon_area(points))


def segmentation_bbox_area(
    record: DetectionRecord, mask: MaskObject | None = None
) -> tuple[list[list[float]] | dict[str, Any], list[float], float]:
    """COCO segmentation, bbox and area: the visible pixels of the object's mask (an RLE) when the image
    has masks, else the part of its outline inside the image (a polygon, occlusion not cut out)."""
    if mask is not None and mask.rle is not None and mask.bbox is not None:
        return dict(mask.rle), [float(v) for v in mask.bbox], float(mask.area)
    outline = clip_polygon(record.outline or record.corners, record.resolution)
    bbox, area = polygon_bbox_area(outline)
    return [[float(c) for point in outline for c in point]], bbox, area


def coco_annotation(
    record: DetectionRecord, annotation_id: int, image_number: int, mask: MaskObject | None = None
) -> dict[str, Any]:
    """A COCO keypoint annotation for a TAG or MARKER record (4 keypoints: tl, tr, br, bl).

    Segmentation, bbox and area: see `segmentation_bbox_area` (a MARKER is given no mask: its board's
    covers more than the marker).
    """
    keypoints: list[float] = []
    for (x, y), v in zip(record.corners, record.corners_visibility, strict=True):
        keypoints.extend([float(x), float(y), int(v)] if v else [0.0, 0.0, 0])
    segmentation, bbox, area = segmentation_bbox_area(record, mask)
    return {
        "id": annotation_id,
        "image_id": image_number,
        "category_id": coco_category_id(record.tag_family),
        "segmentation": segmentation,
        "area": area,
        "bbox": bbox,
        "iscrowd": 0,
        "keypoints": keypoints,
        "num_keypoints": sum(1 for v in record.corners_visibility if v),
        "attributes": record.seed_attributes(),
    }


CSV_COLUMNS = (
    "image_id",
    "tag_family",
    "tag_id",
    "x_tl",
    "y_tl",
    "x_tr",
    "y_tr",
    "x_br",
    "y_br",
    "x_bl",
    "y_bl",
    "v_tl",
    "v_tr",
    "v_br",
    "v_bl",
)


def csv_text(records: Iterable[DetectionRecord]) -> str:
    """ground_truth.csv: one row per tag and per board marker (ChArUco, AprilGrid), corners TL, TR, BR,
    BL, then their visibilities."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        if record.record_type not in ("TAG", "MARKER"):
            continue
        row: list[object] = [record.image_id, record.tag_family, record.tag_id]
        row.extend(f"{c:.6f}" for point in record.corners for c in point)
        row.extend(record.corners_visibility)
        writer.writerow(row)
    return buffer.getvalue()


def rich_truth_document(
    records: Iterable[DetectionRecord], evaluation_context: dict[str, Any]
) -> dict[str, Any]:
    """rich_truth.json as DESIGN.md fixes it."""
    return {
        "version": RICH_TRUTH_VERSION,
        "evaluation_context": {"coordinate_convention": COORDINATE_CONVENTION, **evaluation_context},
        "records": [r.model_dump(mode="json") for r in records],
    }
