"""Label files from recipes alone: the ground truth without rendering.

`labels/<image_id>.json` is normally written by the worker next to its image; the ground truth in it is
a pure function of the recipe (`camera_ground_truth`), so tests and a "labels only" dataset can build
exactly the same files here without Blender.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from render_tag_shared.recipe import RecipeFile, SceneRecipe
from render_tag_shared.records import ImageLabels
from render_tag_shared.truth import image_labels

from ..io import write_json_atomic

__all__ = ["image_file_name", "label_path", "write_labels_from_recipes"]


def image_file_name(image_id: str) -> str:
    """Where an image lives, relative to the dataset folder (COCO's `file_name` with OUT as root)."""
    return f"images/{image_id}.png"


def label_path(out_dir: str | Path, image_id: str) -> Path:
    return Path(out_dir) / "labels" / f"{image_id}.json"


def write_labels_from_recipes(recipes: RecipeFile | Iterable[SceneRecipe], out_dir: str | Path) -> list[Path]:
    """Writes `labels/<image_id>.json` for every camera of every recipe; returns the paths written."""
    scenes = recipes.recipes if isinstance(recipes, RecipeFile) else list(recipes)
    written = []
    for recipe in scenes:
        for index in range(len(recipe.cameras)):
            labels = image_labels(recipe, index)
            path = label_path(out_dir, labels.image_id)
            written.append(write_json_atomic(path, labels.model_dump(mode="json"), indent=None))
    return written


# -- reading ----------------------------------------------------------------------------------------


class LabelFileError(ValueError):
    """A label file that cannot be used (corrupt, truncated, or not about the image its name says)."""


def read_label_file(path: str | Path) -> ImageLabels:
    """Parses one label file; LabelFileError says why it cannot be used (never a bare traceback)."""
    import json

    from pydantic import ValidationError

    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise LabelFileError(f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LabelFileError(f"not UTF-8 text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise LabelFileError(f"not valid JSON (truncated?): {exc.msg} at line {exc.lineno}") from exc
    try:
        labels = ImageLabels.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LabelFileError(f"not a label document: {where}: {first['msg']}") from exc
    if labels.image_id != path.stem:
        raise LabelFileError(f"holds image_id {labels.image_id!r}, but the file is named {path.name}")
    for index, record in enumerate(labels.records):
        if record.image_id != labels.image_id:
            raise LabelFileError(f"records[{index}].image_id is {record.image_id!r}, not {labels.image_id!r}")
    return labels


def read_labels_folder(out_dir: str | Path) -> tuple[list[tuple[Path, ImageLabels]], list[tuple[str, str]]]:
    """Every usable `labels/*.json` of a dataset (sorted by name), and (file, reason) for the others."""
    out_dir = Path(out_dir)
    good: list[tuple[Path, ImageLabels]] = []
    skipped: list[tuple[str, str]] = []
    folder = out_dir / "labels"
    if not folder.is_dir():
        return good, skipped
    for path in sorted(folder.glob("*.json")):
        try:
            good.append((path, read_label_file(path)))
        except LabelFileError as exc:
            skipped.append((str(path.relative_to(out_dir)), str(exc)))
    return good, skipped
