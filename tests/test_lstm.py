"""The LSTM sequence detector (model.kind: lstm): streams per entity, order, windows, surprises, ONNX parity."""

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
from adspark.errors import ConfigError, SchemaError
from adspark.models import make_detector
from adspark.models.lstm import model_input
from adspark.runtime.sequence import STREAM_COL, stream_windows
from tests.conftest import REPO, write_parquet

TEMPLATES = 8
# Each template may only be followed by two others: anything else is an impossible transition.
SUCCESSORS = {t: ((t + 1) % TEMPLATES, (t + 3) % TEMPLATES) for t in range(TEMPLATES)}
WINDOW = 8
TRAIN = {"epochs": 20, "seed": 0, "patience": 3, "batch_size": 64}


def event_log(hosts: int = 30, per_host: int = 250, seed: int = 0, bad: int = 12) -> pd.DataFrame:
    """Per-host log events: a template chain, latency set by the template; `bad` impossible
    transitions and `bad` latency spikes injected (label 1), rows shuffled, plus three short hosts."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(hosts):
        t, ts = int(rng.integers(TEMPLATES)), 1_700_000_000.0
        for _ in range(per_host):
            t = int(rng.choice(SUCCESSORS[t]))
            ts += float(rng.exponential(5.0))
            rows.append((f"h{h:02d}", ts, t, 10.0 * (1 + t) + rng.normal(0, 1.0)))
    df = pd.DataFrame(rows, columns=["host", "ts", "tpl", "latency_ms"])
    df["label"] = 0
    _inject(df, rng, per_host, bad)
    short = pd.DataFrame({"host": ["s1", "s2", "s2", "s3", "s3", "s3"], "ts": [1.7e9 + i for i in range(6)],
                          "tpl": [0, 1, 2, 3, 4, 7], "latency_ms": [10.0, 20.0, 30.0, 40.0, 50.0, 80.0], "label": 0})
    df = pd.concat([df, short], ignore_index=True)
    df["template"] = "T" + df["tpl"].astype(str)
    df["event_id"] = np.arange(len(df), dtype=np.int64)
    df["ts"] = pd.to_datetime(df["ts"], unit="s").astype("datetime64[us]")  # Spark reads micros, not nanos
    return df.drop(columns="tpl").sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _impossible(prev: int, nxt: int) -> int | None:
    """A template that cannot follow `prev` but still leads to `nxt`, so only its own event is anomalous."""
    options = [t for t in range(TEMPLATES) if t not in (prev, *SUCCESSORS[prev]) and nxt in SUCCESSORS[t]]
    return options[0] if options else None


def _inject(df: pd.DataFrame, rng: np.random.Generator, per_host: int, bad: int) -> None:
    """`bad` impossible transitions and `bad` +40 ms latency spikes, apart from each other, past each stream's start."""
    pos = np.arange(len(df)) % per_host
    used: set[int] = set()
    transitions = spikes = 0
    for i in rng.permutation(np.flatnonzero((pos >= WINDOW) & (pos < per_host - 1))):
        if transitions + spikes == 2 * bad:
            break
        if used & {i - 1, i, i + 1}:
            continue
        if transitions < bad:
            t = _impossible(int(df.at[i - 1, "tpl"]), int(df.at[i + 1, "tpl"]))
            if t is None:
                continue
            df.at[i, "tpl"] = t
            df.at[i, "latency_ms"] = 10.0 * (1 + t) + rng.normal(0, 1.0)
            transitions += 1
        else:
            df.at[i, "latency_ms"] += 40.0
            spikes += 1
        df.at[i, "label"] = 1
        used.add(int(i))


def lstm_job(tmp: Path, data: str, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "input": {"path": data},
        "columns": {"id": ["event_id"], "entity": ["host"], "timestamp": "ts", "numeric": ["latency_ms"],
                    "categorical": ["template"], "exclude": ["label"]},
        "model": {"kind": "lstm", "window": WINDOW},
        "train": TRAIN,
        "output": {"path": str(tmp / "out")},
        "model_dir": str(tmp / "model"),
    }
    job.update(extra)
    return job


def read_output(spark: Any, path: str) -> pd.DataFrame:
    return spark.read.parquet(path).toPandas().sort_values("event_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, str]:
    df = event_log()
    return df, write_parquet(df, tmp_path_factory.mktemp("events") / "log", files=4)


@pytest.fixture(scope="module")
def lstm_run(spark: Any, events: tuple[pd.DataFrame, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("lstm")
    cfg = parse_config(lstm_job(tmp, events[1]))
    report = pipeline.run(spark, cfg)
    return {"cfg": cfg, "tmp": tmp, "report": report, "out": read_output(spark, str(cfg.output.path))}


def test_injected_transitions_and_spikes_score_in_the_top_few_percent(lstm_run, events) -> None:
    df, _ = events
    out = lstm_run["out"]
    assert len(out) == len(df) and out["event_id"].tolist() == sorted(df["event_id"])  # every event once
    assert np.all(np.isfinite(out["anomaly_score"]))
    labels = df.set_index("event_id").loc[out["event_id"], "label"].to_numpy()
    rank = out["anomaly_score"].rank(ascending=False, method="max").to_numpy() / len(out)
    assert rank[labels == 1].max() <= 0.03, np.sort(rank[labels == 1])
    assert out.loc[labels == 1, "is_anomaly"].mean() >= 0.8  # flagged at the 1% threshold (20 epochs only)
    assert lstm_run["report"].manifest["model_kind"] == "lstm"


def test_short_streams_are_scored(lstm_run, events) -> None:
    df, _ = events
    short = df.loc[df["host"].str.startswith("s"), "event_id"]
    scores = lstm_run["out"].set_index("event_id").loc[short, "anomaly_score"]
    assert len(scores) == 6 and np.all(np.isfinite(scores))


def _rescore(spark: Any, cfg: Any, data: str, out: str) -> pd.DataFrame:
    pipeline.score(spark, cfg.model_copy(update={"input": cfg.input.model_copy(update={"path": data}),
                                                 "output": cfg.output.model_copy(update={"path": out})}))
    return read_output(spark, out)


def test_sorted_input_and_other_partitionings_give_identical_scores(spark, lstm_run, events, tmp_path) -> None:
    df, _ = events
    reference = lstm_run["out"]
    sorted_data = write_parquet(df.sort_values(["host", "ts"]), tmp_path / "sorted", files=1)
    in_order = _rescore(spark, lstm_run["cfg"], sorted_data, str(tmp_path / "o1"))
    np.testing.assert_array_equal(in_order["anomaly_score"], reference["anomaly_score"])
    keys = ("spark.sql.shuffle.partitions", "spark.sql.execution.arrow.maxRecordsPerBatch")
    saved = {k: spark.conf.get(k) for k in keys}
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "5")  # history carried across many batches
    try:
        many = write_parquet(df, tmp_path / "many", files=9)
        again = _rescore(spark, lstm_run["cfg"], many, str(tmp_path / "o2"))
    finally:
        for k, v in saved.items():
            spark.conf.set(k, v)
    np.testing.assert_array_equal(again["anomaly_score"], reference["anomaly_score"])
    assert again["top_features"].astype(str).tolist() == reference["top_features"].astype(str).tolist()


def test_never_seen_event_type_scores_strongly(spark, lstm_run, events, tmp_path) -> None:
    df = events[0].copy()
    new = df.index[(df["label"] == 0) & ~df["host"].str.startswith("s")][:5]
    df.loc[new, "template"] = "T_NEVER_SEEN"
    out = _rescore(spark, lstm_run["cfg"], write_parquet(df, tmp_path / "new"), str(tmp_path / "o"))
    scores = out.set_index("event_id")["anomaly_score"]
    threshold = load_artifact(str(lstm_run["cfg"].model_dir)).threshold
    assert scores.loc[df.loc[new, "event_id"]].min() > 5 * threshold
    assert out.set_index("event_id").loc[df.loc[new, "event_id"], "is_anomaly"].all()
    reasons = out.set_index("event_id").loc[df.loc[new, "event_id"], "top_features"]
    # Both columns explain such an event: the template itself, and the latency, which the numeric head judges
    # against a prediction conditioned on a template it never saw (measured shares: template 0.25-0.95).
    for r in reasons:
        template = [f for f in r if f["feature"] == "template"]
        assert template and template[0]["share"] >= 0.2 and template[0]["expected"] is None
        assert {f["feature"] for f in r} == {"template", "latency_ms"}


def test_onnx_matches_keras_and_manifest(lstm_run, events) -> None:
    df = events[0].sort_values(["host", "ts"]).head(600)
    cfg = parse_config(lstm_job(Path("/tmp"), "unused", train={**TRAIN, "epochs": 2}))
    det = make_detector(cfg, ["latency_ms"], ["template"])
    keys = pd.factorize(df["host"])[0].astype(np.int64)
    table = pa.table({STREAM_COL: keys, "latency_ms": df["latency_ms"], "template": df["template"]})
    det.fit(table)
    scorer = det.scorer_
    _, x, codes = scorer.encode([table.column("latency_ms"), table.column("template")])
    feeds = stream_windows(keys, x, codes, 0, WINDOW, with_current=True)
    onnx_out = scorer.session.run(None, feeds)[0]
    keras_out = det.network_.predict(model_input(feeds), verbose=0)
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-4)
    spec = load_artifact(str(lstm_run["cfg"].model_dir)).manifest
    assert spec["kind"] == "lstm" and spec["model"]["window"] == WINDOW
    assert {c["role"] for c in spec["input_schema"]} == {"numeric", "categorical", "entity", "timestamp"}
    assert spec["model"]["vocabulary_sizes"] == [4 + TEMPLATES]
    assert 2 in spec["model"]["never_seen_codes"][0]  # the unseen bucket never occurs in training


def test_one_series_without_entity_finds_the_anomalous_region(spark, tmp_path) -> None:
    n = 3000
    t = np.arange(n)
    y = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.05, n)
    y[2000:2030] = np.sin(2 * np.pi * t[2000:2030] / 17)  # a short burst of the wrong rhythm
    df = pd.DataFrame({"t": t, "value": y, "label": ((t >= 2000) & (t < 2030)).astype(int)})
    data = write_parquet(df.sample(frac=1.0, random_state=1), tmp_path / "series")
    job = lstm_job(tmp_path, data, columns={"id": ["t"], "timestamp": "t", "numeric": ["value"]},
                   model={"kind": "lstm", "window": 16})
    pipeline.run(spark, parse_config(job))
    out = spark.read.parquet(str(tmp_path / "out")).toPandas().sort_values("t")
    assert len(out) == n and np.all(np.isfinite(out["anomaly_score"]))
    top = out.nlargest(10, "anomaly_score")["t"]
    assert top.between(2000, 2030 + 16).all(), top.tolist()


def test_config_and_schema_errors_name_the_column(spark, events, tmp_path) -> None:
    with pytest.raises(ConfigError, match="columns.timestamp"):
        parse_config({"model": {"kind": "lstm"}})
    with pytest.raises(ConfigError, match="'ts' is columns.timestamp and cannot also be in columns.numeric"):
        parse_config({"model": {"kind": "lstm"}, "columns": {"timestamp": "ts", "numeric": ["ts"]}})
    job = lstm_job(tmp_path, events[1])
    job["columns"] = {**job["columns"], "timestamp": "when"}
    with pytest.raises(SchemaError, match="column 'when' \\(columns.timestamp\\) is not in the input table"):
        pipeline.train(spark, parse_config(job))
    job["columns"] = {**job["columns"], "timestamp": "template", "categorical": []}
    with pytest.raises(SchemaError, match="'template' \\(columns.timestamp\\) has type string"):
        pipeline.train(spark, parse_config(job))


def test_cli_train_on_history_then_score_tonight(events, tmp_path) -> None:
    history = write_parquet(event_log(seed=5, bad=0), tmp_path / "history")
    job = lstm_job(tmp_path, history)
    job["spark"] = {"spark.master": "local[2]", "spark.sql.shuffle.partitions": 3}
    conf = tmp_path / "job.yaml"
    conf.write_text(yaml.safe_dump(job))
    cli = [sys.executable, "-m", "adspark.cli"]
    subprocess.run([*cli, "train", "--config", str(conf)], cwd=REPO, check=True, capture_output=True)
    tonight = events[1]
    done = subprocess.run([*cli, "score", "--config", str(conf), "--input", tonight], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((tmp_path / "out" / "_adspark_run.json").read_text())
    df = events[0]
    assert run["input_rows"] == run["output_rows"] == len(df) and run["model_kind"] == "lstm"
    out = pd.read_parquet(tmp_path / "out")
    labels = df.set_index("event_id").loc[out["event_id"], "label"].to_numpy()
    rank = out["anomaly_score"].rank(ascending=False).to_numpy() / len(out)
    assert np.median(rank[labels == 1]) <= 0.02


def test_categorical_only_streams_with_dates_and_nulls(spark, tmp_path) -> None:
    """Date timestamps, a null timestamp and a null entity: every event scored, each exactly once."""
    rng = np.random.default_rng(3)
    n = 1200
    user = rng.choice(["u1", "u2", "u3", None], n)
    day = pd.Series(pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")).dt.date
    df = pd.DataFrame({"row": np.arange(n), "user": user, "day": day, "action": rng.choice(["a", "b", "c"], n)})
    df.loc[5, "day"] = None
    job = lstm_job(tmp_path, write_parquet(df, tmp_path / "acts"),
                   columns={"id": ["row"], "entity": ["user"], "timestamp": "day", "numeric": [],
                            "categorical": ["action"]})
    report = pipeline.run(spark, parse_config(job))
    out = spark.read.parquet(str(tmp_path / "out")).toPandas()
    assert report.output_rows == n and sorted(out["row"]) == list(range(n))
    assert np.all(np.isfinite(out["anomaly_score"]))


def test_training_sample_is_whole_stream_pieces_independent_of_partitioning(spark, events, tmp_path) -> None:
    from adspark.schema import resolve_roles
    from adspark.sequences import sequence_sample

    df_pd, data = events
    cfg = parse_config(lstm_job(tmp_path, data))
    one = spark.read.parquet(write_parquet(df_pd, tmp_path / "one", files=1))
    many = spark.read.parquet(data).repartition(5)
    roles = resolve_roles(cfg, one.schema)
    samples = [sequence_sample(d, roles, 2000, 7, len(df_pd), WINDOW) for d in (one, many)]
    assert samples[0].equals(samples[1])
    sample = samples[0].to_pandas()
    assert 1500 <= len(sample) <= 2000  # train.sample_rows is a hard cap
    pieces = sample[STREAM_COL].nunique()
    assert pieces <= 20 and len(sample) / pieces >= 4 * WINDOW  # whole runs of events, not scattered rows
    # Each piece is one host's consecutive events, in time order.
    lookup = df_pd.set_index(["latency_ms"])
    for _, piece in sample.groupby(STREAM_COL, sort=False):
        rows = lookup.loc[piece["latency_ms"]]
        assert rows["host"].nunique() == 1 and rows["ts"].is_monotonic_increasing


@pytest.mark.parametrize("max_rows", [700, 3001])
def test_sample_rows_is_a_hard_cap_for_sequence_samples(spark, events, tmp_path, max_rows) -> None:
    from adspark.schema import resolve_roles
    from adspark.sequences import sequence_sample

    df_pd, data = events
    df = spark.read.parquet(data)
    roles = resolve_roles(parse_config(lstm_job(tmp_path, data)), df.schema)
    sizes = [sequence_sample(df, roles, max_rows, seed, len(df_pd), WINDOW).num_rows for seed in (0, 1, 2)]
    assert max(sizes) <= max_rows and min(sizes) >= 0.75 * max_rows, sizes
