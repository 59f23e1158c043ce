"""manifest.json: one record per job and the plan it belongs to (plan.py says what resuming may skip).

The manifest is rewritten atomically after every job, so whatever stops the host (Ctrl-C, SIGKILL, a
lost machine) leaves a manifest that says what was finished.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from render_tag_shared.errors import InputError

from ..dataset.completeness import MANIFEST
from ..io import write_json_atomic

__all__ = ["MANIFEST", "JobRecord", "Manifest", "ManifestWriter", "load_manifest"]

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
    started_at: float | None = Field(None, description="when the host first sent it to a worker")
    finished_at: float | None = None
    wall_s: float | None = Field(None, description="seconds from first start to finish, retries included")
    resumed: bool = Field(False, description="complete on disk from an earlier run, not rendered again")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="SHA-256 of each image and label file of a done job, by path relative to OUT: a job "
        "is done only when they are recorded (dataset/completeness.py checks the folder against them)",
    )


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = MANIFEST_VERSION
    plan_hash: str
    plan: dict[str, Any]
    status: Literal["running", "complete", "failed", "interrupted"] = "running"
    recipes: str | None = Field(None, description="the input: the recipes file (or config) rendered")
    output: str | None = Field(None, description="the output folder, absolute")
    created_at: float = Field(default_factory=time.time, description="when the first run into OUT started")
    started_at: float = Field(default_factory=time.time, description="when the latest run started")
    finished_at: float | None = Field(None, description="when the latest run ended (None: still running)")
    updated_at: float = Field(default_factory=time.time)
    summary: dict[str, Any] = Field(
        default_factory=dict, description="done (skipped ones included), skipped, failed, pending, ..."
    )
    jobs: list[JobRecord] = Field(default_factory=list)


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
        counts["skipped"] = counts["resumed"]  # the contract's name: complete before this run, not redone
        counts["images_done"] = sum(len(job.image_ids) for job in jobs if job.status == "done")
        counts["failed_scenes"] = [job.scene_id for job in jobs if job.status == "failed"]
        return counts
