"""spark-submit entry point: the same as `adspark run`.

    spark-submit jobs/nightly_sweep.py --config conf/nightly.yaml [--input P] [--output P] [--model-dir D] \
        [--set KEY=VALUE ...]
"""

import sys
from pathlib import Path

# Runs from a checkout too: the repository root holds the adspark package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
