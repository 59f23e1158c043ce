"""The plan of a render and what resuming may skip.

Resume does not trust the manifest blindly: a job counts as complete only when each of its images and
label files exists and the labels carry the recipe's hash; anything else is rendered again. The plan
hash (recipes, add-on version, Blender version, shard) guards against finishing one dataset with the
renders of another, and OUT is checked before a byte is written.

A plan file (`render-tag plan`, `Plan`) is the same plan written down for a scheduler: the recipes, their
hashes, the add-on and Blender versions, the renderer settings and the chunking (scenes per chunk), with
a hash over all of it. A chunk verifies that hash before it renders (chunks.py).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from render_tag_shared.errors import InputError, input_error_from_validation
from render_tag_shared.recipe import RecipeFile, SceneRecipe, recipe_hash
from render_tag_shared.recipe_io import resolve_asset_paths
from render_tag_shared.seeds import spec_hash

from ..dataset.completeness import hash_job_files
from .manifest import MANIFEST, Manifest
from .options import RenderOptions

__all__ = [
    "MERGED_OUTPUTS",
    "PLAN_VERSION",
    "Plan",
    "PlanEnvironmentMismatch",
    "PlanError",
    "PlanHashMismatch",
    "build_plan",
    "check_environment",
    "check_plan",
    "clear_outputs",
    "dump_plan",
    "job_complete",
    "load_plan",
    "make_plan",
    "parse_plan",
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


PLAN_VERSION = 1
DEFAULT_CHUNK_SIZE = 8
"""Scenes per chunk of `render-tag plan`: a chunk is a scheduler's unit of work and of retry."""


class PlanError(InputError):
    """A plan that must not be rendered. Bad input (exit 2) and never retried: it fails the same way
    on every machine."""

    retryable = False


class PlanHashMismatch(PlanError):
    """The plan's content no longer matches its hash (edited, truncated, or another plan than expected)."""


class PlanEnvironmentMismatch(PlanError):
    """The add-on or Blender here is not the one the plan fixes: its images would not be the plan's."""


class Plan(BaseModel):
    """plan.json: what a scheduler holds. The first fields are `make_plan`'s (what makes one dataset);
    the rest fix the renderer settings, the chunking and the recipes themselves."""

    model_config = ConfigDict(extra="forbid")

    plan_version: Literal[1] = 1
    job_id: str | None
    num_jobs: int = Field(ge=0)
    recipes_sha256: str
    addon_version: str
    blender_version: str
    shard: str
    renderers: list[dict[str, Any]] = Field(description="the distinct renderer settings (seed aside)")
    chunk_size: int = Field(ge=1, description="scenes per chunk; chunk K holds jobs K*size .. K*size+size-1")
    num_chunks: int = Field(ge=0)
    recipe_hashes: list[str]
    recipe_file: RecipeFile
    plan_hash: str = Field("", description="SHA-256 of the canonical JSON of every other field")

    def body(self) -> dict[str, Any]:
        """What the hash is taken over: everything but the hash itself."""
        return self.model_dump(mode="json", exclude={"plan_hash"})

    def dataset_plan(self) -> dict[str, Any]:
        """The fields `make_plan` returns: what the manifest of a render of these recipes records."""
        return {key: getattr(self, key) for key in _DATASET_KEYS}

    def chunk_range(self, chunk: int) -> range:
        """The job indices of chunk `chunk` (InputError naming --chunk when there is no such chunk)."""
        if not 0 <= chunk < self.num_chunks:
            raise InputError(
                "--chunk", "", f"chunk {chunk} is not in 0..{self.num_chunks - 1} ({self.num_chunks} chunks)"
            )
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.num_jobs))

    def chunk_recipes(self, chunk: int) -> list[SceneRecipe]:
        return [self.recipe_file.recipes[i] for i in self.chunk_range(chunk)]


_DATASET_KEYS = ("job_id", "num_jobs", "recipes_sha256", "addon_version", "blender_version", "shard")


def build_plan(
    recipe_file: RecipeFile,
    *,
    addon_version: str,
    blender_version: str,
    shard: tuple[int, int] = (0, 1),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Plan:
    """The plan of these recipes (already this shard's slice), chunked `chunk_size` scenes at a time."""
    if chunk_size < 1:
        raise InputError("--chunk-size", "", f"must be at least 1, got {chunk_size}")
    recipes = recipe_file.recipes
    dataset, _ = make_plan(
        recipes,
        job_id=recipe_file.job_id,
        addon_version=addon_version,
        blender_version=blender_version,
        shard=shard,
    )
    renderers: list[dict[str, Any]] = []
    for recipe in recipes:
        settings = recipe.renderer.model_dump(mode="json", exclude={"seed"})
        if settings not in renderers:
            renderers.append(settings)
    plan = Plan(
        **dataset,
        renderers=renderers,
        chunk_size=chunk_size,
        num_chunks=math.ceil(len(recipes) / chunk_size),
        recipe_hashes=[recipe_hash(r) for r in recipes],
        recipe_file=recipe_file,
    )
    plan.plan_hash = spec_hash(plan.body())
    return plan


def dump_plan(plan: Plan) -> str:
    """plan.json's text: its fields in order, the hash last."""
    return json.dumps(plan.model_dump(mode="json"), indent=1, allow_nan=False) + "\n"


def parse_plan(text: str | bytes, source: str, expected_hash: str | None = None) -> Plan:
    """Verifies the plan hash first, then reads the plan. A plan whose content no longer matches its hash
    (or is not the plan `expected_hash` names) raises PlanHashMismatch; a malformed one InputError."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(source, "", f"not a plan file (not valid JSON: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("plan_hash"), str):
        raise InputError(
            source, "plan_hash", "not a plan file (no plan_hash): make one with `render-tag plan`"
        )
    stated = data.pop("plan_hash")
    actual = spec_hash(data)
    if actual != stated:
        raise PlanHashMismatch(
            source,
            "plan_hash",
            f"the plan's content does not match its hash (says {stated[:12]}, content is {actual[:12]}): "
            "it was changed after it was made; make it again with `render-tag plan`",
        )
    if expected_hash is not None and stated != expected_hash:
        raise PlanHashMismatch(
            source, "plan_hash", f"this is plan {stated[:12]}, not plan {expected_hash[:12]} of this chunk"
        )
    try:
        plan = Plan.model_validate({**data, "plan_hash": stated})
    except ValidationError as exc:
        raise input_error_from_validation(source, exc, data=data) from None
    if (
        len(plan.recipe_file.recipes) != plan.num_jobs
        or len(plan.recipe_hashes) != plan.num_jobs
        or plan.num_chunks != math.ceil(plan.num_jobs / plan.chunk_size)
    ):
        raise InputError(source, "num_jobs", "the counts of recipes, hashes and chunks disagree")
    return plan


def load_plan(path: str | Path, expected_hash: str | None = None) -> Plan:
    """Reads and verifies plan.json; relative asset paths resolve against its folder (as in recipes.json)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read: {exc.strerror}") from None
    plan = parse_plan(text, str(path), expected_hash)
    resolved = [resolve_asset_paths(r, path.parent) for r in plan.recipe_file.recipes]
    plan.recipe_file = plan.recipe_file.model_copy(update={"recipes": resolved})
    return plan


def check_environment(plan: Plan, addon_version: str, blender_version: str, source: str) -> None:
    """Refuses to render a plan with another add-on or Blender than the one it fixes."""
    for field, planned, here in (
        ("addon_version", plan.addon_version, addon_version),
        ("blender_version", plan.blender_version, _version_number(blender_version)),
    ):
        if planned != here:
            raise PlanEnvironmentMismatch(
                source, field, f"the plan fixes {planned}, this machine has {here}: its images would differ"
            )


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
    "verify.png",
    "preview.png",
    "report.html",
)
"""What merge, audit, verify, preview and report write into OUT: stale once the render is redone."""
MERGED_FOLDERS = ("audit", "preview")


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
