"""`adspark` command line: run, train, score, inspect, demo."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from adspark.config import JobConfig, apply_overrides, load_config
from adspark.errors import AdsparkError

log = logging.getLogger("adspark")


def _set_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key with a YAML value, after the file (repeatable), "
                             "e.g. --set threshold.value=0.02 --set 'columns.exclude=[label]'")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adspark", description="Batch anomaly scoring for Apache Spark.")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print warnings and the summary only")
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="show everything: debug logs, Spark's INFO log, third-party warnings")
    sub = p.add_subparsers(dest="command", required=True)

    def job(name: str, help_: str, output: bool) -> None:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", required=True, help="YAML job config")
        sp.add_argument("--input", help="input table path (overrides input.path)")
        if output:
            sp.add_argument("--output", help="output Parquet path (overrides output.path)")
        sp.add_argument("--model-dir", help="model artifact directory (overrides model_dir)")
        _set_flag(sp)

    job("run", "train on a sample, then score the whole table and write it", output=True)
    job("train", "train on a sample and save the model artifact", output=False)
    job("score", "score a table with a saved model artifact", output=True)
    ev = sub.add_parser("evaluate", help="metrics and a page for a labelled table (or a scored output)")
    ev.add_argument("--config", required=True, help="YAML job config (model_dir, input, columns.id)")
    ev.add_argument("--label", required=True, help="the 0/1 label column")
    ev.add_argument("--model-dir", help="model artifact directory (overrides model_dir)")
    ev.add_argument("--input", help="labelled table to score (overrides input.path)")
    ev.add_argument("--scores", help="an existing scored output to evaluate instead of scoring")
    ev.add_argument("--report", required=True, help="directory for metrics.json and index.html")
    ev.add_argument("--by", help="also report every metric per value of this column")
    _set_flag(ev)
    ins = sub.add_parser("inspect", help="print a model artifact's manifest")
    ins.add_argument("model_dir")
    rep = sub.add_parser("report", help="re-render an output's run report from its _adspark_run.json")
    rep.add_argument("output", help="a scored output directory (local path)")
    rep.add_argument("--to", default=None, help="where to write the page (default OUTPUT/_adspark_report.html)")
    demo = sub.add_parser("demo", help="generate a synthetic transactions table and run the job on it")
    demo.add_argument("--rows", type=int, default=200_000, help="rows to generate (default 200000)")
    demo.add_argument("--workdir", default="adspark-demo", help="where the demo writes data, model and scores")
    demo.add_argument("--config", default=None, help="config to use (default: the packaged demo config)")
    return p


def _job_config(args: argparse.Namespace) -> JobConfig:
    cfg = load_config(args.config, args.set)
    return apply_overrides(
        cfg, input=args.input, output=getattr(args, "output", None), model_dir=getattr(args, "model_dir", None)
    )


def _run_job(args: argparse.Namespace) -> int:
    from adspark import pipeline
    from adspark.session import get_spark

    cfg = _job_config(args)
    started = time.perf_counter()
    if args.command == "score":
        from adspark.artifact import load_artifact

        cfg.require("input.path", "output.path", "model_dir")
        artifact = load_artifact(str(cfg.model_dir))  # a tampered model fails before Spark even starts
        report = pipeline.score(get_spark(cfg, "adspark-score"), cfg, artifact)
    else:
        command: Callable[..., pipeline.RunReport] = getattr(pipeline, args.command)
        report = command(get_spark(cfg, f"adspark-{args.command}"), cfg)
    seconds = time.perf_counter() - started
    if args.command == "train":
        print(f"trained on {report.input_rows} rows; model saved to {report.model_dir} ({seconds:.1f} s); "
              f"report {report.model_dir}/report.html")
    else:
        rate = report.flagged / report.output_rows if report.output_rows else 0.0
        drifted = (report.manifest.get("drift") or {}).get("drifted")
        decision = (report.manifest.get("decision") or {}) if report.manifest else {}
        at = (f"top {decision.get('value', 0):g}" + (f" per {', '.join(decision['by'])}" if decision.get("by") else "")
              if decision.get("method") == "top_k" else f"threshold {report.threshold:.6g}")
        print(
            f"scored {report.output_rows} rows, flagged {report.flagged} ({rate:.2%}) at {at}"
            + _leading_reason(report.manifest)
            + f"; wrote {report.output_path} ({seconds:.1f} s)"
            + (f"; drifted: {', '.join(drifted)}" if drifted else "")
            + (f"; report {report.output_path}/_adspark_report.html" if cfg.monitor.report else "")
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from adspark.evaluate import check_report_dir, evaluate, write_report
    from adspark.guard import check_not_inside
    from adspark.session import get_spark

    cfg = apply_overrides(load_config(args.config, args.set), input=args.input, model_dir=args.model_dir)
    if not args.scores:
        cfg.require("input.path", "model_dir")
    check_report_dir(args.report)
    spark = get_spark(cfg, "adspark-evaluate")
    reads = {"--scores": args.scores} if args.scores else {"input.path": str(cfg.input.path)}
    check_not_inside(spark, "--report", args.report, {**reads, **({"model_dir": str(cfg.model_dir)}
                                                                  if cfg.model_dir else {})})
    result = evaluate(spark, cfg, args.label, args.scores, args.by)
    out = write_report(result, args.report)
    m = result.metrics
    pk = ", ".join(f"p@{k} {v:.3f}" for k, v in m["precision_at_k"].items())
    print(f"ROC-AUC {m['roc_auc']:.4f}, PR-AUC {m['pr_auc']:.4f}, {pk}; flagged {m['flagged']} at threshold "
          f"{m['threshold']:.6g}; wrote {out / 'metrics.json'} and {out / 'index.html'}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from adspark.artifact import describe, load_artifact

    print(describe(load_artifact(args.model_dir)))
    return 0


def _report(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from adspark.errors import OutputError
    from adspark.publish import RUN_MANIFEST, RUN_REPORT
    from adspark.report import run_page

    source = Path(args.output) / RUN_MANIFEST
    try:
        manifest = json.loads(source.read_text())
    except (OSError, ValueError) as err:
        raise OutputError(f"{source}: cannot read the run manifest ({err})") from None
    target = Path(args.to) if args.to else Path(args.output) / RUN_REPORT
    target.write_text(run_page(manifest))
    print(f"wrote {target}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from adspark.demo import run_demo

    return run_demo(args.workdir, args.rows, args.config)


def _console(quiet: bool, verbose: bool) -> None:
    """-q: warnings and the summary; default: progress and INFO logs; -v: everything, third parties included."""
    from adspark import progress

    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    progress.ENABLED = not quiet
    if verbose:
        os.environ.setdefault("ADSPARK_SPARK_LOG_LEVEL", "INFO")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    for noisy in ("py4j", "tf2onnx", "absl", "tensorflow", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Third-party FutureWarnings (pyspark on pandas 3, Keras, ...) say nothing about the job. The
    # environment variable carries the filter to the Python workers Spark starts from this process.
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")


# A line naming an exception: bare (a Python traceback's last line), after Py4J's ": " or a JVM "Caused by: ".
_CAUSE = re.compile(r"^\s*(?:: |Caused by: )?([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def _one_line(err: BaseException) -> str:
    """Spark/Py4J errors carry pages of stack; keep the innermost cause on one line."""
    text = str(err).strip()
    causes = [m for m in map(_CAUSE.match, text.splitlines()) if m]
    if causes:
        kind, message = causes[-1].groups()
        return f"{type(err).__name__}: {kind.rsplit('.', 1)[-1]}: {message.strip()}"[:600]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:600]


def _leading_reason(manifest: dict[str, Any] | None) -> str:
    """", most for <column> (N% of flags)": the column first in the most flagged rows' reasons."""
    reasons = (manifest or {}).get("flag_reasons") or {}
    entries = reasons.get("features") or []
    if not entries:
        return ""
    total = sum(e["flagged"] for e in entries) + int(reasons.get("other") or 0)
    top = entries[0]
    return f", most for {top['feature']} ({top['flagged'] / total:.0%} of flags)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _console(args.quiet, args.verbose)
    handlers = {"inspect": _inspect, "demo": _demo, "report": _report, "evaluate": _evaluate}
    try:
        return handlers.get(args.command, _run_job)(args)
    except AdsparkError as err:
        print(f"adspark: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("adspark: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # Spark and Py4J errors: one clear line, full detail at debug level
        log.debug("failure", exc_info=True)
        print(f"adspark: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
