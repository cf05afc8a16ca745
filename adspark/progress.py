"""Progress of long Spark stages, from Spark's StatusTracker polled by a driver thread.

On a terminal (stderr is a TTY) one line is redrawn in place:

    scoring  [########------------]  41%  11/27 tasks  ~820,000 of 2,000,000 rows  12 s, ~17 s left

Otherwise (logs, CI, cron) the same facts go to the log every `interval` seconds.
Rows are estimated from the share of finished tasks of the running stages, which is
exact for evenly sized input splits and close otherwise.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

log = logging.getLogger("adspark.progress")
BAR = 20
LOG_INTERVAL_S = 30.0
TTY_INTERVAL_S = 0.5

# Set by the command line: False under -q, so only warnings and the summary are printed.
ENABLED = True


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole} s" if whole < 120 else f"{whole // 60} min {whole % 60:02d} s"


def describe(label: str, done: int, total: int, elapsed: float, rows: int | None = None, bar: bool = True) -> str:
    """One progress line: tasks done of total, estimated rows, elapsed and the time left."""
    share = done / total if total else 0.0
    parts = [f"{label:<9}"]
    if bar:
        filled = int(share * BAR)
        parts.append("[" + "#" * filled + "-" * (BAR - filled) + "]")
    parts.append(f"{100 * share:3.0f}%  {done}/{total} tasks")
    if rows:
        parts.append(f"~{int(share * rows):,} of {rows:,} rows")
    left = f", ~{_clock(elapsed * (1 - share) / share)} left" if 0 < share < 1 and elapsed > 2 else ""
    parts.append(f"{_clock(elapsed)}{left}")
    return "  ".join(parts)


class Progress:
    """Polls the running stages' task counts while the `with` block runs."""

    def __init__(self, spark: Any, label: str, rows: int | None = None, stream: TextIO | None = None,
                 interval: float | None = None) -> None:
        self.tracker = spark.sparkContext.statusTracker()
        self.label, self.rows = label, rows
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval or (TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="adspark-progress", daemon=True)
        self._start = time.perf_counter()
        self._drawn = False

    def counts(self) -> tuple[int, int]:
        done = total = 0
        for stage_id in self.tracker.getActiveStageIds():
            info = self.tracker.getStageInfo(stage_id)
            if info is not None:
                done += info.numCompletedTasks
                total += info.numTasks
        return done, total

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                done, total = self.counts()
            except Exception:  # the JVM going away mid-poll must never break the job
                return
            if not total:
                continue
            line = describe(self.label, done, total, time.perf_counter() - self._start, self.rows, bar=self.tty)
            if self.tty:
                self.stream.write("\r\033[K" + line)
                self.stream.flush()
                self._drawn = True
            else:
                log.info("%s", line)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval + 1)
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


@contextmanager
def progress(spark: Any, label: str, rows: int | None = None) -> Iterator[None]:
    """Show progress of the Spark work done inside the block (nothing under -q)."""
    if not ENABLED:
        yield
        return
    with Progress(spark, label, rows):
        yield
