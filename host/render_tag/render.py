"""`render-tag render` and `render-tag run`: recipes to a dataset folder on a pool of Blender workers.

`main_render` renders a recipe file (or this shard of it) into OUT with resume, progress, a manifest and
telemetry, then merges OUT's labels into the dataset files; `main_run` compiles a config (or the built-in
default job) first, then renders and merges the same way, audits and draws the contact sheet. Both return
the CLI's exit code: 0 all done, 1 some scenes failed (named in manifest.json), 2 bad input (nothing
written), 130 interrupted (the folder resumes with --resume).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import RecipeFile, SceneRecipe, recipe_hash
from render_tag_shared.recipe_io import dump_recipe_file, load_recipe_file

from .compiler import parse_shard, shard_range
from .io import write_text_atomic
from .launcher import Launcher, make_launcher
from .manifest import (
    MANIFEST,
    JobRecord,
    Manifest,
    ManifestWriter,
    check_plan,
    job_complete,
    load_manifest,
    make_plan,
    remove_job_outputs,
)
from .pool import Job, JobOutcome, PoolError, PoolSettings, WorkerPool

__all__ = [
    "DEFAULT_JOB",
    "RenderOptions",
    "default_job_recipes",
    "default_workers",
    "main_render",
    "main_run",
    "render_recipes",
    "resolve_shard",
    "shard_slice",
]

DEFAULT_JOB = Path(__file__).with_name("default_job.yaml")
TELEMETRY = "telemetry.ndjson"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
SHARD_INDEX_VARS = ("AWS_BATCH_JOB_ARRAY_INDEX", "CLOUD_RUN_TASK_INDEX", "JOB_COMPLETION_INDEX")
SHARD_COUNT_VARS = {
    "AWS_BATCH_JOB_ARRAY_INDEX": ("AWS_BATCH_JOB_ARRAY_SIZE", "RENDER_TAG_SHARD_COUNT"),
    "CLOUD_RUN_TASK_INDEX": ("CLOUD_RUN_TASK_COUNT", "RENDER_TAG_SHARD_COUNT"),
    "JOB_COMPLETION_INDEX": ("JOB_COMPLETIONS", "RENDER_TAG_SHARD_COUNT"),
}
"""Cloud Run sets its count; AWS Batch and Kubernetes indexed jobs do not, so the job spec sets one of
these (or RENDER_TAG_SHARD_COUNT), or `--shard '*/N'` gives the count and the variable the index."""


# -- sharding ---------------------------------------------------------------------------------------


def resolve_shard(shard: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(index, count) from `--shard I/N`, `--shard '*/N'` plus an index variable, or the variables alone."""
    env = dict(os.environ) if environ is None else environ
    index_var = next((name for name in SHARD_INDEX_VARS if env.get(name, "").strip()), None)
    if shard is not None:
        index_text, slash, count_text = shard.partition("/")
        if index_text.strip() != "*":
            parsed = parse_shard(shard)  # the one parser of `I/N`, shared with `compile --shard`
            assert parsed is not None
            return parsed
        if not slash or not count_text.strip().isdigit():
            raise InputError("--shard", "", f"expected I/N with 0 <= I < N (or '*/N'), got {shard!r}")
        if index_var is None:
            raise InputError(
                "--shard", "", f"'*' takes the index from one of {', '.join(SHARD_INDEX_VARS)}: none is set"
            )
        index, count = _env_int(env, index_var), int(count_text)
        if count < 1 or not 0 <= index < count:
            raise InputError("--shard", "", f"expected I/N with 0 <= I < N, got {index}/{count}")
        return index, count
    if index_var is None:
        return 0, 1
    index = _env_int(env, index_var)
    count_var = next((name for name in SHARD_COUNT_VARS[index_var] if env.get(name, "").strip()), None)
    if count_var is None:
        names = " or ".join(SHARD_COUNT_VARS[index_var])
        raise InputError(
            f"${index_var}", "", f"is set but the shard count is not: set {names}, or pass --shard '*/N'"
        )
    count = _env_int(env, count_var)
    if count < 1 or not 0 <= index < count:
        raise InputError(
            f"${index_var}", "", f"index {index} is not in 0..{count - 1} (count from ${count_var})"
        )
    return index, count


def _env_int(env: dict[str, str], name: str) -> int:
    try:
        return int(env[name].strip())
    except ValueError:
        raise InputError(f"${name}", "", f"expected an integer, got {env[name]!r}") from None


def shard_slice(recipes: Sequence[SceneRecipe], shard: tuple[int, int]) -> list[SceneRecipe]:
    """Shard I of N renders the I-th of N contiguous blocks of the recipes (in file order): the rule of
    `compile --shard` (`compiler.shard_range`), so `--shard I/N` names the same scenes in both commands
    and the shards in order concatenate to the whole job."""
    return [recipes[i] for i in shard_range(len(recipes), shard)]


# -- sizing -----------------------------------------------------------------------------------------


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _available_mb() -> float | None:
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/meminfo", encoding="ascii") as handle,
    ):
        for line in handle:
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) / 1024.0
    return None


def default_workers(workers: int | None = None, jobs: int | None = None) -> tuple[int, int]:
    """(workers, Cycles threads per worker) for this machine.

    Cycles scales linearly with threads, so the split hardly changes render time; more workers hide
    the single-threaded stages (scene build, post-processing, PNG writing) behind other renders, while
    each worker costs about 300 MB. So: 1 thread each up to 4 cores, then 2, then 4.
    """
    cores = _cores()
    if workers is None:
        threads = 1 if cores <= 4 else 2 if cores <= 16 else 4
        workers = max(1, cores // threads)
        available = _available_mb()
        if available is not None:
            workers = max(1, min(workers, int(available // 700)))
    else:
        threads = max(1, cores // max(1, workers))
    if jobs is not None:
        workers = max(1, min(workers, jobs))
    return workers, threads


# -- progress and telemetry -------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, stream: IO[str] | None = None, label: str = "render") -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, images: int = 0, failed: int = 0) -> None:
        self.done += images
        self.failed += failed
        now = time.monotonic()
        finished = self.done + self.failed >= self.total
        if self.tty:
            if finished or now - self._last_draw >= 0.2:
                self._last_draw = now
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
        else:
            decile = (10 * (self.done + self.failed)) // max(1, self.total)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        count = self.done + self.failed
        fraction = count / self.total if self.total else 1.0
        width = 24
        filled = round(width * fraction)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = self.total - count
        eta = _duration(remaining / rate) if rate > 0 else "?"
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {count}/{self.total} images{failed}"
            f"  {rate:.2f} img/s  ETA {eta}"
        )

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class TelemetryLog:
    """telemetry.ndjson in OUT: one JSON object a line, appended (a resumed run adds to it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115  # closed by close()

    def __call__(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, allow_nan=False, default=str) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
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


# -- rendering --------------------------------------------------------------------------------------


@dataclass
class RenderOptions:
    """Everything `render` and `run` take besides the recipes and OUT."""

    workers: int | None = None
    resume: bool = False
    force: bool = False
    shard: str | None = None
    blender: str | None = None
    timeout_s: float = 900.0
    startup_timeout_s: float = 180.0
    max_renders_per_worker: int = 500
    memory_limit_mb: float | None = 4096.0
    retries: int = 2
    progress: bool = True
    merge: bool = True
    launcher: Launcher | None = None
    extra_pool: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resume and self.force:
            raise InputError("--resume", "", "--resume and --force contradict each other: pick one")


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


def _prepare_folder(
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


def _clear_outputs(out: Path) -> None:
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


def render_recipes(
    recipe_file: RecipeFile, out: str | Path, options: RenderOptions, source: str = "recipes"
) -> int:
    """Renders recipes into OUT (this shard's slice of them) and, when at least one scene is done, merges
    OUT's labels into the dataset files (unless `options.merge` is off); returns the exit code (InputError
    raises)."""
    return _render_and_merge(recipe_file, out, options, source)[0]


def _merge_rendered(out_dir: Path) -> bool:
    """The merge at the end of a render; False (said why on stderr) when nothing could be merged."""
    from .merge import merge_dataset

    try:
        report = merge_dataset(out_dir)
    except InputError as exc:
        print(f"render-tag: merge: {exc}", file=sys.stderr)
        return False
    print(report.summary())
    return True


def _render_and_merge(
    recipe_file: RecipeFile, out: str | Path, options: RenderOptions, source: str
) -> tuple[int, bool]:
    """(exit code, whether OUT was merged): render, then merge once when a scene is done and the render
    was not interrupted. A merge that fails turns an exit code of 0 into 1."""
    _check_options(options)
    out_dir = Path(out)
    code, manifest = _render(recipe_file, out_dir, options, source)
    if not options.merge or code == EXIT_INTERRUPTED or not any(j.status == "done" for j in manifest.jobs):
        return code, False
    merged = _merge_rendered(out_dir)
    return (code if merged else max(code, 1)), merged


def _check_options(options: RenderOptions) -> None:
    """Numbers that make no sense at zero or below are bad input (exit 2, nothing written), named as the
    user gave them (`--workers` on the command line, the keyword argument otherwise)."""
    counts = {"--workers": options.workers, "max_renders_per_worker": options.max_renders_per_worker}
    for name, count in counts.items():
        if count is not None and count < 1:
            raise InputError(name, "", f"must be at least 1, got {count}")
    limits = {
        "timeout_s": options.timeout_s,
        "startup_timeout_s": options.startup_timeout_s,
        "memory_limit_mb": options.memory_limit_mb,
    }
    for name, value in limits.items():
        if value is not None and not value > 0:
            raise InputError(name, "", f"must be above 0, got {value}")
    if options.retries < 0:
        raise InputError("retries", "", f"must be 0 or more, got {options.retries}")


def _render(
    recipe_file: RecipeFile, out_dir: Path, options: RenderOptions, source: str
) -> tuple[int, Manifest]:
    """The render itself: (exit code, the manifest as last written)."""
    shard = resolve_shard(options.shard)
    selected = shard_slice(recipe_file.recipes, shard)
    launcher = options.launcher if options.launcher is not None else make_launcher(options.blender)
    plan, plan_hash = make_plan(
        selected,
        job_id=recipe_file.job_id,
        addon_version=launcher.addon_version(),
        blender_version=launcher.blender_version(),
        shard=shard,
    )
    # --force redoes everything: the old manifest is not needed, and a corrupt one must not stop it.
    has_manifest = (out_dir / MANIFEST).exists()
    previous = load_manifest(out_dir) if has_manifest and not options.force else None
    _prepare_folder(out_dir, previous, options, plan, plan_hash)

    # From here on the folder is ours: nothing above wrote a byte.
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.force:
        _clear_outputs(out_dir)
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
        if options.resume and job_complete(out_dir, recipe, digest):
            record = JobRecord(
                job_index=index,
                scene_id=recipe.scene_id,
                image_ids=image_ids,
                recipe_hash=digest,
                status="done",
                resumed=True,
            )
            if old is not None and old.status == "done":
                record = old.model_copy(update={"resumed": True})
            summary.skipped += 1
        else:
            remove_job_outputs(out_dir, recipe)
            record = JobRecord(
                job_index=index, scene_id=recipe.scene_id, image_ids=image_ids, recipe_hash=digest
            )
            todo.append(Job(index=index, recipe=recipe, out_dir=out_dir.resolve()))
        records.append(record)
    manifest = Manifest(plan_hash=plan_hash, plan=plan, jobs=records)
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
    progress = Progress(total_images) if options.progress and todo else None
    started = time.monotonic()

    def on_start(job: Job, worker_id: str) -> None:
        record = writer.record(job.index)
        record.status, record.worker, record.attempts = "running", worker_id, job.attempts
        writer.flush()

    def on_finish(outcome: JobOutcome) -> None:
        record = writer.record(outcome.job.index)
        record.worker, record.attempts, record.finished_at = outcome.worker_id, outcome.attempts, time.time()
        images = len(outcome.job.recipe.cameras)
        if outcome.status == "done":
            record.status, record.error_type, record.error_message = "done", None, None
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
                progress.update(images=images)
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
    settings = PoolSettings(
        workers=workers,
        threads_per_worker=threads,
        timeout_s=options.timeout_s,
        startup_timeout_s=options.startup_timeout_s,
        max_renders_per_worker=options.max_renders_per_worker,
        memory_limit_mb=options.memory_limit_mb,
        retries=options.retries,
        log_dir=out_dir / "logs",
        **options.extra_pool,
    )
    try:
        with _sigterm_as_interrupt():
            if todo:
                with WorkerPool(launcher, settings, telemetry) as pool:
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
        elif failed_now or unfinished:
            manifest.status = "failed"
        else:
            manifest.status = "complete"
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

    if pool_error is not None:
        print(f"render-tag: error: {pool_error}", file=sys.stderr)
    for line in summary.failures[:20]:
        print(f"render-tag: failed: {line}", file=sys.stderr)
    print(summary.line())
    if summary.interrupted:
        print(f"render-tag: interrupted; finish with --resume ({out_dir})", file=sys.stderr)
        return EXIT_INTERRUPTED, manifest
    return (0 if manifest.status == "complete" else 1), manifest


def main_render(
    recipes_path: str | Path,
    out: str | Path,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    shard: str | None = None,
    blender: str | None = None,
    timeout_s: float = 900.0,
    max_renders_per_worker: int = 500,
    memory_limit_mb: float | None = 4096.0,
    retries: int = 2,
    progress: bool = True,
    merge: bool = True,
) -> int:
    """`render-tag render RECIPES -o OUT [--workers N] [--resume | --force] [--shard I/N] [--blender PATH]`.

    Renders, then merges OUT (`render-tag merge OUT`) when at least one scene is done. Returns the exit
    code: 0 all done, 1 some scenes failed, 2 bad input (nothing written), 130 interrupted.
    """

    def render() -> int:
        options = RenderOptions(
            workers=workers,
            resume=resume,
            force=force,
            shard=shard,
            blender=blender,
            timeout_s=timeout_s,
            max_renders_per_worker=max_renders_per_worker,
            memory_limit_mb=memory_limit_mb,
            retries=retries,
            progress=progress,
            merge=merge,
        )
        return render_recipes(load_recipe_file(recipes_path), out, options, source=str(recipes_path))

    return _guarded(render)


def _guarded(action: Callable[[], int]) -> int:
    """Runs a command: bad input is reported (exit 2, nothing written), Ctrl-C before the pool exits 130."""
    try:
        return action()
    except InputError as exc:
        print(f"render-tag: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before the pool started: nothing half done
        print("render-tag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- run: compile, render, merge, audit, preview -------------------------------------------------------


def default_job_recipes(path: Path = DEFAULT_JOB, presets: Sequence[str] = ()) -> RecipeFile:
    """The built-in job: each YAML document of default_job.yaml is a config (tags, a ChArUco board),
    compiled on its own; scene ids continue from one document to the next."""
    import yaml

    from render_tag_shared.config import parse_config
    from render_tag_shared.seeds import job_id

    from .compiler import compile_config
    from .presets import compose_config

    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    recipes: list[SceneRecipe] = []
    ids: list[str | None] = []
    for number, document in enumerate(documents):
        config = parse_config(compose_config(document, list(presets)), f"{path} (document {number + 1})")
        compiled = compile_config(config, source=str(path), base_dir=path.parent)
        offset = len(recipes)
        recipes += [r.model_copy(update={"scene_id": offset + r.scene_id}) for r in compiled.recipes]
        ids.append(compiled.job_id)
    return RecipeFile(job_id=job_id({"default_job": ids}), recipes=recipes)


def main_run(
    config_path: str | Path | None,
    out: str | Path,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    shard: str | None = None,
    blender: str | None = None,
    timeout_s: float = 900.0,
    max_renders_per_worker: int = 500,
    memory_limit_mb: float | None = 4096.0,
    progress: bool = True,
    presets: Sequence[str] | None = None,
) -> int:
    """`render-tag run [CONFIG] -o OUT`: compile (no CONFIG: the built-in default job), render and merge (the
    render's own merge, once), audit, contact sheet. Exit code as for render; a failed audit also gives 1."""
    out_dir = Path(out)
    merged = False

    def render() -> int:
        nonlocal merged
        options = RenderOptions(
            workers=workers,
            resume=resume,
            force=force,
            shard=shard,
            blender=blender,
            timeout_s=timeout_s,
            max_renders_per_worker=max_renders_per_worker,
            memory_limit_mb=memory_limit_mb,
            progress=progress,
        )
        if config_path is None:
            recipe_file = default_job_recipes(presets=presets or ())
            source = str(DEFAULT_JOB)
        else:
            from .compiler import compile_config, load_job_config

            config = load_job_config(str(config_path), list(presets or ()))
            recipe_file = compile_config(config, source=str(config_path), base_dir=Path(config_path).parent)
            source = str(config_path)
        code, merged = _render_and_merge(recipe_file, out_dir, options, source)
        return code

    code = _guarded(render)
    if not merged:  # interrupted, nothing done, or nothing to merge: no dataset to audit
        return code

    from .audit import main_audit
    from .preview import main_preview

    try:
        if main_audit(out_dir) != 0:
            code = max(code, 1)
        main_preview(out_dir)
    except InputError as exc:
        print(f"render-tag: {exc}", file=sys.stderr)
        code = max(code, 1)
    return code
