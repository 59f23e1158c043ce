"""`render` without the command line: recipes to images and labels in OUT on a pool of Blender workers.

Resume, the manifest, telemetry and the progress display live here; merging OUT's labels into the
dataset files is the pipeline's next step (pipeline.py), and exit codes are the CLI's business.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal

from render_tag_shared.assets import check_assets
from render_tag_shared.files import remove_stale_temporaries
from render_tag_shared.messages import Timings
from render_tag_shared.recipe import OUTPUT_KINDS, RecipeFile, recipe_hash
from render_tag_shared.recipe_io import dump_recipe_file, recipe_assets

from ..dataset.completeness import hash_job_files
from ..io import write_text_atomic
from .chunks import CHUNK_RESULT, ChunkJob, ChunkResult, chunk_files
from .devices import require_devices
from .launcher import make_launcher
from .manifest import MANIFEST, JobRecord, Manifest, ManifestWriter, load_manifest
from .options import RenderOptions
from .plan import (
    Plan,
    check_environment,
    clear_outputs,
    load_plan,
    make_plan,
    prepare_folder,
    remove_job_outputs,
)
from .pool import Job, JobOutcome, PoolError, WorkerPool
from .shards import resolve_shard, shard_slice
from .sizing import default_workers
from .telemetry import TELEMETRY, Progress, TelemetryLog

__all__ = [
    "ChunkRender",
    "RenderRun",
    "RenderSummary",
    "render_chunk",
    "render_recipes",
    "sigterm_as_interrupt",
]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cluster preempting the job) stops like Ctrl-C: cleanly, leaving a resumable folder."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class RenderSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    images: int = 0
    elapsed_s: float = 0.0
    stages: dict[str, float] = field(
        default_factory=lambda: {k: 0.0 for k in ("build", "render", "post", "write")}
    )
    pending: int = 0
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0
        total = sum(self.stages.values())
        split = ", ".join(
            f"{name} {seconds / max(1, self.images):.2f}s ({100 * seconds / total:.0f}%)"
            if total
            else f"{name} -"
            for name, seconds in self.stages.items()
        )
        state = "interrupted: " if self.interrupted else ""
        left = f", {self.pending} not rendered" if self.pending else ""
        return (
            f"{state}{self.done} done, {self.skipped} skipped, {self.failed} failed{left}; "
            f"{self.images} images in {self.elapsed_s:.1f} s ({rate:.2f} img/s); per image: {split}"
        )


@dataclass
class RenderRun:
    """What a render did: its summary, the manifest as last written, and why the pool gave up (if it did)."""

    summary: RenderSummary
    manifest: Manifest
    pool_error: str | None = None

    @property
    def any_done(self) -> bool:
        return any(job.status == "done" for job in self.manifest.jobs)


def render_recipes(
    recipe_file: RecipeFile, out: str | Path, options: RenderOptions, source: str = "recipes"
) -> RenderRun:
    """Renders this shard's slice of the recipes into OUT, with resume, a manifest and telemetry.

    Bad input (an unusable asset, a folder that may not be rendered into, another plan) raises
    InputError before a worker starts and before a byte is written; Ctrl-C and SIGTERM stop the pool
    cleanly and leave a folder that resumes."""
    out_dir = Path(out)
    shard = resolve_shard(options.shard)
    selected = shard_slice(recipe_file.recipes, shard)
    # Every asset is checked before a worker starts: a missing texture is bad input, not a crash.
    mine = {id(recipe) for recipe in selected}
    check_assets(
        (
            item
            for index, recipe in enumerate(recipe_file.recipes)
            if id(recipe) in mine
            for item in recipe_assets(recipe, f"recipes[{index}]")
        ),
        source,
    )
    launcher = options.launcher if options.launcher is not None else make_launcher(options.blender)
    require_devices(selected, launcher, source)  # a gpu recipe without a GPU: exit 2 before any render
    plan, plan_hash = make_plan(
        selected,
        job_id=recipe_file.job_id,
        addon_version=launcher.addon_version(),
        blender_version=launcher.blender_version(),
        shard=shard,
    )
    if options.dask is not None:
        from .dask_engine import check_scheduler  # the `dask` extra (RenderOptions checked it)

        check_scheduler(options.dask)
    # --force redoes everything: the old manifest is not needed, and a corrupt one must not stop it.
    has_manifest = (out_dir / MANIFEST).exists()
    previous = load_manifest(out_dir) if has_manifest and not options.force else None
    prepare_folder(out_dir, previous, options, plan, plan_hash)

    # From here on the folder is ours: nothing above wrote a byte.
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.force:
        clear_outputs(out_dir)
    for folder in ("", "images", "labels", *OUTPUT_KINDS):  # what a killed run's writes left half-done
        remove_stale_temporaries(out_dir / folder)
    sliced = RecipeFile(
        schema_version=recipe_file.schema_version,
        job_id=recipe_file.job_id,
        job_spec=recipe_file.job_spec,
        recipes=selected,
    )
    write_text_atomic(out_dir / "recipes.json", dump_recipe_file(sliced))
    old_records = {r.job_index: r for r in previous.jobs} if previous is not None and options.resume else {}

    records: list[JobRecord] = []
    todo: list[Job] = []
    summary = RenderSummary()
    for index, recipe in enumerate(selected):
        digest = recipe_hash(recipe)
        image_ids = [recipe.image_id(i) for i in range(len(recipe.cameras))]
        old = old_records.get(index)
        complete, files = False, dict[str, str]()
        if options.resume:
            files, problems = hash_job_files(out_dir, image_ids, digest)
            # A file changed since its hash was recorded is not the one rendered: render it again.
            changed = old is not None and old.status == "done" and bool(old.files) and old.files != files
            complete = not problems and not changed
        if complete:
            record = JobRecord(
                job_index=index,
                scene_id=recipe.scene_id,
                image_ids=image_ids,
                recipe_hash=digest,
                status="done",
                resumed=True,
                files=files,
            )
            if old is not None and old.status == "done":
                record = old.model_copy(update={"resumed": True, "files": files})
            summary.skipped += 1
        else:
            remove_job_outputs(out_dir, recipe)
            record = JobRecord(
                job_index=index, scene_id=recipe.scene_id, image_ids=image_ids, recipe_hash=digest
            )
            todo.append(Job(index=index, recipe=recipe, out_dir=out_dir.resolve()))
        records.append(record)
    run_started = time.time()
    manifest = Manifest(
        plan_hash=plan_hash,
        plan=plan,
        jobs=records,
        recipes=source,
        output=str(out_dir.resolve()),
        created_at=run_started,
        started_at=run_started,
    )
    if previous is not None and options.resume:
        manifest.created_at = previous.created_at
    writer = ManifestWriter(out_dir, manifest)
    writer.flush(force=True)

    telemetry = TelemetryLog(out_dir / TELEMETRY)
    workers, threads = default_workers(options.workers, len(todo))
    total_images = sum(len(job.recipe.cameras) for job in todo)
    telemetry(
        {
            "t": round(time.time(), 3),
            "event": "run_started",
            "recipes": source,
            "plan_hash": plan_hash,
            "jobs": len(selected),
            "todo": len(todo),
            "skipped": summary.skipped,
            "images": total_images,
            "workers": workers,
            "threads_per_worker": threads,
            "launcher": launcher.describe(),
            "shard": plan["shard"],
        }
    )
    starting = (
        f"starting {workers} worker{'s' if workers != 1 else ''}" if options.dask is None else "starting Dask"
    )
    progress = Progress(total_images, note=starting) if options.progress and todo else None
    started = time.monotonic()

    def on_start(job: Job, worker_id: str) -> None:
        record = writer.record(job.index)
        record.status, record.worker, record.attempts = "running", worker_id, job.attempts
        if record.started_at is None:
            record.started_at = time.time()
        writer.flush()

    def on_finish(outcome: JobOutcome) -> None:
        record = writer.record(outcome.job.index)
        record.worker, record.attempts, record.finished_at = outcome.worker_id, outcome.attempts, time.time()
        if record.started_at is not None:
            record.wall_s = round(record.finished_at - record.started_at, 4)
        images = len(outcome.job.recipe.cameras)
        if outcome.status == "done":
            record.status, record.error_type, record.error_message = "done", None, None
            record.files = dict(outcome.files)
            if outcome.timings is not None:
                stages = outcome.timings.model_dump()
                record.timings = {k: round(v, 4) for k, v in stages.items()} | {
                    "total": round(outcome.timings.total, 4)
                }
                for key in summary.stages:
                    summary.stages[key] += stages[key]
            summary.done += 1
            summary.images += images
            if progress is not None:
                progress.update(done=images)
        else:
            # A scene is all or nothing: cameras it rendered before failing go, so the merged dataset
            # never holds part of a failed scene (the manifest keeps the failure and its error).
            remove_job_outputs(out_dir, outcome.job.recipe)
            record.status, record.error_type, record.error_message = (
                "failed",
                outcome.error_type,
                outcome.error_message,
            )
            summary.failed += 1
            summary.failures.append(f"scene {record.scene_id}: {outcome.error_type}: {outcome.error_message}")
            if progress is not None:
                progress.update(failed=images)
        writer.flush()

    pool_error: str | None = None
    try:
        with sigterm_as_interrupt():
            if todo and options.dask is not None:
                from .dask_engine import render_on_dask  # the `dask` extra (RenderOptions checked it)

                render_on_dask(sliced, shard, todo, out_dir, options, launcher, on_finish, telemetry)
            elif todo:
                pool = WorkerPool(
                    launcher,
                    options,
                    workers=workers,
                    threads=threads,
                    log_dir=out_dir / "logs",
                    telemetry=telemetry,
                )
                with pool:
                    pool.run(todo, on_start=on_start, on_finish=on_finish)
                    restarts = dict(pool.restarts)
                telemetry({"t": round(time.time(), 3), "event": "pool_closed", "restarts": restarts})
    except KeyboardInterrupt:
        summary.interrupted = True
    except PoolError as exc:
        pool_error = str(exc)
    finally:
        if progress is not None:
            progress.close()
        summary.elapsed_s = time.monotonic() - started
        for record in manifest.jobs:
            if record.status == "running":
                record.status = "pending"
        summary.pending = sum(1 for r in manifest.jobs if r.status == "pending")
        failed_now = any(r.status == "failed" for r in manifest.jobs)
        unfinished = any(r.status == "pending" for r in manifest.jobs)
        if summary.interrupted:
            manifest.status = "interrupted"
        elif failed_now or unfinished or pool_error is not None:
            manifest.status = "failed"
        else:
            manifest.status = "complete"
        manifest.finished_at = time.time()
        writer.flush(force=True)
        telemetry(
            {
                "t": round(time.time(), 3),
                "event": "run_finished",
                "status": manifest.status,
                "summary": summary.line(),
                "done": summary.done,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "images": summary.images,
                "elapsed_s": round(summary.elapsed_s, 3),
                "stages_s": summary.stages,
            }
        )
        telemetry.close()

    return RenderRun(summary=summary, manifest=manifest, pool_error=pool_error)


@dataclass
class ChunkRender:
    """`render_chunk`'s answer: the chunk's result and the render that made it (summary, manifest)."""

    result: ChunkResult
    run: RenderRun


def render_chunk(
    plan: Plan | str | Path,
    chunk: int,
    out: str | Path,
    options: RenderOptions,
    expected_hash: str | None = None,
    source: str | None = None,
) -> ChunkRender:
    """Chunk `chunk` of a plan into its own folder OUT: `render-tag render-chunk` without the command line.

    The plan hash is verified first (PlanHashMismatch, nothing written), then the add-on and Blender
    versions (PlanEnvironmentMismatch); the scenes render like `render` renders them (resume, manifest,
    persistent workers), and OUT/chunk.json records the result with every file's SHA-256. A chunk run
    again (a scheduler's retry) resumes its folder: only what is not complete is rendered, to the same
    bytes (--force redoes it)."""
    source = source or (str(plan) if not isinstance(plan, Plan) else "plan")
    plan = plan if isinstance(plan, Plan) else load_plan(plan, expected_hash)
    recipes = plan.chunk_recipes(chunk)
    launcher = options.launcher if options.launcher is not None else make_launcher(options.blender)
    check_environment(plan, launcher.addon_version(), launcher.blender_version(), source)
    sliced = RecipeFile(
        schema_version=plan.recipe_file.schema_version,
        job_id=plan.recipe_file.job_id,
        job_spec=plan.recipe_file.job_spec,
        recipes=recipes,
    )
    # The chunk is the slice: no shard from the environment (a cluster's index picks the chunk).
    resume = not options.force
    settings = options.model_copy(
        update={"launcher": launcher, "shard": "0/1", "merge": False, "resume": resume}
    )
    started = time.monotonic()
    run = render_recipes(sliced, out, settings, source=f"{source}#chunk{chunk}")
    offset = plan.chunk_range(chunk).start
    jobs = [_from_record(record, offset) for record in run.manifest.jobs]
    out_dir = Path(out)
    result = ChunkResult(
        plan_hash=plan.plan_hash,
        chunk=chunk,
        num_chunks=plan.num_chunks,
        status=_status(run.manifest),
        jobs=jobs,
        files=chunk_files(out_dir, jobs),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    write_text_atomic(out_dir / CHUNK_RESULT, result.model_dump_json(indent=1) + "\n")
    return ChunkRender(result=result, run=run)


def _status(manifest: Manifest) -> Literal["complete", "failed", "interrupted"]:
    if manifest.status in ("complete", "interrupted"):
        return manifest.status
    return "failed"


def _from_record(record: JobRecord, offset: int) -> ChunkJob:
    timings = None
    if record.timings is not None:
        timings = Timings(**{k: v for k, v in record.timings.items() if k in Timings.model_fields})
    return ChunkJob(
        job_index=offset + record.job_index,
        scene_id=record.scene_id,
        image_ids=record.image_ids,
        status="done" if record.status == "done" else "failed",
        resumed=record.resumed,
        worker=record.worker,
        attempts=record.attempts,
        timings=timings,
        error_type=record.error_type or (None if record.status == "done" else "NotRendered"),
        error_message=record.error_message,
    )
