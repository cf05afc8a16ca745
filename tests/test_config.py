import logging
from pathlib import Path

import pytest

from adspark.config import apply_overrides, load_config, parse_config
from adspark.errors import ConfigError


def test_minimal_config_gets_defaults() -> None:
    cfg = parse_config({"input": {"path": "in"}, "output": {"path": "out"}, "model_dir": "m"})
    assert cfg.model.kind == "autoencoder"
    assert cfg.train.sample_rows == 200_000 and cfg.train.epochs == 30 and cfg.train.seed == 42
    assert cfg.threshold.method == "contamination" and cfg.threshold.value == 0.01
    assert cfg.input.format == "parquet" and cfg.output.mode == "overwrite"
    assert cfg.preprocess.on_missing == "impute"


def test_a_full_example_config_parses(tmp_path: Path) -> None:
    text = """
input:     {path: data/transactions, format: parquet}
columns:
  id: [txn_id]
  numeric: [amount]
  exclude: [is_fraud]
model:     {kind: autoencoder}
train:     {sample_rows: 200000, epochs: 30, seed: 42}
threshold: {method: fixed, value: 3.2}
output:    {path: out/scores, mode: overwrite}
model_dir: out/model
spark:     {spark.sql.shuffle.partitions: 64}
"""
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.columns.numeric == ["amount"]
    assert cfg.threshold.value == 3.2
    assert cfg.spark == {"spark.sql.shuffle.partitions": 64}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"inputs": {}}, "unknown key 'inputs'"),
        ({"train": {"sample_row": 5}}, "unknown key 'train.sample_row'"),
        ({"model": {"kind": "forest"}}, "model.kind"),
        ({"threshold": {"method": "contamination", "value": 0.7}}, "threshold"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"columns": {"id": ["x"], "numeric": ["x"]}}, "'x' is listed both"),
        ({"columns": {"numeric": ["x"], "exclude": ["x"]}}, "'x' is excluded"),
    ],
)
def test_bad_configs_are_rejected_with_the_key_named(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        parse_config(data)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("model_dir: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)
    assert not Path("pwned").exists()


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_overrides_win_and_required_paths() -> None:
    cfg = parse_config({"input": {"path": "a"}, "model_dir": "m"})
    new = apply_overrides(cfg, input="b", output="o", model_dir=None)
    assert (new.input.path, new.output.path, new.model_dir) == ("b", "o", "m")
    assert cfg.input.path == "a"  # the original is not mutated
    with pytest.raises(ConfigError, match=r"output.path is not set .*--output"):
        cfg.require("output.path")


def test_set_overrides_any_key_with_a_yaml_value_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("input: {path: a}\nthreshold: {method: contamination, value: 0.01}\n")
    cfg = load_config(path, ["threshold.method=top_k", "threshold.value=50", "threshold.by=[merchant, dt]",
                             "model.kind=iforest", "output.percentile=false", "spark.spark.sql.shuffle.partitions=64",
                             "train.trim=0.1", "model.error_knee=null", "threshold.value=40"])
    assert (cfg.threshold.method, cfg.threshold.value, cfg.threshold.by) == ("top_k", 40, ["merchant", "dt"])
    assert cfg.model.kind == "iforest" and cfg.model.error_knee is None and cfg.output.percentile is False
    assert cfg.spark == {"spark.sql.shuffle.partitions": 64} and cfg.train.trim == 0.1 and cfg.input.path == "a"
    assert cfg.digest() != load_config(path).digest()  # the run manifest's config hash sees it
    bad = {"threshold.valu=1": f"{path} with --set: unknown key 'threshold.valu'",
           "input.path.x=1": "--set input.path.x: input.path is a value, not a section of keys",
           "threshold": "--set 'threshold': expected KEY=VALUE",
           "=3": "expected KEY=VALUE",
           "threshold.value=[1": "--set threshold.value: invalid YAML value '[1' (expected ',' or ']'",
           "train.epochs=many": "train.epochs"}
    for assignment, message in bad.items():
        with pytest.raises(ConfigError) as err:
            load_config(path, [assignment])
        assert message in str(err.value) and "\n" not in str(err.value), assignment


def test_digest_is_stable_and_sensitive() -> None:
    a = parse_config({"train": {"seed": 1}})
    assert a.digest() == parse_config({"train": {"seed": 1}}).digest()
    assert a.digest() != parse_config({"train": {"seed": 2}}).digest()


def test_min_steps_raises_the_epochs_of_a_small_sample() -> None:
    train = parse_config({"train": {"min_steps": 1000}}).train
    assert train.epochs_for(200_000) == 30  # 782 steps per epoch: the epochs as set
    assert train.epochs_for(2560) == 100  # 10 steps per epoch: 1000 steps
    assert train.epochs_for(200) == 500  # 1 step per epoch: capped at MAX_EPOCHS
    assert parse_config({}).train.epochs_for(200) == 30  # off by default
    with pytest.raises(ConfigError, match="train.min_steps"):
        parse_config({"train": {"min_steps": -1}})


def test_monitor_sample_rows_of_older_configs_loads_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="adspark"):
        cfg = parse_config({"monitor": {"sample_rows": 50_000}})
    assert cfg.monitor.drift
    assert any("monitor.sample_rows is ignored" in r.getMessage() for r in caplog.records)
