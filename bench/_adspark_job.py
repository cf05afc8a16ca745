"""Benchmark job: `adspark` CLI with the scoring path forced, for A/B runs of the operator choice.

    python bench/_adspark_job.py [--map-in-arrow-full-width] [--udf-narrow] score --config C --model-dir M ...

--map-in-arrow-full-width: full-width outputs go through DataFrame.mapInArrow (every
column through Python) instead of the Arrow UDF + JVM rejoin. --udf-narrow: narrowed
outputs (output.columns) go through the Arrow UDF + rejoin instead of mapInArrow, as
before. Everything else (checks, publish, CLI) is `adspark` unchanged.
"""

from __future__ import annotations

import sys

from adspark import scoring
from adspark.cli import main

FLAGS = {"--map-in-arrow-full-width": ("MAP_IN_ARROW_FULL_WIDTH", True), "--udf-narrow": ("MAP_IN_ARROW_NARROW", False)}

if __name__ == "__main__":
    argv = sys.argv[1:]
    while argv and argv[0] in FLAGS:
        setattr(scoring, *FLAGS[argv.pop(0)])
    sys.exit(main(argv))
