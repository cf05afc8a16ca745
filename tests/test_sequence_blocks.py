"""Long streams scored in parallel blocks: the same scores, bit for bit, as one sequential scan.

One model is trained on a skewed event log (one host with half of the events among
many short hosts, a few null timestamps, a burst of early events followed by a gap
so that a time bucket ends inside a stream's first `window` events). Scores with
blocks of every size must equal the scores of the whole stream read in order on
the driver, and the runs on local[1] and local[4] must agree. Drift, counted in the
same pass, must count each event once, however many blocks read it as context.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from adspark import pipeline
from adspark.artifact import load_artifact
from adspark.config import parse_config
from adspark.drift import compare_features
from adspark.runtime import build_scorer
from adspark.runtime.sequence import STREAM_COL
from adspark.schema import resolve_roles
from adspark.sequences import with_order
from tests.conftest import REPO, write_parquet

WINDOW = 8


def skewed_log(seed: int = 0) -> pd.DataFrame:
    """Host `big` holds half of the 1,000 events; 50 short hosts hold 10 each."""
    rng = np.random.default_rng(seed)
    big_ts = np.concatenate([[0.0, 1.0, 2.0], 10_000.0 + np.cumsum(rng.exponential(5.0, 497))])
    hosts = ["big"] * 500 + [f"h{i:02d}" for i in range(50) for _ in range(10)]
    ts = np.concatenate([big_ts, rng.uniform(0, 12_000, 500)])
    tpl = rng.integers(0, 5, 1000)
    df = pd.DataFrame({"event_id": np.arange(1000, dtype=np.int64), "host": hosts, "ts": ts,
                       "latency_ms": 10.0 * (1 + tpl) + rng.normal(0, 1.0, 1000),
                       "template": [f"T{t}" for t in tpl]})
    df.loc[[7, 300, 612], "ts"] = np.nan  # null timestamps sort first in their stream
    df.loc[[40, 41], "ts"] = df.loc[39, "ts"]  # ties, broken by the row hash
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def job(tmp: Path, data: str, entity: list[str], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input": {"path": data},
        "columns": {"id": ["event_id"], "entity": entity, "timestamp": "ts", "numeric": ["latency_ms"],
                    "categorical": ["template"], "exclude": [] if entity else ["host"]},
        "model": {"kind": "lstm", "window": WINDOW, "hidden": [8]},
        "train": {"epochs": 1, "seed": 0, "batch_size": 64, "sample_rows": 5000},
        "output": {"path": str(tmp / "out")},
        "model_dir": str(tmp / "model"),
    }
    out.update(extra)
    return out


@pytest.fixture(scope="module")
def trained(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("blocks")
    df = skewed_log()
    data = write_parquet(df, tmp / "log", files=3)
    cfg = parse_config(job(tmp, data, ["host"]))
    pipeline.train(spark, cfg)
    return {"df": df, "data": data, "tmp": tmp, "cfg": cfg, "reference": sequential(spark, cfg, data)}


def sequential(spark: Any, cfg: Any, data: str) -> pd.Series:
    """Each stream read whole and in order on the driver: the reference scan."""
    df = spark.read.parquet(data)
    roles = resolve_roles(cfg, df.schema)
    keyed, order = with_order(df, roles)
    table = keyed.orderBy(*order).select(STREAM_COL, "event_id", "latency_ms", "template").toArrow()
    artifact = load_artifact(str(cfg.model_dir))
    scorer = build_scorer(artifact.manifest, artifact.files)
    keys = table.column(STREAM_COL).to_numpy()
    scores = scorer.score_stream(keys, [table.column("latency_ms").cast(pa.float64()), table.column("template")])
    return pd.Series(scores, index=table.column("event_id").to_numpy()).sort_index()


def scored(spark: Any, cfg: Any, out: Path, block_events: int) -> pd.Series:
    run = cfg.model_copy(update={"model": cfg.model.model_copy(update={"block_events": block_events}),
                                 "output": cfg.output.model_copy(update={"path": str(out)})})
    report = pipeline.score(spark, run)
    assert report.output_rows == report.input_rows == 1000
    got = spark.read.parquet(str(out)).select("event_id", "anomaly_score").toPandas()
    assert got["event_id"].is_unique and len(got) == 1000  # every event exactly once, context rows dropped
    check_drift_counts(spark, cfg, out)
    return got.set_index("event_id")["anomaly_score"].sort_index()


def check_drift_counts(spark: Any, cfg: Any, out: Path) -> None:
    """Drift was counted in the scoring pass over each event once (context rows not), as over the whole table."""
    run = json.loads((out / "_adspark_run.json").read_text())
    counted = run["drift"]
    assert counted["counted_in_scoring"] and counted["sample_rows"] == 1000
    flagged = pd.read_parquet(out).query("is_anomaly")
    first = flagged["top_features"].map(lambda r: r[0]["feature"]).value_counts().to_dict()
    assert {r["feature"]: r["flagged"] for r in run["flag_reasons"]["features"]} == first
    assert sum(first.values()) == run["flagged"] > 0  # each event's flag counted once, context rows not
    ref = load_artifact(str(cfg.model_dir)).manifest["reference"]  # training's flags, in stream order too
    mix = ref["flag_reasons"]
    assert sum(mix.values()) == round(ref["score"]["expected_flag_rate"] * ref["sample_rows"]) > 0
    assert run["flag_reasons"]["training_flagged"] == sum(mix.values())
    whole = spark.read.parquet(str(cfg.input.path)).select("latency_ms", "template").toArrow()
    expected = compare_features(ref, whole)
    for name, values in expected.items():
        assert counted["features"][name]["psi"] == pytest.approx(values["psi"], abs=1e-12), name
        assert counted["features"][name]["null_rate"] == values["null_rate"], name


@pytest.mark.parametrize("block_events", [3, 37, 10**9])
def test_blocks_of_any_size_match_one_sequential_scan(spark, trained, tmp_path, block_events) -> None:
    """3 puts block boundaries inside the first WINDOW events (context from several blocks back);
    37 cuts host `big` into 14 blocks; 10**9 is one block per stream (the one-shuffle plan)."""
    got = scored(spark, trained["cfg"], tmp_path / "out", block_events)
    np.testing.assert_array_equal(got.to_numpy(), trained["reference"].to_numpy())
    assert np.all(np.isfinite(got))


def test_one_series_without_entity_matches_the_sequential_scan(spark, trained, tmp_path) -> None:
    cfg = parse_config(job(tmp_path, trained["data"], [], model_dir=str(tmp_path / "series-model")))
    pipeline.train(spark, cfg)
    reference = sequential(spark, cfg, trained["data"])
    got = scored(spark, cfg, tmp_path / "out", 64)
    np.testing.assert_array_equal(got.to_numpy(), reference.to_numpy())


def test_block_plan_collects_nothing_to_the_driver(spark, trained, tmp_path) -> None:
    from adspark.sequences import score_sequences

    df = spark.read.parquet(trained["data"])
    artifact = load_artifact(str(trained["cfg"].model_dir))
    plan = score_sequences(spark, df, artifact, ["event_id"], 37)._jdf.queryExecution().executedPlan().toString()
    assert "Window" in plan and "Exchange hashpartitioning" in plan
    assert "Collect" not in plan and "TakeOrdered" not in plan


def test_local_1_and_local_4_give_identical_scores(trained, tmp_path) -> None:
    """Whole CLI runs in fresh processes on one and on four cores, blocks of 37 events."""
    outputs = []
    for cores in (1, 4):
        master, out = f"local[{cores}]", tmp_path / f"out{cores}"
        conf = job(tmp_path, trained["data"], ["host"], model_dir=str(trained["cfg"].model_dir),
                   output={"path": str(out)},
                   spark={"spark.master": master, "spark.sql.shuffle.partitions": 8})
        conf["model"]["block_events"] = 37
        path = tmp_path / f"local{cores}.yaml"
        path.write_text(yaml.safe_dump(conf))
        done = subprocess.run([sys.executable, "-m", "adspark.cli", "score", "--config", str(path)], cwd=REPO,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        run = json.loads((out / "_adspark_run.json").read_text())
        assert run["input_rows"] == run["output_rows"] == 1000
        outputs.append(pd.read_parquet(out).set_index("event_id")["anomaly_score"].sort_index())
    np.testing.assert_array_equal(outputs[0].to_numpy(), outputs[1].to_numpy())
    np.testing.assert_array_equal(outputs[0].to_numpy(), trained["reference"].to_numpy())
