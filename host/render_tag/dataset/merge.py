"""The merge: from `labels/<image_id>.json` files to the dataset files of DESIGN.md.

Workers write one label file per image, so a crash loses at most one image and shards never contend
for a file. The merge reads them all and writes `rich_truth.json`, `coco_labels.json`,
`ground_truth.csv` and `provenance.json`, each atomically. It is a pure function of the label files
(and `recipes.json` for seeds and eval margins, and the PNGs for their hashes): images are sorted by image
id, nothing depends on time, paths or the order of shards, so merging twice gives the same bytes and
merging shard folders gives the same files as one folder holding all of them.

COCO ids are derived from what an image is, never from its position in the list: image id
`scene_id * 1000 + camera_index + 1`, annotation id `image id * 1000 + record index + 1` (records in
`record_sort_key` order). Adding or removing images (a resumed render, another shard) leaves every
other image's and annotation's id as it was.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import SCHEMA_VERSION, RecipeFile, SceneRecipe, recipe_hash
from render_tag_shared.recipe_io import load_recipe_file
from render_tag_shared.records import (
    COCO_KEYPOINT_NAMES,
    COORDINATE_CONVENTION,
    RICH_TRUTH_VERSION,
    DetectionRecord,
    ImageLabels,
    MaskObject,
    coco_annotation,
    coco_categories,
    csv_text,
    rich_truth_document,
    segmentation_bbox_area,
)

from ..io import write_bytes_atomic, write_json_atomic, write_text_atomic
from .completeness import MANIFEST, FolderCheck, check_folder, check_sources, file_sha256
from .labels import read_labels_folder

__all__ = [
    "MergeReport",
    "coco_annotation_id",
    "coco_image_id",
    "dataset_versions",
    "file_sha256",
    "merge_dataset",
    "record_sort_key",
]

log = logging.getLogger(__name__)

RICH_TRUTH = "rich_truth.json"
COCO = "coco_labels.json"
CSV = "ground_truth.csv"
PROVENANCE = "provenance.json"
PROVENANCE_VERSION = 2
BOARD_CATEGORY_BASE = 1001
"""Board categories come after the fixed family categories (ids 1..21), far enough to never meet them."""
ID_STRIDE = 1000
"""COCO ids: image id = scene_id * ID_STRIDE + camera_index + 1; annotation id = image id * ID_STRIDE +
record index + 1. A camera index or a record count of ID_STRIDE or more is refused."""
_IMAGE_ID = re.compile(r"scene(\d+)_cam(\d+)")

CORNER_ORDER = "TL, TR, BR, BL: clockwise in the image; index 0 is the marker's own top-left"
VISIBILITY = "2 visible; 1 labelled but outside the image or inside the eval margin; 0 not labelled"


@dataclass
class MergeReport:
    """What a merge did: counts, the label files it skipped and why, and the files it wrote; or, when
    `refused` is not empty, why it wrote nothing (files and manifest disagree, shards of other jobs)."""

    dest: Path
    num_images: int = 0
    num_records: int = 0
    num_annotations: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.conflicts and not self.refused

    def summary(self) -> str:
        if self.refused:
            lines = [f"refused to merge into {self.dest} (nothing written): {len(self.refused)} problem(s)"]
            lines += [f"  {text}" for text in self.refused[:50]]
            if len(self.refused) > 50:
                lines.append(f"  ... and {len(self.refused) - 50} more")
            return "\n".join(lines)
        lines = [f"merged {self.num_images} images, {self.num_records} records into {self.dest}"]
        lines += [f"skipped {name}: {reason}" for name, reason in self.skipped]
        lines += [f"conflict: {text}" for text in self.conflicts]
        lines += [f"note: {text}" for text in self.notes]
        return "\n".join(lines)


def dataset_versions() -> dict[str, str]:
    """Versions of the code that wrote the dataset files (not of the renderer: that is in labels)."""
    import render_tag_shared

    try:
        host = metadata.version("render-tag")
    except metadata.PackageNotFoundError:
        host = "unknown"
    return {
        "render_tag": host,
        "render_tag_shared": getattr(render_tag_shared, "__version__", "unknown"),
        "recipe_schema": SCHEMA_VERSION,
        "rich_truth": RICH_TRUTH_VERSION,
    }


def record_sort_key(record: DetectionRecord) -> tuple[str, str, int, str]:
    """Records of an image in a fixed order, whatever order a worker wrote them in."""
    return (
        record.record_type,
        record.tag_family,
        -1 if record.tag_id is None else record.tag_id,
        record.object_name,
    )


def _load_recipes(folder: Path, report: MergeReport) -> RecipeFile | None:
    path = folder / "recipes.json"
    if not path.is_file():
        return None
    try:
        return load_recipe_file(path)
    except InputError as exc:
        report.notes.append(f"{path}: not used for provenance ({exc})")
        return None


def _copy_if_needed(src: Path, dst: Path) -> None:
    """Brings a shard's file into the merged folder (a hard link when possible: images are big)."""
    if src.resolve() == dst.resolve():
        return
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    try:
        if tmp.exists():
            tmp.unlink()
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        if tmp.exists():
            tmp.unlink()
        write_bytes_atomic(dst, src.read_bytes())


def _board_category_name(record: DetectionRecord) -> str:
    board = record.board_definition
    assert board is not None
    legacy = "_legacy" if board.legacy_pattern else ""
    return f"{board.board_type}_{board.cols}x{board.rows}_{board.dictionary}{legacy}"


def _board_categories(records: list[DetectionRecord]) -> dict[str, dict[str, Any]]:
    """One COCO keypoint category per board layout: its keypoints in the library's corner-id order."""
    counts: dict[str, int] = {}
    for record in records:
        if record.record_type == "BOARD" and record.board_definition is not None:
            counts[_board_category_name(record)] = record.board_definition.num_keypoints
    return {
        name: {
            "id": BOARD_CATEGORY_BASE + index,
            "name": name,
            "supercategory": "calibration_board",
            "keypoints": [f"corner_{i}" for i in range(counts[name])],
            "skeleton": [],
        }
        for index, name in enumerate(sorted(counts))
    }


def _board_annotation(
    record: DetectionRecord, annotation_id: int, image_number: int, category: int, mask: MaskObject | None
) -> dict[str, Any]:
    """A COCO keypoint annotation of a board: its keypoints (sentinels become 0, 0, 0 as COCO asks)."""
    keypoints: list[float] = []
    points = record.keypoints or []
    vis = record.keypoints_visibility or []
    for (x, y), v in zip(points, vis, strict=True):
        keypoints.extend([float(x), float(y), int(v)] if v else [0.0, 0.0, 0])
    segmentation, bbox, area = segmentation_bbox_area(record, mask)
    board = record.board_definition
    return {
        "id": annotation_id,
        "image_id": image_number,
        "category_id": category,
        "segmentation": segmentation,
        "area": area,
        "bbox": bbox,
        "iscrowd": 0,
        "keypoints": keypoints,
        "num_keypoints": sum(1 for v in vis if v),
        "attributes": {
            **record.seed_attributes(),
            "board_type": board.board_type if board else None,
            "dictionary": record.tag_family,
        },
    }


def coco_image_id(labels: ImageLabels) -> int:
    """The COCO id of an image: `scene_id * 1000 + camera_index + 1`, the same in every merge.

    InputError (naming the label file) when the image id is not `scene<N>_cam<M>` of its scene, or when
    the camera index does not fit below ID_STRIDE.
    """
    where = f"labels/{labels.image_id}.json"
    match = _IMAGE_ID.fullmatch(labels.image_id)
    if match is None or int(match.group(1)) != labels.scene_id:
        raise InputError(
            where,
            "image_id",
            f"{labels.image_id!r} is not scene<scene_id>_cam<index> of scene {labels.scene_id}: "
            "COCO ids are derived from the scene and the camera index",
        )
    camera_index = int(match.group(2))
    if camera_index >= ID_STRIDE:
        raise InputError(
            where,
            "image_id",
            f"camera index {camera_index} is {ID_STRIDE} or more: COCO image ids "
            f"(scene_id * {ID_STRIDE} + camera index + 1) hold at most {ID_STRIDE} cameras a scene",
        )
    return labels.scene_id * ID_STRIDE + camera_index + 1


def coco_annotation_id(image_number: int, record_index: int, image_key: str = "") -> int:
    """The COCO id of the `record_index`-th record (record_sort_key order) of an image."""
    if record_index >= ID_STRIDE:
        raise InputError(
            f"labels/{image_key}.json" if image_key else "labels",
            "records",
            f"more than {ID_STRIDE} records in one image: COCO annotation ids "
            f"(image id * {ID_STRIDE} + record index + 1) hold at most {ID_STRIDE}",
        )
    return image_number * ID_STRIDE + record_index + 1


def _coco_document(images: list[ImageLabels], job_id: str | None) -> dict[str, Any]:
    all_records = [r for labels in images for r in labels.records]
    boards = _board_categories(all_records)
    coco_images = []
    annotations: list[dict[str, Any]] = []
    for labels in images:
        number = coco_image_id(labels)
        coco_images.append(
            {
                "id": number,
                "file_name": labels.file_name,
                "width": labels.width,
                "height": labels.height,
                "image_key": labels.image_id,
                "scene_id": labels.scene_id,
                "camera_name": labels.camera_name,
            }
        )
        for index, record in enumerate(labels.records):
            annotation_id = coco_annotation_id(number, index, labels.image_id)
            if record.record_type == "TAG":
                mask = labels.mask_object(record.object_name)
                annotations.append(coco_annotation(record, annotation_id, number, mask))
            elif record.record_type == "MARKER":
                annotations.append(coco_annotation(record, annotation_id, number))
            elif record.board_definition is not None:
                category = boards[_board_category_name(record)]["id"]
                mask = labels.mask_object(record.object_name)
                annotations.append(_board_annotation(record, annotation_id, number, category, mask))
    return {
        "info": {
            "description": "render-tag synthetic fiducial-marker dataset",
            "version": RICH_TRUTH_VERSION,
            "job_id": job_id,
            "coordinate_convention": COORDINATE_CONVENTION,
            "keypoint_order": list(COCO_KEYPOINT_NAMES),
            "note": "keypoints and polygons use OpenCV pixel coordinates (top-left pixel centre at 0, 0), "
            "not COCO's pixel-corner convention; unlabelled keypoints are (0, 0, v=0)",
            "ids": f"image id = scene_id * {ID_STRIDE} + camera index + 1; annotation id = image id * "
            f"{ID_STRIDE} + record index + 1: stable when images are added or removed",
        },
        "licenses": [],
        "images": coco_images,
        "annotations": annotations,
        "categories": coco_categories() + list(boards.values()),
    }


def _camera_of(recipe: SceneRecipe | None, labels: ImageLabels) -> Any:
    if recipe is None:
        return None
    for camera in recipe.cameras:
        if camera.name == labels.camera_name:
            return camera
    return None


def _provenance(
    images: list[ImageLabels], recipes: dict[int, SceneRecipe], job_id: str | None, root: Path
) -> tuple[dict[str, Any], list[float | None]]:
    """image_id -> recipe, seeds, eval margin, and what bit identity depends on: the PNG's SHA-256 beside
    the render environment (Blender version and build, CPU, OIDN) the worker recorded in its labels."""
    entries: dict[str, Any] = {}
    margins: list[float | None] = []
    digests = {scene_id: recipe_hash(recipe) for scene_id, recipe in recipes.items()}
    for labels in images:
        recipe = recipes.get(labels.scene_id)
        matches = recipe is not None and digests[labels.scene_id] == labels.recipe_hash
        camera = _camera_of(recipe, labels) if matches else None
        margin = float(camera.intrinsics.eval_margin_px) if camera is not None else None
        margins.append(margin)
        entries[labels.image_id] = {
            "scene_id": labels.scene_id,
            "camera_name": labels.camera_name,
            "recipe_hash": labels.recipe_hash,
            "recipe_in_dataset": matches,
            "random_seed": recipe.random_seed if matches and recipe is not None else None,
            "renderer_seed": recipe.renderer.seed if matches and recipe is not None else None,
            "noise_seed": camera.sensor_noise.seed if camera is not None and camera.sensor_noise else None,
            "eval_margin_px": margin,
            "image_sha256": file_sha256(root / labels.file_name),
            "render_environment": dict(sorted(labels.render_environment.items())),
        }
    document = {
        "version": PROVENANCE_VERSION,
        "job_id": job_id,
        "bit_identity": "an image_sha256 is reproducible only under the same render_environment "
        "(Blender version and build, CPU family, OIDN build)",
        "versions": dataset_versions(),
        "images": entries,
    }
    return document, margins


def merge_dataset(
    out_dirs: list[Path] | list[str] | Path | str, dest: Path | str | None = None
) -> MergeReport:
    """Merges the label files of one dataset folder, or of several shard folders into `dest`.

    With several folders (or a `dest` other than the folder) the label files and images are brought
    into `dest` as well, so `dest` is a complete dataset that merges to the same bytes on its own.
    Corrupt or truncated label files are named in the report and skipped. InputError when there is
    nothing to merge (no folder, or no label file at all); nothing is written then. Nothing is written
    either when a folder's images and labels disagree with its manifest, or the folders are not shards
    of one job (completeness.py): the report's `refused` names each problem.
    """
    sources = [Path(out_dirs)] if isinstance(out_dirs, str | Path) else [Path(p) for p in out_dirs]
    if not sources:
        raise InputError("merge", "out_dirs", "no dataset folder given")
    target = Path(dest) if dest is not None else sources[0]
    report = MergeReport(dest=target)
    for folder in sources:
        if not folder.is_dir():
            raise InputError(str(folder), "", "not a folder")

    by_id: dict[str, ImageLabels] = {}
    origin: dict[str, tuple[Path, Path]] = {}
    recipes: dict[int, SceneRecipe] = {}
    job_ids: set[str | None] = set()
    job_specs: dict[str | None, dict[str, Any] | None] = {}
    folder_job_ids: dict[Path, str | None] = {}
    checks: list[tuple[Path, FolderCheck | None]] = []
    found_any = False
    for folder in sources:
        check = check_folder(folder)
        checks.append((folder, check))
        if check is None:
            report.notes.append(f"{folder}: no {MANIFEST}: no record to check its images and labels against")
        else:
            report.refused += check.problems()
        loaded, skipped = read_labels_folder(folder)
        found_any = found_any or bool(loaded) or bool(skipped)
        report.skipped += [(str(folder / name), reason) for name, reason in skipped]
        recipe_file = _load_recipes(folder, report)
        if recipe_file is not None:
            folder_job_ids[folder] = recipe_file.job_id
            job_ids.add(recipe_file.job_id)
            job_specs.setdefault(recipe_file.job_id, recipe_file.job_spec)
            for recipe in recipe_file.recipes:
                recipes.setdefault(recipe.scene_id, recipe)
        for path, labels in loaded:
            previous = by_id.get(labels.image_id)
            if previous is not None:
                if previous != labels:
                    report.conflicts.append(
                        f"{labels.image_id}: {path} differs from {origin[labels.image_id][0]}; kept the first"
                    )
                continue
            by_id[labels.image_id] = labels
            origin[labels.image_id] = (path, folder)
    report.refused += check_sources(checks, folder_job_ids)
    if report.refused:
        return report
    if not found_any:
        raise InputError(
            ", ".join(str(s) for s in sources), "labels", "no label files (labels/*.json) to merge"
        )

    images = []
    for image_id in sorted(by_id):
        labels = by_id[image_id]
        records = sorted(labels.records, key=record_sort_key)
        images.append(labels.model_copy(update={"records": records}))

    # Bring shard files into the destination so that it stands on its own.
    for image_id, (label_file, folder) in sorted(origin.items()):
        if folder.resolve() != target.resolve():
            _copy_if_needed(label_file, target / "labels" / label_file.name)
            outputs = by_id[image_id].outputs
            extra = [] if outputs is None else [outputs.masks, outputs.depth, outputs.normals]
            for name in [by_id[image_id].file_name, *extra]:
                if name is not None and (folder / name).is_file():
                    _copy_if_needed(folder / name, target / name)
    if not (target / "recipes.json").is_file() and recipes:
        from render_tag_shared.recipe_io import dump_recipe_file

        job = next(iter(job_ids)) if len(job_ids) == 1 else None
        merged = RecipeFile(
            job_id=job, job_spec=job_specs.get(job), recipes=[recipes[k] for k in sorted(recipes)]
        )
        report.written.append(write_text_atomic(target / "recipes.json", dump_recipe_file(merged)))

    job_id = next(iter(job_ids)) if len(job_ids) == 1 else None
    provenance, margins = _provenance(images, recipes, job_id, target)
    known = {m for m in margins if m is not None}
    records = [r for labels in images for r in labels.records]
    margin = known.pop() if len(known) == 1 and None not in margins else None
    context = {
        "job_id": job_id,
        "corner_order": CORNER_ORDER,
        "visibility": VISIBILITY,
        "sentinel": [-1.0, -1.0],
        "eval_margin_px": margin,
        # The seed system's names for the same: readers written against it look for these.
        "photometric_margin_px": margin,
        "truncation_policy": "ternary_visibility",
        "num_images": len(images),
        "num_records": len(records),
        "image_ids": [labels.image_id for labels in images],
        "families": sorted({r.tag_family for r in records}),
    }
    coco = _coco_document(images, job_id)
    report.written.append(
        write_json_atomic(target / RICH_TRUTH, rich_truth_document(records, context), indent=None)
    )
    report.written.append(write_json_atomic(target / COCO, coco, indent=None))
    report.written.append(write_text_atomic(target / CSV, csv_text(records)))
    report.written.append(write_json_atomic(target / PROVENANCE, provenance, indent=1))
    report.num_images = len(images)
    report.num_records = len(records)
    report.num_annotations = len(coco["annotations"])
    for name, reason in report.skipped:
        log.warning("skipped %s: %s", name, reason)
    return report
