"""manifest.json: one record per job, the plan it belongs to, and what resuming may skip.

The manifest is rewritten atomically after every job, so whatever stops the host (Ctrl-C, SIGKILL, a
lost machine) leaves a manifest that says what was finished. Resume does not trust it blindly, though:
a job counts as complete only when each of its images and label files exists and the labels carry the
recipe's hash; anything else is rendered again. The plan hash (recipes, add-on version, Blender version,
shard) guards against finishing one dataset with the renders of another.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import SceneRecipe, recipe_hash
from render_tag_shared.seeds import spec_hash

from .io import write_json_atomic

__all__ = [
    "MANIFEST",
    "JobRecord",
    "Manifest",
    "ManifestWriter",
    "check_plan",
    "job_complete",
    "load_manifest",
    "make_plan",
    "remove_job_outputs",
]

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
JobStatus = Literal["pending", "running", "done", "failed"]


class JobRecord(BaseModel):
    """One job (one recipe, all its cameras)."""

    model_config = ConfigDict(extra="forbid")

    job_index: int
    scene_id: int
    image_ids: list[str]
    recipe_hash: str
    status: JobStatus = "pending"
    worker: str | None = None
    attempts: int = 0
    timings: dict[str, float] | None = Field(None, description="seconds: build, render, post, write, total")
    error_type: str | None = None
    error_message: str | None = None
    finished_at: float | None = None
    resumed: bool = Field(False, description="complete on disk from an earlier run, not rendered again")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = MANIFEST_VERSION
    plan_hash: str
    plan: dict[str, Any]
    status: Literal["running", "complete", "failed", "interrupted"] = "running"
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    summary: dict[str, Any] = Field(default_factory=dict)
    jobs: list[JobRecord] = Field(default_factory=list)


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


def load_manifest(out_dir: Path) -> Manifest | None:
    """The manifest of OUT, None when there is none; InputError when it is unreadable."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise InputError(
            str(path), "", f"cannot be read as a render manifest ({first}); use --force"
        ) from exc


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
    """Every image of the recipe exists and every label file parses and carries `digest`.

    Files are written atomically, so a label file that parses is whole; checking the hash (not the
    full record schema) keeps a resume of tens of thousands of images fast.
    """
    for index in range(len(recipe.cameras)):
        image_id = recipe.image_id(index)
        image = out_dir / "images" / f"{image_id}.png"
        try:
            if image.stat().st_size == 0:
                return False
            labels = json.loads((out_dir / "labels" / f"{image_id}.json").read_bytes())
        except (OSError, ValueError):
            return False
        if not isinstance(labels, dict) or labels.get("image_id") != image_id:
            return False
        if labels.get("recipe_hash") != digest:
            return False
    return True


def remove_job_outputs(out_dir: Path, recipe: SceneRecipe) -> None:
    """Removes what a half-finished job left, so a job that now fails leaves nothing behind."""
    for index in range(len(recipe.cameras)):
        image_id = recipe.image_id(index)
        for path in (out_dir / "images" / f"{image_id}.png", out_dir / "labels" / f"{image_id}.json"):
            path.unlink(missing_ok=True)


class ManifestWriter:
    """Holds the manifest in memory and rewrites the file atomically after each change.

    Large jobs would spend their time rewriting a manifest of tens of thousands of records, so beyond
    `throttle_above` jobs a write happens at most every `min_interval_s` (and always at the end): resume
    checks the files themselves, so a manifest a second behind costs nothing.
    """

    def __init__(
        self, out_dir: Path, manifest: Manifest, throttle_above: int = 2000, min_interval_s: float = 1.0
    ) -> None:
        self.path = out_dir / MANIFEST
        self.manifest = manifest
        self.min_interval_s = min_interval_s if len(manifest.jobs) > throttle_above else 0.0
        self._last_write = 0.0

    def record(self, index: int) -> JobRecord:
        return self.manifest.jobs[index]

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_s:
            return
        self.manifest.updated_at = time.time()
        self.manifest.summary = self.counts()
        write_json_atomic(self.path, self.manifest.model_dump(mode="json"), indent=1)
        self._last_write = now

    def counts(self) -> dict[str, Any]:
        jobs = self.manifest.jobs
        counts: dict[str, Any] = {s: 0 for s in ("done", "failed", "pending", "running")}
        for job in jobs:
            counts[job.status] += 1
        counts["resumed"] = sum(1 for job in jobs if job.resumed)
        counts["images_done"] = sum(len(job.image_ids) for job in jobs if job.status == "done")
        counts["failed_scenes"] = [job.scene_id for job in jobs if job.status == "failed"]
        return counts
