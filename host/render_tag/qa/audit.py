"""`render-tag audit OUT`: integrity checks, distributions, a score, quality gates and plots.

Ground truth that is wrong in a systematic way (mirrored corner order, visibility flags that ignore the
eval margin, a label that disagrees with its own pose) trains detectors that are wrong in the same way,
and nobody notices by reading JSON. What the audit checks, and what it does not:

- Images: every image a label file names exists and decodes as a PNG of the labels' width x height.
- Completeness: the folder holds every image and label file recipes.json asks for and nothing else, and
  agrees with its manifest (every done job's files there, with the recorded hashes; no job unfinished).
- Chirality: the four corners of a fully visible object run clockwise (TL, TR, BR, BL) in the image.
- Anchor (and the 180-degree texture-flip diagnosis) and margin: these are consistency checks of the
  records, not of the pixels. The stored pose and the corners come from the same recipe, so the anchor
  check (the pose projects the object's corner 0 onto `corners[0]`; corner 2 landing there instead is
  reported as `texture_flip_180`) catches a label writer whose pose, corner order or lens projection
  disagree with each other, and the margin check catches visibility flags that disagree with their
  coordinates and the camera's eval margin. A texture that is really drawn turned in the image, with
  labels and pose that agree, passes both: only `render-tag verify` (OpenCV's detectors on the
  pixels) sees that.

Beyond single records: coverage and balance of distance, angle and ppm and the ids used (coverage.py,
gates that warn as well as fail), lighting measured on the pixels (lighting.py), and a quarantine of
the images that fail (unreadable, a record that fails a check, lighting out of bounds), written into
audit.json and OUT/quarantine.txt (one image path a line) so that a training script can skip them.

Every gate in audit.json has the same shape (coverage.gate): name, value, threshold, warn_threshold,
kind (min | max), status (pass | warn | fail), passed; distributions are statistics with a histogram
(edges, counts).

Plots are PNG drawn with matplotlib (qa/plots.py), because people would rather look than read.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from render_tag_shared.boards import library_to_object
from render_tag_shared.errors import InputError
from render_tag_shared.geometry import invert_rigid, quat_to_matrix, transform_points
from render_tag_shared.image_space import polygon_area, visibility
from render_tag_shared.lens import project_points
from render_tag_shared.recipe import tag_corners_object_frame
from render_tag_shared.recipe_io import load_recipe_file
from render_tag_shared.records import DetectionRecord
from render_tag_shared.truth import board_outline_object_frame

from ..dataset.completeness import check_folder, check_recipes
from ..dataset.reader import RenderTagDataset
from ..io import write_json_atomic, write_text_atomic
from .coverage import coverage_gates, gate
from .gates import AuditGates
from .lighting import image_lighting, lighting_problems

__all__ = [
    "CHECKS",
    "AuditReport",
    "anchor_check",
    "audit_dataset",
    "corner_heatmap",
    "image_problem",
]

AUDIT_VERSION = 3
QUARANTINE = "quarantine.txt"
_EXAMPLES = 20
_HIST_BINS = 20

CHECKS = {
    "images": "pixels on disk: each image a label names exists (missing) and decodes as a PNG of the "
    "labels' width x height (unreadable)",
    "structure": "record shape: 4 corners and visibilities, board keypoints as the board defines, a tag id, "
    "no tag id twice in an image",
    "chirality": "record geometry: the corners of a fully visible object run clockwise (TL, TR, BR, BL)",
    "anchor": "record consistency, not pixels: the stored pose projects the object's corner 0 onto "
    "corners[0] (corner 2 there instead: texture_flip_180). Pose and corners come from the same recipe, so "
    "this finds labels that disagree with themselves; whether the pixels show the marker that way is for "
    "`render-tag verify`",
    "margin": "record consistency, not pixels: each visibility flag agrees with its coordinates and the "
    "camera's eval margin",
    "completeness": "files against recipes.json and manifest.json: each image of the recipes has its label "
    "file, no file is not the recipes', every done job's files are there with the hashes the manifest "
    "recorded, and no job is failed or unfinished",
}
"""What each check of audit.json looks at (written into audit.json as `check_descriptions`)."""


# -- checks ----------------------------------------------------------------------------------------


def _object_corners_in_pose_frame(record: DetectionRecord) -> npt.NDArray[np.float64]:
    """TL, TR, BR, BL of the object in the frame its stored pose is given in."""
    if record.record_type == "BOARD" and record.board_definition is not None:
        to_library = invert_rigid(library_to_object(record.board_definition))
        return transform_points(to_library, board_outline_object_frame(record.board_definition))
    return tag_corners_object_frame(record.tag_size_mm)


def _project_pose(record: DetectionRecord, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    pose = np.eye(4)
    pose[:3, :3] = quat_to_matrix(np.asarray(record.rotation_quaternion, dtype=np.float64))
    pose[:3, 3] = record.position
    cam = transform_points(pose, points)
    return project_points(cam, record.k_matrix, record.distortion_model, record.distortion_coeffs)


def anchor_check(record: DetectionRecord, tolerance_px: float) -> tuple[float, str]:
    """(error of corner 0 in px, diagnosis): the stored pose projects the object's corner 0 onto corners[0].

    A consistency check of the record (pose and corners both come from the recipe), not of the pixels.

    Diagnoses: "ok"; "texture_flip_180" when corner 2 lands on corners[0] (the marker is drawn turned by
    half a turn against its labels); "rotated_90" for corner 1 or 3; "pose_mismatch" otherwise.
    """
    projected = _project_pose(record, _object_corners_in_pose_frame(record))
    target = np.asarray(record.corners[0], dtype=np.float64)
    errors = np.linalg.norm(projected - target, axis=1)
    error0 = float(errors[0]) if np.isfinite(errors[0]) else math.inf
    if error0 <= tolerance_px:
        return error0, "ok"
    best = int(np.nanargmin(np.where(np.isfinite(errors), errors, np.inf)))
    if np.isfinite(errors[best]) and errors[best] <= max(tolerance_px, 0.5):
        return error0, "texture_flip_180" if best == 2 else "rotated_90" if best in (
            1,
            3,
        ) else "pose_mismatch"
    return error0, "pose_mismatch"


def _structure_errors(record: DetectionRecord) -> list[str]:
    errors = []
    if len(record.corners) != 4 or len(record.corners_visibility) != 4:
        errors.append("corners: 4 corners and 4 visibilities expected")
    if record.record_type == "BOARD":
        board = record.board_definition
        if board is None or record.keypoints is None or record.keypoints_visibility is None:
            errors.append("board record without board_definition, keypoints or keypoints_visibility")
        elif not len(record.keypoints) == len(record.keypoints_visibility) == board.num_keypoints:
            errors.append(f"keypoints: {board.num_keypoints} expected, got {len(record.keypoints)}")
    elif record.tag_id is None:
        errors.append("tag record without tag_id")
    return errors


def _labelled_points(record: DetectionRecord) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    points = list(record.corners)
    vis = list(record.corners_visibility)
    if record.keypoints is not None and record.keypoints_visibility is not None:
        points += list(record.keypoints)
        vis += list(record.keypoints_visibility)
    return np.asarray(points, dtype=np.float64).reshape(-1, 2), np.asarray(vis, dtype=np.int64)


def _margin_inconsistencies(record: DetectionRecord, margin: float | None) -> tuple[int, int]:
    """(points checked, points whose flag disagrees with its coordinates and the eval margin)."""
    points, vis = _labelled_points(record)
    if len(points) != len(vis):
        return 0, 0
    sentinel = np.all(points == -1.0, axis=1)
    bad = (vis == 0) & ~sentinel
    labelled = vis > 0
    if margin is not None:
        expected = visibility(points, record.resolution, margin)
        bad |= labelled & (expected != vis)
    else:  # margin unknown: only what holds for every margin
        inside_image = visibility(points, record.resolution, 0.0) == 2
        bad |= (vis == 2) & ~inside_image
    return len(vis), int(bad.sum())


def _eval_margins(root: Path) -> dict[str, float]:
    """image_id -> eval margin, from provenance.json (after a merge) or recipes.json."""
    margins: dict[str, float] = {}
    provenance = root / "provenance.json"
    if provenance.is_file():
        try:
            images = json.loads(provenance.read_text(encoding="utf-8")).get("images", {})
            for image_id, entry in images.items():
                if isinstance(entry, dict) and entry.get("eval_margin_px") is not None:
                    margins[image_id] = float(entry["eval_margin_px"])
        except (OSError, ValueError):
            pass
    if margins or not (root / "recipes.json").is_file():
        return margins
    from render_tag_shared.recipe_io import load_recipe_file

    try:
        recipes = load_recipe_file(root / "recipes.json")
    except InputError:
        return margins
    for recipe in recipes.recipes:
        for index, camera in enumerate(recipe.cameras):
            margins[recipe.image_id(index)] = float(camera.intrinsics.eval_margin_px)
    return margins


def read_image(path: Path, width: int, height: int) -> tuple[npt.NDArray[Any] | None, tuple[str, str] | None]:
    """(pixels, None) for a PNG of width x height on disk, else (None, ("missing" | "unreadable", why)).

    The whole file is decoded, so a truncated PNG (a worker killed while writing without the atomic
    rename, a disk that filled up) is found, not only a missing one.
    """
    import cv2

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ("missing", "no such file")
    except OSError as exc:
        return None, ("unreadable", f"cannot be read: {exc.strerror or exc}")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None, ("unreadable", "not a PNG file" if data else "empty file")
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        return None, ("unreadable", "cannot be decoded (truncated or corrupt PNG)")
    if pixels.shape[:2] != (height, width):
        return None, (
            "unreadable",
            f"is {pixels.shape[1]}x{pixels.shape[0]}, the labels say {width}x{height}",
        )
    return pixels, None


def image_problem(path: Path, width: int, height: int) -> tuple[str, str] | None:
    """("missing" | "unreadable", why) when the image is not a PNG of width x height on disk, else None."""
    return read_image(path, width, height)[1]


def completeness_problems(root: Path) -> list[str]:
    """What keeps the folder from being the whole of its recipes and manifest (completeness.py)."""
    path = root / "recipes.json"
    if not path.is_file():
        return ["no recipes.json: nothing to check the dataset's completeness against"]
    try:
        recipes = load_recipe_file(path).recipes
    except InputError as exc:
        return [f"recipes.json cannot be read: {exc}"]
    folder = check_folder(root)
    problems = check_recipes(root, recipes, folder.jobs if folder is not None else ())
    if folder is not None:
        problems += folder.problems()
        problems += [f"{root / 'manifest.json'}: {text}, not done" for text in folder.unfinished]
    return problems


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    a = np.asarray(values, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    counts, edges = np.histogram(a, bins=_HIST_BINS, range=(lo, hi if hi > lo else lo + 1e-9))
    return {
        "count": int(a.size),
        "min": lo,
        "max": hi,
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "p5": float(np.percentile(a, 5)),
        "p95": float(np.percentile(a, 95)),
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


# -- report ----------------------------------------------------------------------------------------


@dataclass
class AuditReport:
    """Everything `audit.json` holds; `passed` is False when a gate failed."""

    root: Path
    score: float
    gates: dict[str, dict[str, Any]]
    checks: dict[str, Any]
    distributions: dict[str, Any]
    counts: dict[str, int]
    skipped_labels: list[tuple[str, str]] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    lighting: dict[str, dict[str, float]] = field(default_factory=dict)
    """image_id -> brightness, contrast, clipped (lighting.py), for every image that decodes."""
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    """Images that fail: {image_id, file, reasons}."""

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.gates.values())

    @property
    def failed_gates(self) -> list[str]:
        return [name for name, g in self.gates.items() if not g["passed"]]

    @property
    def warnings(self) -> list[str]:
        """Gates that warn: worth a look, not a failure (the exit code stays 0)."""
        return [name for name, g in self.gates.items() if g.get("status") == "warn"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": AUDIT_VERSION,
            "root": str(self.root),
            "passed": self.passed,
            "score": self.score,
            "failed_gates": self.failed_gates,
            "warnings": self.warnings,
            "gates": self.gates,
            "coverage": self.coverage,
            "lighting": self.lighting,
            "quarantine": self.quarantine,
            "counts": self.counts,
            "checks": self.checks,
            "check_descriptions": dict(CHECKS),
            "distributions": self.distributions,
            "skipped_labels": [{"file": n, "reason": r} for n, r in self.skipped_labels],
            "plots": self.plots,
        }

    def summary(self) -> str:
        c = self.checks
        lines = [
            f"audit of {self.root}: score {self.score:.1f}/100, {'PASSED' if self.passed else 'FAILED'}",
            f"  images {self.counts['images']} ({self.counts['missing_images']} missing, "
            f"{self.counts['unreadable_images']} unreadable), records {self.counts['records']}, "
            f"skipped label files {self.counts['skipped_labels']}, "
            f"completeness problems {self.counts['completeness_problems']}",
            f"  chirality failures {c['chirality']['failures']}/{c['chirality']['checked']}, "
            f"anchor failures {c['anchor']['failures']}/{c['anchor']['checked']} "
            f"{dict(c['anchor']['diagnoses'])}, margin inconsistencies "
            f"{c['margin']['inconsistent']}/{c['margin']['checked']}",
            "  (anchor and margin check that the records agree with themselves; verify checks the pixels)",
        ]
        if self.lighting:
            light = self.distributions.get("brightness", {})
            contrast = self.distributions.get("contrast", {})
            lines.append(
                f"  lighting: brightness median {light.get('median', 0):.3f} "
                f"[{light.get('min', 0):.3f}, {light.get('max', 0):.3f}], "
                f"contrast median {contrast.get('median', 0):.3f} (0..1 of the 8-bit range)"
            )
        if self.quarantine:
            lines.append(f"  quarantined images {len(self.quarantine)} (listed in {self.root / QUARANTINE})")
        for name in self.failed_gates:
            g = self.gates[name]
            lines.append(f"  FAIL gate {name}: {_shown(g['value'])} (limit {g['threshold']})")
        for name in self.warnings:
            g = self.gates[name]
            lines.append(f"  warning {name}: {_shown(g['value'])} (warns at {g['warn_threshold']})")
        lines += [f"  incomplete: {text}" for text in c["completeness"]["examples"][:10]]
        return "\n".join(lines)


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _gate(name: str, value: float, limit: float | None, upper: bool) -> dict[str, Any]:
    return gate(name, value, limit, upper=upper)


def audit_dataset(
    out: str | Path,
    gates: AuditGates | str | Path | dict[str, Any] | None = None,
    *,
    plots: bool = True,
    configured: dict[str, tuple[float, float]] | None = None,
    write: bool = True,
) -> AuditReport:
    """Audits the dataset in `out`, writes `audit.json`, `quarantine.txt` (and `audit/*.png`), returns
    the report. `configured`: the config's ranges for the coverage gates (coverage.py); `write=False`
    audits without writing (the other side of a diff)."""
    root = Path(out)
    limits = gates if isinstance(gates, AuditGates) else AuditGates.load(gates)
    dataset = RenderTagDataset(root)
    margins = _eval_margins(root)
    tolerance = float(limits.anchor_tolerance_px)

    chirality: dict[str, Any] = {"checked": 0, "failures": 0, "examples": []}
    anchor: dict[str, Any] = {
        "checked": 0,
        "failures": 0,
        "max_error_px": 0.0,
        "diagnoses": Counter(),
        "examples": [],
    }
    margin: dict[str, Any] = {"checked": 0, "inconsistent": 0, "margin_known_for_images": 0, "examples": []}
    structure: dict[str, Any] = {"errors": 0, "examples": []}
    values: dict[str, list[float]] = {"distance_m": [], "angle_of_incidence_deg": [], "ppm": []}
    range_violations = Counter[str]()
    pictures: dict[str, Any] = {"checked": 0, "missing": [], "unreadable": []}
    incomplete = completeness_problems(root)
    completeness = {"problems": len(incomplete), "examples": incomplete[:_EXAMPLES]}
    corner_positions: list[tuple[float, float, int, int]] = []
    tags: list[tuple[str, int]] = []
    lighting: dict[str, dict[str, float]] = {}
    reasons: dict[str, list[str]] = {}

    def quarantine(image_id: str, reason: str) -> None:
        if reason not in reasons.setdefault(image_id, []):
            reasons[image_id].append(reason)

    for image in dataset.images:
        pictures["checked"] += 1
        pixels, problem = read_image(image.path, image.width, image.height)
        if problem is not None:
            kind, reason = problem
            name = str(image.path.relative_to(root)) if image.path.is_relative_to(root) else str(image.path)
            pictures[kind].append({"image_id": image.image_id, "file": name, "reason": reason})
            quarantine(image.image_id, f"{kind}: {reason}")
        else:
            assert pixels is not None
            lighting[image.image_id] = image_lighting(pixels)
            for reason in lighting_problems(lighting[image.image_id], limits):
                quarantine(image.image_id, f"lighting: {reason}")
        image_margin = margins.get(image.image_id)
        margin["margin_known_for_images"] += image_margin is not None
        seen: Counter[tuple[str, int | None]] = Counter()
        for record in image.records:
            where = {"image_id": image.image_id, "object": record.object_name}
            problems = _structure_errors(record)
            if record.record_type == "TAG":
                seen[(record.tag_family, record.tag_id)] += 1
                if seen[(record.tag_family, record.tag_id)] == 2:
                    problems.append(f"{record.tag_family} id {record.tag_id} appears twice in the image")
            if problems:
                structure["errors"] += len(problems)
                quarantine(image.image_id, f"structure: {record.object_name}")
                if len(structure["examples"]) < _EXAMPLES:
                    structure["examples"].append({**where, "problems": problems})
                continue
            if record.record_type == "TAG" and record.tag_id is not None:
                tags.append((record.tag_family, record.tag_id))
            corners = np.asarray(record.corners, dtype=np.float64)
            if all(v == 2 for v in record.corners_visibility):
                chirality["checked"] += 1
                if not polygon_area(corners) > 0:
                    chirality["failures"] += 1
                    quarantine(image.image_id, f"chirality: {record.object_name}")
                    if len(chirality["examples"]) < _EXAMPLES:
                        chirality["examples"].append({**where, "signed_area_px2": polygon_area(corners)})
            if record.corners_visibility[0] > 0:
                anchor["checked"] += 1
                error, diagnosis = anchor_check(record, tolerance)
                anchor["diagnoses"][diagnosis] += 1
                if math.isfinite(error):
                    anchor["max_error_px"] = max(anchor["max_error_px"], error)
                if diagnosis != "ok":
                    anchor["failures"] += 1
                    quarantine(image.image_id, f"anchor: {record.object_name} {diagnosis}")
                    if len(anchor["examples"]) < _EXAMPLES:
                        anchor["examples"].append({**where, "error_px": error, "diagnosis": diagnosis})
            checked, inconsistent = _margin_inconsistencies(record, image_margin)
            margin["checked"] += checked
            margin["inconsistent"] += inconsistent
            if inconsistent:
                quarantine(image.image_id, f"margin: {record.object_name}")
            if inconsistent and len(margin["examples"]) < _EXAMPLES:
                margin["examples"].append({**where, "points": inconsistent, "eval_margin_px": image_margin})
            if record.record_type == "MARKER":
                continue  # a board's marker: checked above; its board stands for it in the distributions
            values["distance_m"].append(record.distance)
            values["angle_of_incidence_deg"].append(record.angle_of_incidence)
            values["ppm"].append(record.ppm)
            if limits.min_distance_m is not None and record.distance < limits.min_distance_m:
                range_violations["min_distance_m"] += 1
            if limits.max_distance_m is not None and record.distance > limits.max_distance_m:
                range_violations["max_distance_m"] += 1
            angle_limit = limits.max_angle_of_incidence_deg
            if angle_limit is not None and record.angle_of_incidence > angle_limit:
                range_violations["max_angle_of_incidence_deg"] += 1
            if limits.min_ppm is not None and record.ppm < limits.min_ppm:
                range_violations["min_ppm"] += 1
            points, vis = _labelled_points(record)
            for (x, y), v in zip(points, vis, strict=True):
                if v == 2:
                    corner_positions.append(
                        (float(x), float(y), int(record.resolution[0]), int(record.resolution[1]))
                    )

    anchor["diagnoses"] = dict(sorted(anchor["diagnoses"].items()))
    num_images = len(dataset)
    num_records = len(values["distance_m"]) + structure["errors"]
    counts = {
        "images": num_images,
        "records": sum(len(i.records) for i in dataset.images),
        "tags": len(dataset.tags()),
        "boards": len(dataset.boards()),
        "skipped_labels": len(dataset.skipped),
        "missing_images": len(pictures["missing"]),
        "unreadable_images": len(pictures["unreadable"]),
        "completeness_problems": len(incomplete),
    }
    score = _score(chirality, anchor, margin, structure, num_images, len(dataset.skipped), num_records)
    gate_results = {
        name: _gate(name, value, getattr(limits, name), upper=name.startswith("max_"))
        for name, value in (
            ("min_score", score),
            ("min_images", num_images),
            ("max_missing_images", len(pictures["missing"])),
            ("max_unreadable_images", len(pictures["unreadable"])),
            ("max_skipped_labels", len(dataset.skipped)),
            ("max_incomplete", len(incomplete)),
            ("max_structure_errors", structure["errors"]),
            ("max_chirality_failures", chirality["failures"]),
            ("max_anchor_failures", anchor["failures"]),
            ("max_margin_inconsistencies", margin["inconsistent"]),
        )
    }
    for key in ("min_distance_m", "max_distance_m", "max_angle_of_incidence_deg", "min_ppm"):
        if getattr(limits, key) is not None:
            gate_results[key] = {
                **gate(key, range_violations[key], 0, upper=True),
                "limit": getattr(limits, key),
                "kind": "records outside the range",
                "description": f"records outside {key} = {getattr(limits, key)}",
            }
    coverage_results, coverage = coverage_gates(values, tags, limits, configured)
    gate_results.update(coverage_results)
    quarantined = [
        {"image_id": image_id, "file": _relative(dataset[image_id].path, root), "reasons": why}
        for image_id, why in sorted(reasons.items())
    ]
    gate_results["quarantined_images"] = gate(
        "quarantined_images",
        len(quarantined),
        limits.max_quarantined_images,
        upper=True,
        warn_threshold=limits.warn_quarantined_images,
        description="images that fail a check or whose lighting is out of bounds (quarantine.txt)",
    )
    brightness = [stats["brightness"] for stats in lighting.values()]
    contrast = [stats["contrast"] for stats in lighting.values()]
    report = AuditReport(
        root=root,
        score=score,
        gates=gate_results,
        checks={
            "images": pictures,
            "chirality": chirality,
            "anchor": anchor,
            "margin": margin,
            "structure": structure,
            "completeness": completeness,
        },
        distributions={
            **{name: _stats(v) for name, v in values.items()},
            "tag_id": _stats([float(tag_id) for _, tag_id in tags]),
            "brightness": _stats(brightness),
            "contrast": _stats(contrast),
        },
        counts={**counts, "quarantined_images": len(quarantined)},
        skipped_labels=list(dataset.skipped),
        coverage=coverage,
        lighting=lighting,
        quarantine=quarantined,
    )
    if not write:
        return report
    if plots:
        report.plots = _write_plots(root, report.distributions, corner_positions)
    write_json_atomic(root / "audit.json", report.to_dict())
    write_text_atomic(root / QUARANTINE, "".join(f"{entry['file']}\n" for entry in quarantined))
    return report


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _score(
    chirality: dict[str, Any],
    anchor: dict[str, Any],
    margin: dict[str, Any],
    structure: dict[str, Any],
    num_images: int,
    num_skipped: int,
    num_records: int,
) -> float:
    """100 minus weighted failure rates: chirality 40, anchor 30, margin 15, skipped files 10, structure 5."""
    if num_images == 0:
        return 0.0

    def rate(bad: int, total: int) -> float:
        return bad / total if total else 0.0

    penalty = (
        40 * rate(chirality["failures"], chirality["checked"])
        + 30 * rate(anchor["failures"], anchor["checked"])
        + 15 * rate(margin["inconsistent"], margin["checked"])
        + 10 * rate(num_skipped, num_images + num_skipped)
        + 5 * rate(structure["errors"], num_records)
    )
    return round(max(0.0, 100.0 - 100.0 * penalty / 100.0), 2)


# -- plots -----------------------------------------------------------------------------------------

_PLOTS = {
    "distance_m": ("distance.png", "distance camera - object", "distance (m)"),
    "angle_of_incidence_deg": ("angle.png", "angle of incidence", "angle (degrees)"),
    "ppm": ("ppm.png", "pixels per module", "pixels per module (px)"),
}
"""Distribution -> (file in audit/, title, x-axis label with the unit)."""
_HEATMAP_CELL_PX = 10


def corner_heatmap(
    positions: list[tuple[float, float, int, int]],
) -> tuple[npt.NDArray[np.float64], int, int]:
    """(counts on a grid of about 10 px cells, width, height): where visible points fall, in the pixels of
    the most common resolution (points of other resolutions are scaled to it)."""
    sizes = Counter((w, h) for _, _, w, h in positions)
    width, height = sizes.most_common(1)[0][0] if sizes else (640, 480)
    gw, gh = max(1, round(width / _HEATMAP_CELL_PX)), max(1, round(height / _HEATMAP_CELL_PX))
    counts = np.zeros((gh, gw), dtype=np.float64)
    for x, y, w, h in positions:
        col, row = int((x + 0.5) / w * gw), int((y + 0.5) / h * gh)
        if 0 <= col < gw and 0 <= row < gh:
            counts[row, col] += 1
    return counts, width, height


def _write_plots(
    root: Path, distributions: dict[str, Any], positions: list[tuple[float, float, int, int]]
) -> list[str]:
    """audit/*.png: a histogram per distribution (its `plot` is set) and the corner heat map."""
    from ..io import write_bytes_atomic
    from .plots import heatmap_png, histogram_png

    written = []
    for name, (file_name, title, xlabel) in _PLOTS.items():
        stats = distributions.get(name, {})
        histogram = stats.get("histogram", {"counts": [], "edges": []})
        png = histogram_png(histogram["counts"], histogram["edges"], title, xlabel, ylabel="records",
                            stats=stats)  # fmt: skip
        write_bytes_atomic(root / "audit" / file_name, png)
        if name in distributions:
            distributions[name]["plot"] = f"audit/{file_name}"
        written.append(f"audit/{file_name}")
    counts, width, height = corner_heatmap(positions)
    title = f"visible corners and keypoints (n = {len(positions)}, {width}x{height} px)"
    write_bytes_atomic(root / "audit" / "corner_heatmap.png", heatmap_png(counts, title, width, height))
    written.append("audit/corner_heatmap.png")
    return written
