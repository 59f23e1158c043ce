"""How many workers, and how many Cycles threads each, this machine should run."""

from __future__ import annotations

import contextlib
import os

__all__ = ["default_workers"]


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
