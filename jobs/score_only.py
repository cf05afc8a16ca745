"""spark-submit entry point: the same as `adspark score` (train weekly, score nightly).

    spark-submit jobs/score_only.py --config conf/nightly.yaml --model-dir D [--input P] [--output P] \
        [--set KEY=VALUE ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
