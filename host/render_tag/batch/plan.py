"""The plan of a render and what resuming may skip.

Resume does not trust the manifest blindly: a job counts as complete only when each of its images and
label files exists and the labels carry the recipe's hash; anything else is rendered again. The plan
hash (recipes, add-on version, Blender version, shard) guards against finishing one dataset with the
renders of another, and OUT is checked before a byte is written.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import SceneRecipe, recipe_hash
from render_tag_shared.seeds import spec_hash

from ..dataset.completeness import hash_job_files
from .manifest import MANIFEST, Manifest
from .options import RenderOptions

__all__ = [
    "MERGED_OUTPUTS",
    "check_plan",
    "clear_outputs",
    "job_complete",
    "make_plan",
    "prepare_folder",
    "remove_job_outputs",
]


def _version_number(text: str) -> str:
    """`"bpy 4.2.23"`, `"4.2.23 LTS"`, `"blender 4.2.23"` → `"4.2.23"`: the same Blender however run."""
    found = re.search(r"\d+\.\d+(\.\d+)?", text)
    return found.group(0) if found else text


def make_plan(
    recipes: Sequence[SceneRecipe],
    *,
    job_id: str | None,
    addon_version: str,
    blender_version: str,
    shard: tuple[int, int],
) -> tuple[dict[str, Any], str]:
    """The plan of a render and its hash: what must be equal for two runs to make one dataset."""
    hashes = [recipe_hash(r) for r in recipes]
    plan = {
        "job_id": job_id,
        "num_jobs": len(recipes),
        "recipes_sha256": spec_hash(hashes),
        "addon_version": addon_version,
        "blender_version": _version_number(blender_version),
        "shard": f"{shard[0]}/{shard[1]}",
    }
    return plan, spec_hash(plan)


def check_plan(existing: Manifest, plan: dict[str, Any], plan_hash: str, out_dir: Path) -> None:
    """Refuses to resume into a folder made from another plan, naming what differs."""
    if existing.plan_hash == plan_hash:
        return

    def short(value: Any) -> str:
        text = str(value)
        return text[:12] if re.fullmatch(r"[0-9a-f]{64}", text) else text

    differs = [
        f"{key} {short(existing.plan.get(key))} → {short(value)}"
        for key, value in plan.items()
        if existing.plan.get(key) != value
    ]
    raise InputError(
        str(out_dir / MANIFEST),
        "plan_hash",
        f"the folder was rendered from another plan ({existing.plan_hash[:12]}, now {plan_hash[:12]}; "
        f"{'; '.join(differs) or 'different contents'}). Resuming would mix two datasets: render into "
        "another folder, or pass --force to redo this one",
    )


def job_complete(out_dir: Path, recipe: SceneRecipe, digest: str) -> bool:
    """Every image of the recipe is a non-empty regular file in OUT and every label file parses, names
    its image and carries `digest` (dataset/completeness.py, which also hashes them)."""
    image_ids = [recipe.image_id(index) for index in range(len(recipe.cameras))]
    return not hash_job_files(out_dir, image_ids, digest)[1]


def remove_job_outputs(out_dir: Path, recipe: SceneRecipe) -> None:
    """Removes what a half-finished job left, so a job that now fails leaves nothing behind."""
    for index in range(len(recipe.cameras)):
        image_id = recipe.image_id(index)
        for path in (out_dir / "images" / f"{image_id}.png", out_dir / "labels" / f"{image_id}.json"):
            path.unlink(missing_ok=True)


def prepare_folder(
    out: Path, manifest: Manifest | None, options: RenderOptions, plan: dict[str, Any], plan_hash: str
) -> None:
    """Decides, before anything is written, whether OUT may be rendered into."""
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "", "exists and is not a folder")
    if manifest is None:
        return
    if options.force:
        return
    if not options.resume:
        raise InputError(
            str(out / MANIFEST),
            "",
            "OUT already holds a render: pass --resume to finish it or --force to redo it",
        )
    check_plan(manifest, plan, plan_hash, out)


MERGED_OUTPUTS = (
    "rich_truth.json",
    "coco_labels.json",
    "ground_truth.csv",
    "provenance.json",
    "audit.json",
    "verify.json",
    "preview.png",
)
"""What merge, audit, verify and preview write into OUT: stale once the render is redone."""
MERGED_FOLDERS = ("audit",)


def clear_outputs(out: Path) -> None:
    """--force: the images and labels of an earlier render go, so no old image joins the new dataset, and so
    do the files built from them (merge, audit, verify, preview), so none describes the old render."""
    for folder, pattern in (("images", "*.png"), ("labels", "*.json")):
        for path in (out / folder).glob(pattern):
            path.unlink(missing_ok=True)
    for name in MERGED_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for name in MERGED_FOLDERS:
        built = out / name
        if built.is_symlink():
            built.unlink()
        elif built.is_dir():
            shutil.rmtree(built)
