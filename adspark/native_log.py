"""TensorFlow's native log lines, held to TF_CPP_MIN_LOG_LEVEL on the driver's stderr.

TensorFlow 2.21 logs through Abseil, which writes every message to stderr until
`absl::InitializeLog()` is called, and TensorFlow never calls it: the level in
TF_CPP_MIN_LOG_LEVEL is ignored and each training run prints start-up INFO lines
(oneDNN, CUDA stubs) and known-harmless ERROR lines (a tf.data attribute this
build does not know, `cuInit` on a machine without a GPU). No environment
variable or Python call reaches Abseil's threshold, so while a network is built,
trained and exported, file descriptor 2 is routed through a pipe and a thread
drops the lines the level excludes. Every other line (Python logging, warnings,
other libraries, real TensorFlow errors) passes through unchanged and in order.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

DEFAULT_TF_LOG_LEVEL = "2"  # WARNING and INFO hidden unless TF_CPP_MIN_LOG_LEVEL says otherwise (`-v` sets 0)
# Abseil's line prefix: severity letter, MMDD, time (seconds since the epoch before InitializeLog),
# thread id, file:line].
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] ")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second line of the CPU feature guard's two-line INFO message carries no prefix of its own.
_CPU_GUARD_TAIL = b"To enable the following instructions: "
# First bytes of every line `keep` can drop; a partial line starting otherwise is passed on at once.
_MAY_DROP = {*_SEVERITY, _PREAMBLE[:1], _CPU_GUARD_TAIL[:1]}
# ERROR lines that say nothing about the job on a CPU-only driver.
_HARMLESS = (b"mentions attribute use_unbounded_threadpool", b"failed call to cuInit")


def min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", DEFAULT_TF_LOG_LEVEL))
    except ValueError:
        return 0


def keep(line: bytes, level: int) -> bool:
    """Whether one stderr line survives TF_CPP_MIN_LOG_LEVEL = `level` (0 keeps everything)."""
    if level <= 0:
        return True
    if line.startswith(_PREAMBLE) or line.startswith(_CPU_GUARD_TAIL):
        return False
    match = _ABSL_LINE.match(line)
    if match is None:
        return True
    severity = _SEVERITY[match.group(1)]
    if severity == _SEVERITY[b"E"] and any(noise in line for noise in _HARMLESS):
        return False
    return severity >= level


def _write(fd: int, data: bytes) -> None:
    with suppress(OSError):  # the terminal went away: keep draining, or writers to fd 2 would block
        os.write(fd, data)


def _pump(read_fd: int, out_fd: int, level: int) -> None:
    pending = b""
    with open(read_fd, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if keep(line, level))
            if pending[:1] not in _MAY_DROP:  # e.g. a progress bar redrawn with \r: out now, not at the next \n
                kept, pending = kept + pending, b""
            if kept:
                _write(out_fd, kept)
    if pending and keep(pending, level):
        _write(out_fd, pending)


def _flush_python_stderr() -> None:
    """Python's buffered text in front of fd 2 goes out on the side of the switch it was written on."""
    with suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()


@contextmanager
def filtered_native_logs() -> Iterator[None]:
    """Within the block, drop TensorFlow's native lines below TF_CPP_MIN_LOG_LEVEL from stderr."""
    level = min_level()
    try:
        os.fstat(2)
    except OSError:  # no stderr at all: nothing to filter
        level = 0
    if level <= 0:
        yield
        return
    _flush_python_stderr()
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, original, level), name="adspark-native-log", daemon=True)
    pump.start()
    try:
        yield
    finally:
        _flush_python_stderr()
        os.dup2(original, 2)  # closes the pipe's last write end: the pump reads to EOF and stops
        pump.join(timeout=10)
        if not pump.is_alive():  # else a child still holds the pipe; the pump keeps writing to `original`
            os.close(original)
