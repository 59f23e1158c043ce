"""One chunk of a plan, rendered on a persistent pool (`run_chunk`, what a Dask task runs; `render-chunk`
is render.render_chunk); and the check that a set of chunks is one whole plan.

A chunk is a scheduler's unit of work (a Kubernetes index, a SLURM array task, a Dask task): it verifies
the plan hash first, renders its scenes on a persistent Blender worker, and returns a `ChunkResult` that
lists every file it wrote with its SHA-256. Assembling refuses a set of chunks in which one is missing,
twice, from another plan, incomplete, or whose files no longer hash as reported.

Errors are typed by what a retry can do: `PlanError` (bad input, exit 2) and scene errors a worker
reported fail the same way everywhere and are never retried; `TransientChunkError` (a Blender worker
crashed, hung or was lost) is what a scheduler retries. A retried chunk renders only what is not
complete on disk yet, into the same bytes.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from render_tag_shared.errors import InputError
from render_tag_shared.messages import Timings
from render_tag_shared.recipe import SceneRecipe, recipe_hash

from ..dataset.completeness import CHUNK_RESULT
from ..dataset.merge import file_sha256
from .plan import Plan, job_complete, remove_job_outputs
from .pool import Job, JobOutcome, WorkerPool

__all__ = [
    "CHUNK_RESULT",
    "TRANSIENT_ERRORS",
    "AssemblyError",
    "ChunkFile",
    "ChunkJob",
    "ChunkResult",
    "TransientChunkError",
    "check_chunk_folders",
    "check_chunk_set",
    "chunk_files",
    "run_chunk",
]

TRANSIENT_ERRORS = frozenset({"WorkerCrashed", "RenderTimeout", "WorkerLost", "MemoryError"})
"""Job errors a retry can cure (the pool names a lost worker's job so); any other error a worker reports
is the scene's own and fails the same way again."""


class TransientChunkError(RuntimeError):
    """A chunk lost scenes to a crashed, hung or lost Blender worker: retry it (what it finished stays)."""

    retryable = True


class AssemblyError(RuntimeError):
    """The chunks do not make one whole plan: one is missing, twice, foreign, incomplete or altered."""


class ChunkFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="relative to the output folder, '/'-separated")
    sha256: str
    size: int


class ChunkJob(BaseModel):
    """One scene of the chunk: done (rendered now, or complete on disk before) or failed."""

    model_config = ConfigDict(extra="forbid")

    job_index: int
    scene_id: int
    image_ids: list[str]
    status: Literal["done", "failed"]
    resumed: bool = False
    worker: str | None = None
    attempts: int = 0
    timings: Timings | None = None
    error_type: str | None = None
    error_message: str | None = None


class ChunkResult(BaseModel):
    """What a chunk returns (and `render-chunk` writes as OUT/chunk.json)."""

    model_config = ConfigDict(extra="forbid")

    plan_hash: str
    chunk: int
    num_chunks: int
    status: Literal["complete", "failed", "interrupted"]
    jobs: list[ChunkJob]
    files: list[ChunkFile]
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> list[ChunkJob]:
        return [job for job in self.jobs if job.status == "failed"]


def chunk_files(out_dir: Path, jobs: Sequence[ChunkJob]) -> list[ChunkFile]:
    """The image and label files of the done scenes, each with its SHA-256."""
    files = []
    for job in jobs:
        if job.status != "done":
            continue
        for image_id in job.image_ids:
            for relative in (f"images/{image_id}.png", f"labels/{image_id}.json"):
                path = out_dir / relative
                digest = file_sha256(path)
                if digest is None:
                    raise TransientChunkError(f"{path} vanished after its scene was done")
                files.append(ChunkFile(path=relative, sha256=digest, size=path.stat().st_size))
    return files


def run_chunk(
    plan: Plan,
    chunk: int,
    out_dir: Path,
    pool: WorkerPool,
    worker: str = "",
    telemetry: Callable[[dict[str, Any]], None] | None = None,
) -> ChunkResult:
    """Chunk `chunk` on a pool that outlives it (a Dask worker's): scenes complete on disk are kept, the
    rest rendered. Scene errors a worker reports are the result's failed jobs; scenes lost to a worker
    crash, hang or loss raise TransientChunkError once the others are done (a retry renders only them).
    The pool must not retry (WorkerLimits.retries == 0): retrying is the scheduler's. `telemetry` hears
    the chunk's steps (started, each scene handed out and finished, rendered, files hashed)."""

    def emit(event: str, **fields: Any) -> None:
        if telemetry is not None:
            telemetry({"t": round(time.time(), 3), "event": event, "chunk": chunk, **fields})

    started = time.monotonic()
    emit("chunk_started")
    indices = plan.chunk_range(chunk)
    recipes: dict[int, SceneRecipe] = {i: plan.recipe_file.recipes[i] for i in indices}
    jobs: dict[int, ChunkJob] = {}
    todo: list[Job] = []
    for index, recipe in recipes.items():
        image_ids = [recipe.image_id(c) for c in range(len(recipe.cameras))]
        if job_complete(out_dir, recipe, recipe_hash(recipe)):
            jobs[index] = ChunkJob(
                job_index=index, scene_id=recipe.scene_id, image_ids=image_ids, status="done", resumed=True
            )
        else:
            remove_job_outputs(out_dir, recipe)
            todo.append(Job(index=index, recipe=recipe, out_dir=out_dir))

    def on_start(job: Job, worker_id: str) -> None:
        emit("job_started", job_index=job.index, worker=worker_id)

    def finished(outcome: JobOutcome) -> None:
        emit(
            "job_finished",
            job_index=outcome.job.index,
            status=outcome.status,
            timings=outcome.timings.model_dump() if outcome.timings is not None else None,
        )
        recipe = outcome.job.recipe
        if outcome.status != "done":
            remove_job_outputs(out_dir, recipe)  # a scene is all or nothing
        jobs[outcome.job.index] = ChunkJob(
            job_index=outcome.job.index,
            scene_id=recipe.scene_id,
            image_ids=[recipe.image_id(c) for c in range(len(recipe.cameras))],
            status=outcome.status,
            worker=f"{worker}/{outcome.worker_id}" if worker else outcome.worker_id,
            attempts=outcome.attempts,
            timings=outcome.timings,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
        )

    if todo:
        pool.run(todo, on_start=on_start, on_finish=finished)
    emit("chunk_rendered", rendered=len(todo))
    ordered = [jobs[i] for i in indices]
    lost = [job for job in ordered if job.status == "failed" and job.error_type in TRANSIENT_ERRORS]
    if lost:
        named = "; ".join(f"scene {job.scene_id}: {job.error_type}: {job.error_message}" for job in lost)
        raise TransientChunkError(f"chunk {chunk}: {len(lost)} scene(s) lost ({named})")
    result = ChunkResult(
        plan_hash=plan.plan_hash,
        chunk=chunk,
        num_chunks=plan.num_chunks,
        status="failed" if any(job.status == "failed" for job in ordered) else "complete",
        jobs=ordered,
        files=chunk_files(out_dir, ordered),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    emit("chunk_finished", status=result.status, files=len(result.files), elapsed_s=result.elapsed_s)
    return result


def check_chunk_set(results: Sequence[tuple[str, ChunkResult]], roots: Sequence[Path] | None = None) -> None:
    """Every chunk of one plan exactly once, each complete, each file as it was reported.

    `results` pairs each result with where it came from (a folder, a Dask task), used in the messages;
    `roots` are the folders the results' files are relative to (default: one per result, the name)."""
    if not results:
        raise AssemblyError("no chunk results to assemble")
    folders = list(roots) if roots is not None else [Path(where) for where, _ in results]
    first_where, first = results[0]
    seen: dict[int, str] = {}
    for (where, result), root in zip(results, folders, strict=True):
        if result.plan_hash != first.plan_hash or result.num_chunks != first.num_chunks:
            raise AssemblyError(
                f"{where}: chunk {result.chunk} belongs to plan {result.plan_hash[:12]}, not to plan "
                f"{first.plan_hash[:12]} of {first_where}: chunks of different plans do not make one dataset"
            )
        if not 0 <= result.chunk < result.num_chunks:
            raise AssemblyError(f"{where}: chunk {result.chunk} is not in 0..{result.num_chunks - 1}")
        if result.chunk in seen:
            raise AssemblyError(f"chunk {result.chunk} is there twice: {seen[result.chunk]} and {where}")
        seen[result.chunk] = where
        if result.status != "complete":
            failed = ", ".join(str(job.scene_id) for job in result.failed) or "-"
            raise AssemblyError(
                f"{where}: chunk {result.chunk} is {result.status} (failed scenes: {failed}): render it again"
            )
        for file in result.files:
            if file_sha256(root / file.path) != file.sha256:
                raise AssemblyError(
                    f"{root / file.path}: missing or changed since chunk {result.chunk} wrote it "
                    f"(sha256 {file.sha256[:12]})"
                )
    missing = sorted(set(range(first.num_chunks)) - set(seen))
    if missing:
        shown = ", ".join(str(k) for k in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise AssemblyError(
            f"plan {first.plan_hash[:12]} has {first.num_chunks} chunks; missing: {shown} "
            f"({len(missing)} of {first.num_chunks})"
        )


def check_chunk_folders(folders: Sequence[str | Path]) -> bool:
    """For `merge`: when the folders are chunk folders (they hold chunk.json), checks they make one whole
    plan (AssemblyError otherwise) and returns True; False when none is a chunk folder."""
    paths = [Path(folder) for folder in folders]
    found = [(folder, folder / CHUNK_RESULT) for folder in paths]
    if not any(path.is_file() for _, path in found):
        return False
    results: list[tuple[str, ChunkResult]] = []
    for folder, path in found:
        if not path.is_file():
            raise AssemblyError(f"{folder}: no {CHUNK_RESULT}; the other folders are chunks of a plan")
        try:
            results.append((str(folder), ChunkResult.model_validate_json(path.read_bytes())))
        except (OSError, ValueError) as exc:
            raise InputError(str(path), "", f"not a chunk result ({str(exc).splitlines()[0]})") from None
    check_chunk_set(results, paths)
    return True
