"""`adspark demo`: generate card transactions, run the job with the packaged demo config, summarise."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from adspark.config import load_config
from adspark.errors import ConfigError

LABEL = "is_fraud"


def find_demo_config(explicit: str | None) -> Path:
    """`--config` when given, else the demo config shipped inside the package (works from any install)."""
    path = Path(explicit) if explicit else Path(str(resources.files("adspark") / "demo.yaml"))
    if not path.is_file():
        raise ConfigError(f"demo config not found at {path}; pass --config")
    return path


def run_demo(workdir: str, rows: int, config: str | None) -> int:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from adspark import pipeline
    from adspark.demo_data import write_transactions
    from adspark.session import get_spark

    root = Path(workdir).resolve()
    cfg = load_config(find_demo_config(config))
    cfg.input.path, cfg.output.path = str(root / "transactions"), str(root / "scores")
    cfg.model_dir = str(root / "model")
    started = time.perf_counter()
    n = write_transactions(cfg.input.path, n_rows=rows)
    print(f"generated {n} synthetic transactions in {cfg.input.path}")
    spark = get_spark(cfg, "adspark-demo")
    job_start = time.perf_counter()
    report = pipeline.run(spark, cfg)
    job_s = time.perf_counter() - job_start
    scored = spark.read.parquet(cfg.output.path).select(LABEL, "anomaly_score", "is_anomaly").toPandas()
    y, s, flagged = scored[LABEL].to_numpy(), scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy()
    hits = int(y[flagged].sum())
    print("\nadspark demo summary")
    print(f"  rows scored        {report.output_rows} (input {report.input_rows})")
    print(f"  flagged            {report.flagged} ({report.flagged / max(report.output_rows, 1):.2%})")
    print(f"  fraud among flagged {hits} of {report.flagged} (precision {hits / max(report.flagged, 1):.2f}), "
          f"recall {hits / max(int(y.sum()), 1):.2f}")
    print(f"  ROC-AUC vs label   {roc_auc_score(y, s):.3f}   PR-AUC {average_precision_score(y, s):.3f}")
    print(f"  time               job {job_s:.1f} s (train {report.timings.get('train_s', 0):.1f} s, "
          f"score+write {report.timings.get('score_write_s', 0):.1f} s), total {time.perf_counter() - started:.1f} s")
    print(f"  output             {cfg.output.path}\n  model              {cfg.model_dir}")
    return 0
