"""Dirty tables, missing-value policy, partitioned publish, and fault tolerance."""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import types as T

from adspark import pipeline
from adspark.config import parse_config
from adspark.errors import SchemaError
from tests.conftest import REPO, job_dict, make_table, snapshot, write_parquet
from tests.faulty_adspark import TASK_FAULT_ENV, install_task_fault

DIRTY_SCHEMA = T.StructType(
    [
        T.StructField("txn_id", T.LongType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("qty", T.IntegerType()),
        T.StructField("price", T.DecimalType(10, 2)),
        T.StructField("online", T.BooleanType()),
        T.StructField("merchant", T.StringType()),
    ]
)


def _dirty_rows(n: int = 1200) -> list[tuple]:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(n):
        amount = float(rng.lognormal(3, 0.5))
        rows.append((i, amount, int(rng.poisson(2)), decimal.Decimal(f"{amount:.2f}"), bool(i % 3 == 0),
                     ["grocery", "fuel", "travel"][i % 3]))
    specials = [
        (n, None, None, None, None, None),  # all features null
        (n + 1, float("nan"), 1, decimal.Decimal("1.00"), True, "grocery"),
        (n + 2, float("inf"), 1, decimal.Decimal("1.00"), False, "fuel"),
        (n + 3, float("-inf"), None, decimal.Decimal("1.00"), None, None),
        (n + 4, 20.0, 2, decimal.Decimal("20.00"), True, "never-seen-merchant"),
    ]
    some_nulls = [(n + 5 + k, None, 2, decimal.Decimal("5.00"), False, "grocery") for k in range(30)]
    return rows + specials + some_nulls


@pytest.fixture(scope="module")
def dirty(spark, tmp_path_factory) -> tuple[str, int]:
    path = str(tmp_path_factory.mktemp("dirty") / "table")
    rows = _dirty_rows()
    spark.createDataFrame(rows, DIRTY_SCHEMA).repartition(3).write.parquet(path)
    return path, len(rows)


def test_dirty_table_is_scored_with_every_row_kept(spark, dirty, tmp_path: Path) -> None:
    path, n = dirty
    base = 1200  # rows base.. are the special ones; train on the others, score them all
    history = str(tmp_path / "history")
    spark.read.parquet(path).where(f"txn_id < {base} or txn_id > {base + 4}").write.parquet(history)
    cfg = parse_config(job_dict(tmp_path, path, columns={"id": ["txn_id"], "categorical": ["merchant"]}))
    pipeline.train(spark, cfg.model_copy(update={"input": cfg.input.model_copy(update={"path": history})}))
    report = pipeline.score(spark, cfg)
    out = pd.read_parquet(cfg.output.path).sort_values("txn_id").reset_index(drop=True)
    assert report.output_rows == n == len(out)
    assert out["txn_id"].tolist() == sorted(r[0] for r in _dirty_rows())
    assert np.all(np.isfinite(out["anomaly_score"]))
    top = out.loc[out["txn_id"] < base, "anomaly_score"].quantile(0.99)  # above 99% of the clean rows
    for special in (base, base + 3, base + 4):  # all-null, -inf with more nulls, unseen merchant
        assert out.loc[out["txn_id"] == special, "anomaly_score"].item() > top, special
    assert out.loc[out["txn_id"] == base + 3, "merchant"].isna().item()  # inputs kept as they were


def test_on_missing_fail_names_the_column_and_writes_nothing(spark, dirty, tmp_path: Path) -> None:
    path, _ = dirty
    cfg = parse_config(job_dict(tmp_path, path, columns={"id": ["txn_id"], "categorical": ["merchant"]},
                                preprocess={"on_missing": "fail"}))
    with pytest.raises(SchemaError, match=r"column 'amount' has \d+ null, NaN or infinite"):
        pipeline.run(spark, cfg)
    assert not Path(cfg.model_dir).exists() and not Path(cfg.output.path).exists()


def test_partitioned_output_replaces_only_tonights_partitions(spark, trained, tmp_path: Path) -> None:
    model = trained["cfg"].model_dir
    full = make_table(600, seed=21)
    out = tmp_path / "out"
    cfg = parse_config(job_dict(tmp_path, write_parquet(full, tmp_path / "night1"), model_dir=model,
                                output={"path": str(out), "partition_by": ["merchant"]}))
    pipeline.score(spark, cfg)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "merchant=fuel", "merchant=grocery", "merchant=online", "merchant=travel"]
    untouched = {m: snapshot(out / f"merchant={m}") for m in ("grocery", "online", "travel")}
    fuel = make_table(300, seed=22).query("merchant == 'fuel'").assign(txn_id=lambda d: d.txn_id + 10_000)
    night2 = cfg.model_copy(update={"input": cfg.input.model_copy(
        update={"path": write_parquet(fuel, tmp_path / "night2", files=1)})})
    report = pipeline.score(spark, night2)
    assert report.output_rows == len(fuel)
    for m, snap in untouched.items():
        assert snapshot(out / f"merchant={m}") == snap
    result = pd.read_parquet(out)
    fuel_ids = sorted(result.loc[result["merchant"] == "fuel", "txn_id"])
    assert fuel_ids == sorted(fuel["txn_id"])
    assert len(result) == (full["merchant"] != "fuel").sum() + len(fuel)
    assert [p.name for p in tmp_path.iterdir() if "adspark-" in p.name] == []


def _submit_score(cfg_path: Path, fault: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    import pyspark

    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop(TASK_FAULT_ENV, None)
    if fault:
        env[TASK_FAULT_ENV] = fault
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    args = [str(submit), "--master", "local[2,4]", "--conf", "spark.ui.enabled=false",
            str(REPO / "tests" / "faulty_adspark.py"), "score", "--config", str(cfg_path)]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_task_retry_gives_identical_output_and_total_failure_keeps_previous(trained, dataset, tmp_path: Path) -> None:
    cfg = job_dict(tmp_path, dataset[1], model_dir=trained["cfg"].model_dir)
    cfg_path = tmp_path / "job.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    clean_out = Path(cfg["output"]["path"])  # type: ignore[index]

    retried = _submit_score(cfg_path, "first_attempt", tmp_path)
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert "injected fault" in retried.stderr  # the first attempt really failed
    faulted = pd.read_parquet(clean_out).sort_values("txn_id").reset_index(drop=True)
    faulted_drift = json.loads((clean_out / "_adspark_run.json").read_text())["drift"]

    clean = _submit_score(cfg_path, None, tmp_path)
    assert clean.returncode == 0, clean.stderr[-3000:]
    expected = pd.read_parquet(clean_out).sort_values("txn_id").reset_index(drop=True)
    assert len(faulted) == len(expected) == len(dataset[0]) and faulted["txn_id"].is_unique
    pd.testing.assert_frame_equal(faulted, expected)
    # drift counted in the scoring pass: the retried task's rows once, as in the clean run
    clean_drift = json.loads((clean_out / "_adspark_run.json").read_text())["drift"]
    assert faulted_drift["sample_rows"] == clean_drift["sample_rows"] == len(dataset[0])
    assert faulted_drift["features"] == clean_drift["features"]

    before = snapshot(clean_out)
    failed = _submit_score(cfg_path, "always", tmp_path)
    assert failed.returncode != 0
    # spark-submit merges the Python driver's stderr into stdout
    errors = [ln for ln in (failed.stdout + failed.stderr).splitlines() if ln.startswith("adspark: error:")]
    assert len(errors) == 1 and "RuntimeError: injected fault" in errors[0], errors
    assert snapshot(clean_out) == before
    assert [p.name for p in tmp_path.iterdir() if "adspark-" in p.name] == []


def test_fingerprint_catches_a_row_swapped_for_a_duplicate(spark) -> None:
    from adspark.errors import OutputError
    from adspark.publish import Fingerprint, OutputStats, _verify, fingerprint

    ids = spark.range(100).withColumnRenamed("id", "txn_id")
    swapped = ids.where("txn_id < 99").union(ids.where("txn_id = 0"))  # same count, one id twice
    good, bad = fingerprint(ids, ["txn_id"]), fingerprint(swapped, ["txn_id"])
    assert good.rows == bad.rows == 100 and good.id_checksum != bad.id_checksum
    assert fingerprint(ids.repartition(7).orderBy("txn_id"), ["txn_id"]) == good  # order-independent
    _verify(OutputStats(good, 1, 0, {}), good)
    with pytest.raises(OutputError, match="ids differ"):
        _verify(OutputStats(bad, 1, 0, {}), good)
    with pytest.raises(OutputError, match="99 rows written but the input has 100"):
        _verify(OutputStats(Fingerprint(99, good.id_checksum), 1, 0, {}), good)
    with pytest.raises(OutputError, match="2 rows have a non-finite"):
        _verify(OutputStats(good, 1, 2, {}), good)
    assert fingerprint(ids, []) == Fingerprint(100, None)
    hashes = [r[0] for r in ids.selectExpr("xxhash64(txn_id)").collect()]
    assert good.id_checksum == str(sum(h % 2**64 for h in hashes))  # the exact unsigned sum, no overflow


def test_scores_only_output_carries_the_partition_columns(spark, trained, tmp_path: Path) -> None:
    """`merchant` is both a feature and the partition column: carried unchanged next to its cast copy."""
    table = make_table(500, seed=23)
    cfg = parse_config(job_dict(tmp_path, write_parquet(table, tmp_path / "in"), model_dir=trained["cfg"].model_dir,
                                output={"path": str(tmp_path / "out"), "columns": ["txn_id"],
                                        "partition_by": ["merchant"]}))
    report = pipeline.score(spark, cfg)
    out = pd.read_parquet(cfg.output.path).sort_values("txn_id").reset_index(drop=True)
    assert report.output_rows == len(out) == len(table)
    assert sorted(out.columns) == ["anomaly_percentile", "anomaly_score", "is_anomaly", "merchant", "top_features",
                                   "txn_id"]
    assert out["merchant"].astype(str).tolist() == table["merchant"].tolist()
    full = pipeline.score(spark, cfg.model_copy(update={"output": cfg.output.model_copy(
        update={"path": str(tmp_path / "full"), "columns": None, "partition_by": []})}))
    assert full.output_rows == len(table)
    expected = pd.read_parquet(tmp_path / "full").sort_values("txn_id").reset_index(drop=True)
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), expected["anomaly_score"].to_numpy())


def test_fault_in_the_scores_only_path_keeps_previous_output(spark, trained, dataset, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(job_dict(tmp_path, dataset[1], model_dir=trained["cfg"].model_dir,
                                output={"path": str(tmp_path / "out"), "columns": ["txn_id"]}))
    pipeline.score(spark, cfg)
    before = snapshot(Path(cfg.output.path))
    install_task_fault("always", monkeypatch.setattr)
    with pytest.raises(Exception, match="injected fault"):
        pipeline.score(spark, cfg)
    assert snapshot(Path(cfg.output.path)) == before
    assert [p.name for p in tmp_path.iterdir() if "adspark-" in p.name] == []
