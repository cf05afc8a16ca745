"""`adspark` command line: run, train, score, inspect, demo."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence

from adspark.config import JobConfig, apply_overrides, load_config
from adspark.errors import AdsparkError

log = logging.getLogger("adspark")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adspark", description="Batch anomaly scoring for Apache Spark.")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = p.add_subparsers(dest="command", required=True)

    def job(name: str, help_: str, output: bool) -> None:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", required=True, help="YAML job config")
        sp.add_argument("--input", help="input table path (overrides input.path)")
        if output:
            sp.add_argument("--output", help="output Parquet path (overrides output.path)")
        sp.add_argument("--model-dir", help="model artifact directory (overrides model_dir)")

    job("run", "train on a sample, then score the whole table and write it", output=True)
    job("train", "train on a sample and save the model artifact", output=False)
    job("score", "score a table with a saved model artifact", output=True)
    ins = sub.add_parser("inspect", help="print a model artifact's manifest")
    ins.add_argument("model_dir")
    demo = sub.add_parser("demo", help="generate a synthetic transactions table and run the job on it")
    demo.add_argument("--rows", type=int, default=200_000, help="rows to generate (default 200000)")
    demo.add_argument("--workdir", default="adspark-demo", help="where the demo writes data, model and scores")
    demo.add_argument("--config", default=None, help="config to use (default: the packaged demo config)")
    return p


def _job_config(args: argparse.Namespace) -> JobConfig:
    cfg = load_config(args.config)
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
        print(f"trained on {report.input_rows} rows; model saved to {report.model_dir} ({seconds:.1f} s)")
    else:
        rate = report.flagged / report.output_rows if report.output_rows else 0.0
        print(
            f"scored {report.output_rows} rows, flagged {report.flagged} ({rate:.2%}) at threshold "
            f"{report.threshold:.6g}; wrote {report.output_path} ({seconds:.1f} s)"
        )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from adspark.artifact import describe, load_artifact

    print(describe(load_artifact(args.model_dir)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from adspark.demo import run_demo

    return run_demo(args.workdir, args.rows, args.config)


_CAUSE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def _one_line(err: BaseException) -> str:
    """Spark/Py4J errors carry pages of stack; keep the innermost cause on one line."""
    text = str(err).strip()
    causes = [m for m in map(_CAUSE.match, text.splitlines()) if m]
    if causes:
        kind, message = causes[-1].groups()
        return f"{type(err).__name__}: {kind.rsplit('.', 1)[-1]}: {message.strip()}"[:600]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:600]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "tf2onnx", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handlers = {"inspect": _inspect, "demo": _demo}
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
