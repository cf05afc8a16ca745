"""TensorFlow's native log lines are held to TF_CPP_MIN_LOG_LEVEL; every other stderr line passes, in order."""

from __future__ import annotations

import os

import pytest

from adspark.native_log import filtered_native_logs, keep

PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
INFO = b"I0000 00:00:1796281547.547416   22113 port.cc:153] oneDNN custom operations are on."
WARN = b"W0000 00:00:1796281547.547416   22113 x.cc:9] a warning"
NOISE = (b"E0000 00:00:1796281514.168943   21648 node_def_util.cc:682] NodeDef mentions attribute "
         b"use_unbounded_threadpool which is not in the op definition")  # fmt: skip
REAL = b"E1203 07:06:31.000000   21648 kernel.cc:1] OOM when allocating tensor"


@pytest.mark.parametrize(("level", "kept"), [
    (0, [PREAMBLE, INFO, WARN, NOISE, REAL]),
    (1, [WARN, REAL]),
    (2, [REAL]),
    (3, []),
])  # fmt: skip
def test_keep_follows_the_level(level: int, kept: list[bytes]) -> None:
    assert [line for line in (PREAMBLE, INFO, WARN, NOISE, REAL) if keep(line, level)] == kept
    assert keep(b"2026-12-03 07:06:31 INFO adspark.train: epoch 1/6", level)  # not TensorFlow's
    assert keep(b"", level)


def test_filter_drops_native_chatter_and_passes_the_rest_in_order(capfd: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_native_logs():
        os.write(2, b"\n".join([PREAMBLE, INFO, b"python line 1", NOISE, REAL]) + b"\n")
        os.write(2, b"python line 2\n")
        os.write(2, b"no newline at the end")
    os.write(2, b"\n" + INFO + b"\n")  # outside the block nothing is filtered
    err = capfd.readouterr().err
    assert err.splitlines() == ["python line 1", REAL.decode(), "python line 2", "no newline at the end",
                                INFO.decode()]  # fmt: skip


def test_a_partial_line_that_cannot_be_dropped_is_not_held(capfd: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_native_logs():
        os.write(2, b"\r\033[Kscoring  41%")  # a redrawn progress line has no newline
        deadline = time.monotonic() + 5
        while "41%" not in (seen := capfd.readouterr().err) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "scoring  41%" in seen


def test_level_zero_filters_nothing(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with filtered_native_logs():
        os.write(2, PREAMBLE + b"\n" + INFO + b"\n")
    assert capfd.readouterr().err.splitlines() == [PREAMBLE.decode(), INFO.decode()]


def test_an_error_inside_the_block_restores_stderr(capfd: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    before = os.fstat(2)
    with pytest.raises(RuntimeError, match="boom"), filtered_native_logs():
        raise RuntimeError("boom")
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    os.write(2, INFO + b"\n")
    assert capfd.readouterr().err == INFO.decode() + "\n"
