"""Produce the three example reports and their screenshots in docs/ (needs Chromium).

    python docs/make_screenshots.py [--rows 50000] [--workdir /tmp/adspark-docs]

Trains on a month of synthetic card transactions (`adspark train`), scores a night in
which amounts tripled (`adspark score`: the run report shows the drift), evaluates the
model on a labelled night (`adspark evaluate --by merchant_category`), then checks each
page in headless Chromium (bench/report_check.py) and writes docs/report_{run,model,evaluation}.png.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent


def _adspark(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "adspark.cli", *args], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/adspark-docs"))
    p.add_argument("--render-only", action="store_true",
                   help="re-render the pages from an earlier run's manifests and metrics, then screenshot them")
    args = p.parse_args()
    work = args.workdir.resolve()
    if not args.render_only:
        build(work, args.rows)
    else:
        render(work)
    return screenshot(work)


def render(work: Path) -> None:
    import json

    from adspark.report import evaluation_page, model_page

    manifest = json.loads((work / "model" / "manifest.json").read_text())
    (work / "model.html").write_text(model_page(manifest, str(work / "model")))
    metrics = json.loads((work / "evaluation" / "metrics.json").read_text())
    (work / "evaluation" / "index.html").write_text(evaluation_page(metrics, manifest))
    _adspark("report", str(work / "scores"))


def build(work: Path, rows: int) -> None:
    from adspark.demo_data import generate_transactions, write_transactions

    shutil.rmtree(work, ignore_errors=True)
    write_transactions(work / "last_month", n_rows=rows, seed=7)
    write_transactions(work / "labelled_night", n_rows=rows // 2, seed=9)
    night = generate_transactions(rows // 2, seed=8)
    night["amount"] = night["amount"] * 3.0  # a currency or unit change upstream
    (work / "night").mkdir()
    night.to_parquet(work / "night" / "part-0.parquet", index=False)
    cfg = yaml.safe_load((REPO / "conf" / "demo.yaml").read_text())
    cfg.update(input={"path": str(work / "last_month")}, output={"path": str(work / "scores")},
               model_dir=str(work / "model"), train={"sample_rows": 50_000, "epochs": 15, "seed": 42})
    cfg["spark"] = {"spark.sql.shuffle.partitions": 4, "spark.master": "local[2]"}
    (work / "job.yaml").write_text(yaml.safe_dump(cfg))
    job = str(work / "job.yaml")
    _adspark("train", "--config", job)
    _adspark("score", "--config", job, "--input", str(work / "night"))
    _adspark("evaluate", "--config", job, "--input", str(work / "labelled_night"), "--label", "is_fraud",
             "--by", "merchant_category", "--report", str(work / "evaluation"))


def screenshot(work: Path) -> int:
    pages = {
        "report_run": work / "scores" / "_adspark_report.html",
        "report_model": work / "model.html" if (work / "model.html").exists() else work / "model" / "report.html",
        "report_evaluation": work / "evaluation" / "index.html",
    }
    sys.path.insert(0, str(REPO / "bench"))
    from report_check import check_page

    for name, page in pages.items():
        result = check_page(page, width=1000, screenshot=DOCS / f"{name}.png")
        print(f"{name}: {result}")
        if not result["ok"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
