"""Test-only: the `adspark` command with faults injected. Never part of the product path.

    python tests/faulty_adspark.py score --config job.yaml            # (also as a spark-submit application)

Environment:
- ADSPARK_TEST_KILL_AT=STEP[:N]: SIGKILL this process when publish finishes step STEP for the N-th time
  (default 1); the steps are the names publish passes to `adspark.publish.STEP_HOOK`.
- ADSPARK_TEST_TASK_FAULT=first_attempt|always: the scoring task of partition 0 fails after its first
  batch, on its first attempt only (a retry succeeds) or on every attempt.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

KILL_ENV = "ADSPARK_TEST_KILL_AT"
TASK_FAULT_ENV = "ADSPARK_TEST_TASK_FAULT"


def kill_at(step: str) -> Callable[[str], None]:
    """A publish step hook that kills the process, as kill -9 would, after the N-th `step`."""
    name, _, nth = step.partition(":")
    seen = {"count": 0}

    def hook(done: str) -> None:
        if done == name:
            seen["count"] += 1
            if seen["count"] == int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _failing(body: Callable[[Iterator[Any]], Iterator[Any]], mode: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def score(batches: Iterator[Any]) -> Iterator[Any]:
        from pyspark import TaskContext

        for i, out in enumerate(body(batches)):
            yield out
            ctx = TaskContext.get()
            if i == 0 and ctx is not None and ctx.partitionId() == 0 and (mode == "always" or ctx.attemptNumber() == 0):
                raise RuntimeError(f"injected fault ({TASK_FAULT_ENV}={mode}, attempt {ctx.attemptNumber()})")

    return score


def install_task_fault(mode: str, patch: Callable[[Any, str, Any], None] | None = None) -> None:
    """Wrap every scoring UDF body so that partition 0's task fails (`patch` defaults to setattr)."""
    from pyspark import cloudpickle

    from adspark import scoring, sequences

    if __name__ != "__main__":  # __main__ is pickled by value anyway
        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # executors need not import tests/
    set_ = patch or setattr

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args: _failing(factory(*args), mode)

    set_(scoring, "batch_scorer", wrap(scoring.batch_scorer))
    set_(scoring, "map_scorer", wrap(scoring.map_scorer))
    set_(sequences, "sequence_batch_scorer", wrap(sequences.sequence_batch_scorer))


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from adspark import publish
    from adspark.cli import main as adspark_main

    if os.environ.get(KILL_ENV):
        publish.STEP_HOOK = kill_at(os.environ[KILL_ENV])
    if os.environ.get(TASK_FAULT_ENV):
        install_task_fault(os.environ[TASK_FAULT_ENV])
    return adspark_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
