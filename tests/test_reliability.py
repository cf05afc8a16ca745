"""Never lose a user's data: one table of faults, each with its expected outcome and nothing-lost checks.

Every case starts from a previous complete output (night 1 scored into `area/out`) and scores night 2
over it while a fault strikes. Then the next command's recovery runs, and the checks are:
- the output is exactly the previous one (sha256 of every file) or exactly the new one (row count and
  the multiset of ids), never nothing and never a mix;
- both inputs are byte for byte untouched;
- nothing is left next to the output (staging, moved-aside output, journal, lease).

A kill is made two ways: in this process, by freezing the disk as it stood at the publish step (what
kill -9 leaves: the files, and the lease of a process that no longer exists); and for real, by SIGKILL
of an `adspark score` process group (a publish step through tests/faulty_adspark.py, and seeded
random moments).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adspark import guard, pipeline, publish
from adspark.config import JobConfig, parse_config
from adspark.errors import LeaseError, OutputError
from adspark.io import HadoopPath
from adspark.publish import new_run_id
from tests.conftest import REPO, job_dict, make_table, snapshot, write_parquet
from tests.faulty_adspark import KILL_ENV, install_task_fault

RESULTS: list[str] = []


class Killed(BaseException):
    """Stands for kill -9 inside this process: raised after the disk state was frozen."""


@pytest.fixture(scope="module")
def world(spark, trained, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reliability")
    night1 = make_table(300, seed=31)
    night2 = make_table(240, seed=32).query("merchant in ('fuel', 'travel')").assign(txn_id=lambda d: d.txn_id + 10_000)
    w = {"root": root, "model": trained["cfg"].model_dir,
         "night1": write_parquet(night1, root / "night1", files=2), "night2": write_parquet(night2, root / "night2")}
    w["inputs"] = {k: snapshot(Path(w[k])) for k in ("night1", "night2")}
    for layout, partition_by in (("whole", []), ("part", ["merchant"])):
        area = root / f"pristine-{layout}"
        pipeline.score(spark, _cfg(w, "night1", area, partition_by))
        w[layout] = {"pristine": area, "partition_by": partition_by, "previous": snapshot(area / "out")}
    kept = night1[~night1["merchant"].isin(["fuel", "travel"])]["txn_id"]
    w["whole"]["new_ids"] = Counter(night2["txn_id"].tolist())
    w["part"]["new_ids"] = Counter(night2["txn_id"].tolist() + kept.tolist())
    return w


def _cfg(w: dict, night: str, area: Path, partition_by: list[str]) -> JobConfig:
    return parse_config(job_dict(Path(w["root"]), w[night], model_dir=w["model"],
                                 output={"path": str(area / "out"), "partition_by": partition_by}))


def _fresh(w: dict, layout: str, name: str) -> Path:
    area = Path(w["root"]) / name
    if area.exists():
        shutil.rmtree(area)
    shutil.copytree(w[layout]["pristine"], area)
    return area


def _recover_and_check(spark, w: dict, layout: str, area: Path) -> str:
    """Run the next command's recovery, then the nothing-lost checks; returns 'previous' or 'new'."""
    out = area / "out"
    cfg = _cfg(w, "night2", area, w[layout]["partition_by"])
    paths = {"input.path": str(cfg.input.path), "output.path": str(out), "model_dir": w["model"]}
    with guard.guarded(spark, paths, ["output.path"], new_run_id()):
        pass
    assert {k: snapshot(Path(w[k])) for k in ("night1", "night2")} == w["inputs"], "an input changed"
    assert [p.name for p in area.iterdir() if p.name != "out"] == [], "leftovers next to the output"
    assert (out / "_adspark_run.json").is_file(), "no complete output at output.path"
    if snapshot(out) == w[layout]["previous"]:
        return "previous"
    ids = Counter(pd.read_parquet(out)["txn_id"].tolist())
    assert ids == w[layout]["new_ids"], "the output is neither the previous nor the new one (a mix?)"
    return "new"


def _freeze_at(area: Path, step: str, nth: int = 1):
    """A publish step hook that copies the disk as kill -9 would leave it there, then stops the run."""
    frozen = area.parent / f"{area.name}-frozen"
    seen = {"n": 0}

    def hook(done: str) -> None:
        if done == step:
            seen["n"] += 1
            if seen["n"] == nth:
                shutil.copytree(area, frozen, symlinks=True)
                raise Killed(step)

    def thaw() -> None:
        shutil.rmtree(area)
        frozen.rename(area)
        for lease in area.glob(".*.adspark-lease"):  # its process is gone now
            info = json.loads(lease.read_text())
            lease.write_text(json.dumps({**info, "pid": _dead_pid()}))
            (lease.parent / f".{lease.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum of the old text

    return hook, thaw


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _record(fault: str, layout: str, outcome: str, checks: str) -> None:
    RESULTS.append(f"{fault:<34} {layout:<12} {outcome:<9} {checks}")


CHECKS = "rows+ids or digest of previous; inputs sha256; no leftovers"

KILLS = [  # (publish step, n-th time, layout, expected outcome)
    ("written", 1, "whole", "previous"),
    ("verified", 1, "whole", "previous"),
    ("moved_aside", 1, "whole", "previous"),
    ("moved_in", 1, "whole", "new"),
    ("cleaned", 1, "whole", "new"),
    ("journalled", 1, "part", "previous"),
    ("partition_moved", 1, "part", "previous"),
    ("partition_moved", 2, "part", "previous"),
    ("files_moved", 1, "part", "previous"),
    ("committed", 1, "part", "new"),
]


@pytest.mark.parametrize(("step", "nth", "layout", "expected"), KILLS)
def test_kill_at_each_publish_step(spark, world, monkeypatch, step, nth, layout, expected) -> None:
    area = _fresh(world, layout, f"kill-{step}-{nth}")
    hook, thaw = _freeze_at(area, step, nth)
    monkeypatch.setattr(publish, "STEP_HOOK", hook)
    with pytest.raises(Killed):
        pipeline.score(spark, _cfg(world, "night2", area, world[layout]["partition_by"]))
    monkeypatch.setattr(publish, "STEP_HOOK", None)
    thaw()
    outcome = _recover_and_check(spark, world, layout, area)
    _record(f"kill -9 after {step} #{nth}", layout, outcome, CHECKS)
    assert outcome == expected


def test_failed_nth_partition_move_rolls_every_partition_back(spark, world, monkeypatch) -> None:
    area = _fresh(world, "part", "fail-move")
    real = HadoopPath.rename_to
    moves = {"n": 0}

    def rename_to(self: HadoopPath, other: HadoopPath) -> None:
        if ".adspark-staging-" in self.path and "merchant=" in self.path:
            moves["n"] += 1
            if moves["n"] == 2:
                raise OutputError(f"could not rename {self.path} (injected)")
        real(self, other)

    monkeypatch.setattr(HadoopPath, "rename_to", rename_to)
    with pytest.raises(OutputError, match="injected"):
        pipeline.score(spark, _cfg(world, "night2", area, ["merchant"]))
    monkeypatch.setattr(HadoopPath, "rename_to", real)
    outcome = _recover_and_check(spark, world, "part", area)
    assert snapshot(area / "out") == world["part"]["previous"]  # rolled back in-process, not by recovery
    _record("2nd partition move fails", "part", outcome, CHECKS)
    assert outcome == "previous"


def test_every_task_attempt_fails(spark, world, monkeypatch) -> None:
    area = _fresh(world, "whole", "task-fault")
    install_task_fault("always", monkeypatch.setattr)
    with pytest.raises(Exception, match="injected fault"):
        pipeline.score(spark, _cfg(world, "night2", area, []))
    monkeypatch.undo()
    outcome = _recover_and_check(spark, world, "whole", area)
    _record("every scoring task attempt fails", "whole", outcome, CHECKS)
    assert outcome == "previous"


def test_concurrent_run_refused_then_expired_lease_taken_over(spark, world) -> None:
    area = _fresh(world, "whole", "lease")
    lease = area / ".out.adspark-lease"
    lease.write_text(json.dumps({"run_id": "nightly-a1", "host": "other", "pid": 1, "expires": time.time() + 600}))
    cfg = _cfg(world, "night2", area, [])
    with pytest.raises(LeaseError, match="being written by run nightly-a1"):
        pipeline.score(spark, cfg)
    assert snapshot(area / "out") == world["whole"]["previous"]
    _record("second run while the first is live", "whole", "previous", "refused naming run nightly-a1; digest")
    lease.write_text(json.dumps({"run_id": "nightly-a1", "host": "other", "pid": 1, "expires": time.time() - 1}))
    pipeline.score(spark, cfg)
    outcome = _recover_and_check(spark, world, "whole", area)
    _record("expired lease of a dead run", "whole", outcome, CHECKS)
    assert outcome == "new"


def _score_process(w: dict, area: Path, env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    cfg = job_dict(Path(w["root"]), w["night2"], model_dir=w["model"], output={"path": str(area / "out")})
    cfg_path = area.parent / f"{area.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, **env_extra)
    args = [sys.executable, str(REPO / "tests" / "faulty_adspark.py"), "-q", "score", "--config", str(cfg_path)]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def test_real_sigkill_at_a_step_and_at_random_moments(spark, world) -> None:
    """SIGKILL of the whole `adspark score` process group (driver, JVM, workers), then the checks."""
    area = _fresh(world, "whole", "sigkill-step")
    proc = _score_process(world, area, {KILL_ENV: "moved_aside"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (area / "out").exists()  # killed between the two renames: recovery has work to do
    outcome = _recover_and_check(spark, world, "whole", area)
    _record("SIGKILL process after moved_aside", "whole", outcome, CHECKS)
    assert outcome == "previous"

    area = _fresh(world, "whole", "sigkill-clean")
    started = time.perf_counter()
    proc = _score_process(world, area, {})
    assert proc.wait(timeout=300) == 0
    whole = time.perf_counter() - started  # kills below land over the second half: training-free scoring, publish
    assert _recover_and_check(spark, world, "whole", area) == "new"
    rng = random.Random(11)
    outcomes = []
    for k in range(3):
        area = _fresh(world, "whole", f"sigkill-{k}")
        proc = _score_process(world, area, {})
        time.sleep(rng.uniform(0.55, 1.0) * whole)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        outcome = _recover_and_check(spark, world, "whole", area)
        outcomes.append(f"{outcome}{'' if proc.returncode == -signal.SIGKILL else ' (finished)'}")
    _record("SIGKILL at 3 seeded random moments", "whole", ", ".join(outcomes), CHECKS)


def test_zz_print_reliability_table() -> None:
    print("\nfault                              layout       outcome   checks")
    print("\n".join(RESULTS))
