"""Benchmark job: the `adspark` CLI with the scoring operator forced, for A/B runs of the operator choice.

    python bench/_adspark_job.py --passing | --udf  score --config C --model-dir M ...

--passing: every output (full-width too) goes through DataFrame.mapInArrow, each kept
column through Python and back. --udf: every output (narrowed too) goes through the
Arrow UDF and the JVM-side rejoin. Everything else (checks, publish, CLI) is `adspark`
unchanged: the job hands `passing` to adspark.scoring.score_dataframe, a parameter
of the product code, rather than flipping a switch inside it.
"""

from __future__ import annotations

import functools
import sys

from adspark import pipeline
from adspark.cli import main
from adspark.scoring import score_dataframe

CHOICES = {"--passing": True, "--udf": False}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in CHOICES:
        raise SystemExit(f"usage: _adspark_job.py {{{' | '.join(CHOICES)}}} score ...")
    pipeline.score_dataframe = functools.partial(score_dataframe, passing=CHOICES[argv.pop(0)])  # type: ignore[assignment]
    sys.exit(main(argv))
