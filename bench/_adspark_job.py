"""Benchmark job: `adspark` CLI with the scoring path forced, for A/B runs of the operator choice.

    python bench/_adspark_job.py --map-in-arrow-full-width score --config C --model-dir M --input I --output O

With --map-in-arrow-full-width, full-width outputs go through DataFrame.mapInArrow
(every column through Python) instead of the Arrow UDF + JVM rejoin; everything
else (checks, publish, CLI) is `adspark` unchanged.
"""

from __future__ import annotations

import sys

from adspark import scoring
from adspark.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] == "--map-in-arrow-full-width":
        scoring.MAP_IN_ARROW_FULL_WIDTH = True
        argv = argv[1:]
    sys.exit(main(argv))
