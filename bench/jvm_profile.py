"""Where the JVM's time goes: copy vs identity Arrow UDF vs `adspark score`, by Java Flight Recorder.

    python bench/jvm_profile.py [--workdir /tmp/adspark-bench] [--rows 2000000] [--variants copy,identity,score]
    python bench/jvm_profile.py --report-only        # re-read the recordings in <workdir>/jfr/

Uses the table and model `bench/score_vs_copy.py` prepared. Runs each variant once as a
fresh process (the same commands as that benchmark) with the driver JVM under JFR's
`profile` settings (Java execution samples every 10-20 ms per thread), then sorts every
sample into one bucket by its leaf-most recognised frame:

- Parquet read: the vectorized reader, dictionary decoding, columnar-to-row;
- Parquet write: encoding, page and file output; split out: the dictionary attempt
  (parquet-mr hashes every double into a dictionary until the page is full, then falls back);
- row copies: UnsafeRow projections, the Python node's row queue and rejoin;
- Arrow to Python: Spark's ArrowWriter and the Arrow IPC stream;
- results from Python: the Arrow stream reader and ArrowColumnVector access;
- observe: `DataFrame.observe` aggregates (adspark's fingerprint, flag counts, quantiles);
- class loading and code generation; other.

JVM CPU seconds come from /proc (as in score_vs_copy.py); `CPU-s` per bucket is its sample
share times the run's JVM CPU. JFR samples Java frames only: JIT compiler and GC threads
are in the JVM CPU total but in no bucket, which is why the shares are of sampled time.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

from score_vs_copy import Paths, commands, run_timed

BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("Parquet read", ("VectorizedParquetRecordReader", "VectorizedColumnReader", "VectorizedRleValuesReader",
                      "VectorizedPlainValuesReader", "ParquetDictionary", "PlainValuesDictionary",
                      "OnHeapColumnVector", "WritableColumnVector", "ColumnarBatchRow", "columnartorow",
                      "ColumnarToRowExec", "ParquetFileReader", "bitpacking/", "LittleEndianDataInputStream",
                      "ParquetFooterReader", "Encoding$")),
    ("Parquet write: dictionary attempt", ("values/dictionary/", "values/fallback/", "2IntLinkedOpenHashMap")),
    ("Parquet write: encode + output", ("ParquetWriteSupport", "org/apache/parquet/", "xerial/snappy",
                                        "FileFormatDataWriter", "ParquetOutputWriter")),
    ("observe (checks)", ("CollectMetricsExec", "AggregatingAccumulator", "ApproximatePercentile",
                          "QuantileSummaries")),
    ("results from Python", ("PythonArrowOutput", "ArrowStreamReader", "ArrowColumnVector", "VectorLoader",
                             "ArrowOutputProcessor", "MessageChannelReader", "ArrowReader")),
    ("Arrow to Python", ("execution/arrow/", "ArrowStreamWriter", "ipc/WriteChannel", "MessageSerializer",
                         "PythonArrowInput", "org/apache/arrow/")),
    ("row copies, projections, row queue", ("UnsafeProjection", "MutableProjection", "RowQueue", "HybridQueue",
                                            "JoinedRow", "UnsafeRow", "RowToColumnConverter",
                                            "GenericInternalRow")),
    ("class loading, codegen", ("ZipFile", "ClassLoader", "URLClassPath", "CodeGenerator", "janino",
                                "java/lang/invoke", "java/lang/Class.")),
]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/adspark-bench"))
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--variants", default="copy,identity,score")
    p.add_argument("--report-only", action="store_true")
    return p.parse_args()


def bucket(frames: list[str]) -> str:
    for frame in frames:
        for name, patterns in BUCKETS:
            if any(p in frame for p in patterns):
                return name
    return "other"


def classify(recording: Path) -> collections.Counter[str]:
    out = subprocess.run(["jfr", "print", "--json", "--events", "jdk.ExecutionSample", "--stack-depth", "256",
                          str(recording)], capture_output=True, text=True, check=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    for event in json.loads(out)["recording"]["events"]:
        stack = event["values"]["stackTrace"]
        frames = [f["method"]["type"]["name"] + "." + f["method"]["name"] for f in (stack or {}).get("frames", [])]
        counts[bucket(frames)] += 1
    return counts


def profile(paths: Paths, variant: str, jfr_dir: Path) -> float:
    recording = jfr_dir / f"{variant}.jfr"
    option = f"spark.driver.extraJavaOptions=-XX:StartFlightRecording=filename={recording},settings=profile"
    argv = commands(paths, [option])[variant]
    if "adspark.cli" in argv:
        config = json.loads(Path(argv[argv.index("--config") + 1]).read_text())
        config["spark"]["spark.driver.extraJavaOptions"] = option.split("=", 1)[1]
        jfr_config = jfr_dir / f"{variant}-jfr.yaml"
        jfr_config.write_text(json.dumps(config))
        argv[argv.index("--config") + 1] = str(jfr_config)
    shutil.rmtree(paths.output(variant), ignore_errors=True)
    wall, (jvm, *_rest) = run_timed(argv, paths.log(f"jfr-{variant}"))
    (jfr_dir / f"{variant}.json").write_text(json.dumps({"wall": wall, "jvm_cpu": jvm}))
    return wall


def report(jfr_dir: Path, variants: list[str]) -> None:
    names = [name for name, _ in BUCKETS] + ["other"]
    runs = {v: (json.loads((jfr_dir / f"{v}.json").read_text()), classify(jfr_dir / f"{v}.jfr")) for v in variants}
    print(f"{'JVM samples by bucket (share / est. CPU-s)':44s}" + "".join(f"{v:>18s}" for v in variants))
    for name in names:
        cells = []
        for meta, counts in runs.values():
            share = counts[name] / max(1, sum(counts.values()))
            cells.append(f"{share * 100:7.1f}% {share * meta['jvm_cpu']:6.1f} s")
        print(f"{name:44s}" + "".join(f"{c:>18s}" for c in cells))
    print(f"{'JVM CPU-s (from /proc) / process wall s':44s}"
          + "".join(f"{m['jvm_cpu']:9.1f} / {m['wall']:5.1f}" for m, _ in runs.values()))


def main() -> int:
    args = _args()
    paths = Paths(args.workdir, args.rows)
    if not (paths.data.exists() and (paths.model / "manifest.json").exists()):
        sys.exit(f"run bench/score_vs_copy.py --rows {args.rows} first: it prepares {paths.data} and the model")
    jfr_dir = args.workdir / "jfr"
    jfr_dir.mkdir(parents=True, exist_ok=True)
    variants = [v for v in args.variants.split(",") if v]
    if not args.report_only:
        for variant in variants:
            print(f"{variant}: {profile(paths, variant, jfr_dir):.1f} s", flush=True)
    report(jfr_dir, variants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
