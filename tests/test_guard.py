"""The path guard: overlapping paths, roots, foreign directories and leases are refused before any work."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adspark import pipeline
from adspark.config import parse_config
from adspark.errors import LeaseError, PathError, SchemaError
from tests.conftest import REPO, job_dict, make_table, snapshot, write_parquet


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """tmp/lake/table (the input), with room for outputs and models around and inside it."""
    table = tmp_path / "lake" / "table"
    write_parquet(make_table(300, seed=5), table, files=2)
    return {"root": tmp_path, "lake": tmp_path / "lake", "table": table}


def _cfg(layout: dict[str, Path], output: str, model_dir: str, data: str | None = None) -> object:
    return parse_config(job_dict(layout["root"], data or str(layout["table"]), output={"path": output},
                                 model_dir=model_dir))


# (command, output, model_dir, the two keys named in the error); paths relative to tmp
OVERLAPS = [
    ("run", "lake/table", "m", ("output.path", "input.path")),  # scores-only output replacing the input
    ("score", "lake/table", "m", ("output.path", "input.path")),
    ("run", "lake", "m", ("output.path", "input.path")),  # output is a parent of the input
    ("run", "lake/table/scores", "m", ("output.path", "input.path")),  # output inside the input
    ("run", "out", "lake/table", ("input.path", "model_dir")),  # model_dir equal to the input
    ("train", "out", "lake/table", ("input.path", "model_dir")),
    ("train", "out", "lake", ("input.path", "model_dir")),
    ("run", "out", "out/model", ("output.path", "model_dir")),  # model inside the output
    ("score", "m/scores", "m", ("output.path", "model_dir")),  # output inside the model
]


@pytest.mark.parametrize(("command", "output", "model_dir", "keys"), OVERLAPS)
def test_overlapping_paths_are_refused_before_any_work(spark, trained, layout, command, output, model_dir,
                                                       keys) -> None:
    root = layout["root"]
    if command == "score":
        shutil.copytree(trained["cfg"].model_dir, root / model_dir)
    before = snapshot(root)
    cfg = _cfg(layout, str(root / output), str(root / model_dir))
    with pytest.raises(PathError) as err:
        getattr(pipeline, command)(spark, cfg)
    for key in keys:
        assert key in str(err.value)
    assert err.value.exit_code == 2
    assert snapshot(root) == before  # the input (and any model), byte for byte; nothing written


def test_overlap_is_found_through_symlinks_and_spellings(spark, layout) -> None:
    root = layout["root"]
    before = snapshot(layout["lake"])
    link = root / "alias"
    link.symlink_to(layout["lake"])
    for output in (str(link / "table"), f"file://{layout['table']}", str(root / "lake" / "." / "table") + "/",
                   str(root / "other" / ".." / "lake" / "table")):
        with pytest.raises(PathError, match=r"input.path .* and output.path .* same directory"):
            pipeline.run(spark, _cfg(layout, output, str(root / "m")))
    relative = os.path.relpath(layout["table"])  # relative to the working directory
    with pytest.raises(PathError, match="same directory"):
        pipeline.run(spark, _cfg(layout, relative, str(root / "m")))
    assert snapshot(layout["lake"]) == before


def test_a_symlink_inside_the_input_that_leads_to_the_output_or_model_is_refused(spark, layout) -> None:
    """Spark reads through links below a local input directory: one leading to (or above) a target adspark
    replaces would make the run read what it is about to destroy."""
    from adspark.guard import check_paths

    root, table = layout["root"], layout["table"]
    (root / "elsewhere").mkdir()
    (table / "archive").symlink_to(root / "elsewhere")  # leads nowhere adspark writes: allowed
    cases = [
        (table / "last_scores", root / "out", "output.path"),       # a directory link to the output
        (table / "models", root, "(output.path|model_dir)"),         # a link above every target
        (table / "part-model.parquet", root / "m" / "manifest.json", "model_dir"),  # a file link into the model
    ]
    before = snapshot(table)
    for link, target, key in cases:
        link.symlink_to(target)
        cfg = _cfg(layout, str(root / "out"), str(root / "m"))
        message = rf"input.path .* reaches {key} .* through the symlink {re.escape(str(link))} -> "
        with pytest.raises(PathError, match=message):
            pipeline.run(spark, cfg)
        link.unlink()
    assert snapshot(table) == before
    latest = layout["lake"] / "latest"  # a pattern's match that is itself a link
    latest.symlink_to(root / "out")
    with pytest.raises(PathError, match=rf"reaches output.path .* through the symlink {re.escape(str(latest))} -> "):
        pipeline.run(spark, _cfg(layout, str(root / "out"), str(root / "m"), data=str(layout["lake"] / "*")))
    latest.unlink()
    assert not (root / "out").exists() and not (root / "m").exists()  # refused before anything was written
    for data in (table, layout["lake"] / "*"):
        paths = {"input.path": str(data), "output.path": str(root / "out"), "model_dir": str(root / "m")}
        assert set(check_paths(spark, paths)) == set(paths)


# (input pattern, output, model_dir, what the error says); paths relative to tmp
GLOB_OVERLAPS = [
    ("lake/tab*", "lake/tabular", "m", "the pattern input.path matches output.path"),  # read back tomorrow
    ("lake/tab*", "out", "lake/table/m", "model_dir is inside a directory the pattern input.path matches"),
    ("lake/t?ble", "lake", "m", "input.path matches paths inside output.path"),
    ("lake/{table,x/y}", "lake/x/y", "m", "overlap: output.path"),  # a brace across names: refused as a whole
    ("lake/[st]able", "out", "lake/sable", "the pattern input.path matches model_dir"),
    ("lake/*", "lake/.scores-z", "m", "the pattern input.path matches output.path"),  # a hidden name too
    ("lake/s*", "lake/scores", "m", "the pattern input.path matches output.path"),  # apart today, not on the rerun
    ("lake/*", "out/*", "m", "out/*' is a pattern (it has one of *?[{); only input.path may be one"),
]


@pytest.mark.parametrize(("pattern", "output", "model_dir", "message"), GLOB_OVERLAPS)
def test_a_glob_input_is_refused_where_it_would_match_what_adspark_writes(spark, layout, pattern, output,
                                                                          model_dir, message) -> None:
    root = layout["root"]
    before = snapshot(root)
    with pytest.raises(PathError, match=re.escape(message)) as err:
        pipeline.run(spark, _cfg(layout, str(root / output), str(root / model_dir), data=str(root / pattern)))
    assert err.value.exit_code == 2
    assert snapshot(root) == before


def test_a_glob_input_is_read_and_one_that_matches_nothing_is_named(spark, trained, layout) -> None:
    root = layout["root"]
    write_parquet(make_table(200, seed=6), root / "lake" / "extra", files=1)
    before = snapshot(layout["lake"])
    cfg = _cfg(layout, str(root / "out"), trained["cfg"].model_dir, data=str(root / "lake" / "{table,extra}"))
    assert pipeline.score(spark, cfg).output_rows == 500  # both tables, every row once
    # the output's parent is matched by `*` only one level up, so a pattern beside it scores too
    cfg = _cfg(layout, str(root / "out"), trained["cfg"].model_dir, data=str(root / "lake" / "ext*"))
    assert pipeline.score(spark, cfg).output_rows == 200
    assert snapshot(layout["lake"]) == before
    missing = str(root / "lake" / "dt=2026-12-*")
    with pytest.raises(SchemaError, match=re.escape(f"input path {missing!r} is a pattern that matches no file")):
        pipeline.score(spark, _cfg(layout, str(root / "out2"), trained["cfg"].model_dir, data=missing))
    assert not (root / "out2").exists()


@pytest.mark.parametrize("output", ["/", "file:///", "s3a://bucket/", "s3a://bucket"])
def test_a_filesystem_or_bucket_root_is_a_clear_error(spark, layout, output) -> None:
    with pytest.raises(PathError, match="root of its filesystem or bucket"):
        pipeline.run(spark, _cfg(layout, output, str(layout["root"] / "m")))


def test_a_foreign_directory_is_never_replaced(spark, layout) -> None:
    root = layout["root"]
    foreign = root / "reports"
    foreign.mkdir()
    (foreign / "q3.xlsx").write_text("important")
    before = snapshot(foreign)
    with pytest.raises(PathError, match=r"output.path .*reports is a non-empty directory .* \(no _adspark_run.json; "
                                        r"it holds q3.xlsx\)"):
        pipeline.run(spark, _cfg(layout, str(foreign), str(root / "m")))
    with pytest.raises(PathError, match=r"model_dir .*reports is a non-empty directory .*no manifest.json"):
        pipeline.train(spark, _cfg(layout, str(root / "out"), str(foreign)))
    (root / "afile").write_text("x")
    with pytest.raises(PathError, match="afile is an existing file"):
        pipeline.run(spark, _cfg(layout, str(root / "afile"), str(root / "m")))
    assert snapshot(foreign) == before and not (root / "m").exists()


def _lease(target: Path, **info: object) -> Path:
    path = target.parent / f".{target.name}.adspark-lease"
    path.write_text(json.dumps({"run_id": "r-first", "host": "elsewhere", "pid": 1, **info}))
    return path


def test_a_live_lease_refuses_a_second_run_naming_the_first(spark, trained, layout) -> None:
    root = layout["root"]
    out = root / "out"
    lease = _lease(out, expires=time.time() + 300)
    cfg = _cfg(layout, str(out), trained["cfg"].model_dir)
    with pytest.raises(LeaseError, match="being written by run r-first"):
        pipeline.score(spark, cfg)
    assert not out.exists() and lease.exists()  # the first run's claim is left alone
    _lease(out, expires=time.time() - 1)  # expired: taken over
    assert pipeline.score(spark, cfg).output_rows == 300
    _lease(out, expires=time.time() + 300, host=os.uname().nodename, pid=2**22 + 17)  # a dead process of this host
    assert pipeline.score(spark, cfg).output_rows == 300
    assert [p.name for p in root.iterdir() if "adspark-" in p.name] == []


def test_cli_refuses_with_exit_2_naming_both_keys(layout) -> None:
    root = layout["root"]
    before = snapshot(layout["lake"])
    cfg = job_dict(root, str(layout["table"]), output={"path": str(layout["lake"])}, model_dir=str(root / "m"))
    (root / "job.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    done = subprocess.run([sys.executable, "-m", "adspark.cli", "run", "--config", str(root / "job.yaml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "output.path" in done.stderr and "input.path" in done.stderr and "inside" in done.stderr
    assert "training" not in done.stderr  # refused before any work
    assert snapshot(layout["lake"]) == before and not (root / "m").exists()
