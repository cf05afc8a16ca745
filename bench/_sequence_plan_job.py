"""Benchmark job: `adspark score` of an LSTM with the network left out, for the LSTM profile.

    python bench/_sequence_plan_job.py score --config C ...

Runs adspark's own sequence plan unchanged (stream keys, shuffle, sort, blocks, the Arrow
round trip, the checks and the publish) with a UDF body that returns 0.0 for every event
instead of building windows and calling onnxruntime. `score` minus this job is what the
model costs on the executors; this job minus `identity` is what ordering the streams costs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from adspark import sequences
from adspark.cli import main


def no_model(key: str, payload: Any) -> Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]:
    def score(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
        for batch in batches:
            yield pa.array(np.zeros(len(batch)), type=pa.float64())

    return score


if __name__ == "__main__":
    sequences.sequence_batch_scorer = no_model  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
