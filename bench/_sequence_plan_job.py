"""Benchmark job: `adspark score` of an LSTM with the network left out, for the LSTM profile.

    python bench/_sequence_plan_job.py score --config C ...

Runs adspark's own sequence plan unchanged (stream keys, shuffle, sort, blocks, the Arrow
round trip, drift counting, the checks and the publish) with a UDF body that returns 0.0 for every event
(and, when the output asks for them, its percentile and equal-share reasons) instead of building
windows and calling onnxruntime. `score` minus this job is what the
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
from adspark.runtime.base import BatchCount, Counting, cached_scorer, counted, result_struct, unpack_payload
from adspark.runtime.sequence import own_events


def no_model(
    key: str, payload: Any, percentile: bool = False, explain: int = 0, counting: Counting | None = None
) -> Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]:
    """sequences.sequence_batch_scorer's signature and output type, without the network (drift still counted)."""

    def score(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        with counted(counting) as count:
            yield from _zeros(scorer, batches, count, percentile, explain)

    return score


def _zeros(scorer: Any, batches: Iterator[pa.StructArray], count: BatchCount,
           percentile: bool, explain: int) -> Iterator[pa.Array]:
    for batch in batches:
        arrays = batch.flatten()
        zeros = np.zeros(len(batch))
        shape = (len(batch), len(scorer.preprocessor.columns))
        parts, expected = (np.ones(shape), np.full(shape, np.nan)) if explain else (None, None)
        results = scorer.package(zeros, parts, expected, percentile, explain)
        count(*own_events(arrays[1], arrays[2:], results))
        yield result_struct(results, percentile, explain) if percentile or explain else results[0]


if __name__ == "__main__":
    sequences.sequence_batch_scorer = no_model  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
