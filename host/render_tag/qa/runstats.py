"""What a render cost: time per stage, worker start-up, restarts and memory, from OUT's own records.

`manifest.json` has each scene's stage timings; `telemetry.ndjson` has the workers' life (started,
ready, heartbeats with their memory, restarts, errors) and each run's start and end. Both are read as
plain JSON (a torn last line of telemetry, from a killed run, is skipped), so the report can say what
a render cost even for a folder that another version wrote.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_FILE", "STAGES", "TELEMETRY_FILE", "RunStats", "read_run_stats"]

MANIFEST_FILE = "manifest.json"
TELEMETRY_FILE = "telemetry.ndjson"
"""The render's files in OUT (batch/ writes them; qa/ reads them as plain JSON, a layer apart)."""
STAGES = ("build", "render", "post", "write")
"""The stages a worker times for each scene (manifest `timings`)."""


@dataclass
class RunStats:
    """Cost of the render(s) of one folder; empty lists and dicts when a record is missing."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each stage, summed over scenes."""
    images_timed: int = 0
    per_worker: dict[str, dict[str, float]] = field(default_factory=dict)
    """worker -> stage -> mean seconds per image, and `images`."""
    startups: dict[str, float] = field(default_factory=dict)
    """worker -> seconds from process start to ready."""
    restarts: dict[str, int] = field(default_factory=dict)
    """reason -> count (crash, render_timeout, memory_limit ...)."""
    restart_times: list[tuple[float, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """worker -> (seconds since the first run started, RSS MB) from its heartbeats."""
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    finished: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the first run started, images done so far) per finished scene."""
    skipped_lines: int = 0

    @property
    def seconds_per_image(self) -> dict[str, float]:
        n = max(1, self.images_timed)
        return {stage: seconds / n for stage, seconds in self.stage_seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "images_timed": self.images_timed,
            "stage_seconds": self.stage_seconds,
            "seconds_per_image": self.seconds_per_image,
            "per_worker": self.per_worker,
            "startup_s": self.startups,
            "restarts": self.restarts,
            "errors": self.errors,
            "peak_rss_mb": self.peak_rss_mb,
            "skipped_telemetry_lines": self.skipped_lines,
        }


def _read_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    events, skipped = [], 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(event, dict) and isinstance(event.get("t"), int | float):
            events.append(event)
        else:
            skipped += 1
    return events, skipped


def _read_jobs(root: Path) -> list[dict[str, Any]]:
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    jobs = manifest.get("jobs") if isinstance(manifest, dict) else None
    return [job for job in jobs if isinstance(job, dict)] if isinstance(jobs, list) else []


def read_run_stats(out: str | Path) -> RunStats:
    """The cost of the render(s) in `out`: what manifest.json and telemetry.ndjson say (either may be
    missing: a dataset merged from chunk folders has neither telemetry nor one manifest)."""
    root = Path(out)
    stats = RunStats()
    events, stats.skipped_lines = _read_events(root / TELEMETRY_FILE)
    jobs = _read_jobs(root)
    times = [e["t"] for e in events] + [
        j["started_at"] for j in jobs if isinstance(j.get("started_at"), float)
    ]
    t0 = min(times) if times else 0.0

    totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    worker_sums: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys((*STAGES, "images"), 0.0))
    done_at: list[tuple[float, int]] = []
    for job in jobs:
        timings = job.get("timings")
        images = len(job.get("image_ids") or []) or 1
        if job.get("status") != "done" or not isinstance(timings, dict) or job.get("resumed"):
            continue
        stats.images_timed += images
        worker = str(job.get("worker") or "?")
        for stage in STAGES:
            value = float(timings.get(stage) or 0.0)
            totals[stage] += value
            worker_sums[worker][stage] += value
        worker_sums[worker]["images"] += images
        if isinstance(job.get("finished_at"), float):
            done_at.append((job["finished_at"] - t0, images))
    stats.stage_seconds = totals if stats.images_timed else {}
    stats.per_worker = {
        worker: {stage: sums[stage] / max(1.0, sums["images"]) for stage in STAGES}
        | {"images": sums["images"]}
        for worker, sums in sorted(worker_sums.items())
    }
    count = 0
    for when, images in sorted(done_at):
        count += images
        stats.finished.append((when, count))

    started: dict[str, float] = {}
    restarts: Counter[str] = Counter()
    for event in events:
        kind, worker, t = event.get("event"), str(event.get("worker", "")), float(event["t"])
        if kind == "run_started":
            stats.runs.append(
                {
                    "started_s": t - t0,
                    "workers": event.get("workers"),
                    "todo": event.get("todo"),
                    "skipped": event.get("skipped"),
                    "launcher": event.get("launcher"),
                }
            )
        elif kind == "run_finished" and stats.runs:
            stats.runs[-1].update(
                {
                    "status": event.get("status"),
                    "elapsed_s": event.get("elapsed_s"),
                    "done": event.get("done"),
                    "failed": event.get("failed"),
                    "images": event.get("images"),
                }
            )
        elif kind == "worker_started":
            started[worker] = t
        elif kind == "worker_ready" and worker in started:
            stats.startups[worker] = round(t - started[worker], 3)
        elif kind == "heartbeat" and isinstance(event.get("rss_mb"), int | float):
            stats.memory.setdefault(worker, []).append((t - t0, float(event["rss_mb"])))
            peak = float(event.get("peak_rss_mb") or event["rss_mb"])
            stats.peak_rss_mb[worker] = max(stats.peak_rss_mb.get(worker, 0.0), peak)
        elif kind in ("worker_restart", "worker_retired"):
            reason = str(event.get("reason") or "unknown")
            restarts[reason] += 1
            stats.restart_times.append((t - t0, f"{worker} {reason}"))
        elif kind in ("worker_error", "job_attempt_failed"):
            stats.errors.append(
                {
                    "t_s": round(t - t0, 3),
                    "worker": worker,
                    "event": kind,
                    "error": event.get("error_type") or event.get("error"),
                }
            )
    stats.restarts = dict(sorted(restarts.items()))
    return stats
