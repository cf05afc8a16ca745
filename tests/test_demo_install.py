"""`adspark demo` from a non-editable install: the wheel carries its config, and the demo runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_demo_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # --no-build-isolation builds with the test extra's setuptools (>=77 reads the SPDX license string)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(wheels), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(wheels.glob("adspark-*.whl"))
    assert "adspark/demo.yaml" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"  # no conf/ here, and not the repository
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    code = "import sys, adspark.cli; print(adspark.cli.__file__, file=sys.stderr); sys.exit(adspark.cli.main())"
    done = subprocess.run([sys.executable, "-c", code, "demo", "--rows", "3000", "--workdir", "demo"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines()[0].startswith(str(site))  # the installed copy ran, not the checkout
    assert "rows scored        3000 (input 3000)" in done.stdout
    assert (elsewhere / "demo" / "scores" / "_adspark_run.json").is_file()
