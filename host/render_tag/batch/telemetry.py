"""What a long job shows and records: the one progress display on stderr, and telemetry.ndjson in OUT."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["TELEMETRY", "Progress", "TelemetryLog"]

TELEMETRY = "telemetry.ndjson"


class Progress:
    """A one-line progress bar on stderr (a line per 10 % when stderr is not a terminal), for renders
    (images) and long compiles (scenes) alike."""

    def __init__(
        self,
        total: int,
        stream: IO[str] | None = None,
        label: str = "render",
        unit: str = "images",
        rate_unit: str = "img/s",
        note: str = "",
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.unit = unit
        self.rate_unit = rate_unit
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_decile = -1
        self.note = note
        if note:  # the bar shows at once, while the workers start, not at the first finished image
            self.update()
        self.note = ""

    def update(self, done: int = 0, failed: int = 0) -> None:
        """Counts `done` more items finished and `failed` more given up, and redraws when due."""
        self.done += done
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
        head = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {count}/{self.total} {self.unit}{failed}"
        )
        if self.note:
            return f"{head}  {self.note}"
        return f"{head}  {rate:.2f} {self.rate_unit}  ETA {eta}"

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
