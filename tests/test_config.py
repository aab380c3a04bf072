from __future__ import annotations

from pathlib import Path

import pytest

from search.cli import config_from_args, parse_args
from trainable.config import Config
from trainable.config_checks import check_config
from trainable.config_file import load_config, parse_override
from trainable.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_built_in_defaults_equal_default_yaml():
    from_file = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert from_file == check_config(Config())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_tells_how_to_run_it(path):
    load_config(path)
    assert "python -m search.run" in path.read_text().split("\n\n")[0]


def test_cli_flags_and_overrides_reach_the_config():
    args = parse_args(
        [
            "--config",
            "configs/tiny.yaml",
            "--trials",
            "5",
            "--max-concurrent",
            "2",
            "--seed",
            "3",
            "--output",
            "/tmp/x",
            "--tracking-uri",
            "http://127.0.0.1:5000",
            "--experiment",
            "exp",
            "--address",
            "auto",
            "--set",
            "train.weight_decay=0.01",
            "--set",
            "space.batch_size=[4, 8]",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.search.trials == 5 and cfg.search.max_concurrent == 2 and cfg.seed == 3
    assert cfg.output == "/tmp/x" and cfg.address == "auto"
    assert cfg.tracking_uri == "http://127.0.0.1:5000" and cfg.tracking.experiment == "exp"
    assert cfg.train.weight_decay == 0.01 and cfg.space["batch_size"].values == (4, 8)
    assert cfg.model.tiny  # from the file


def test_default_tracking_and_storage_live_in_the_output_folder(tmp_path):
    cfg = load_config(overrides={"output": str(tmp_path / "o")})
    assert cfg.tracking_uri == f"sqlite:///{tmp_path / 'o' / 'mlflow.db'}"
    assert cfg.storage_path == str(tmp_path / "o" / "ray_results")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"space.learning_rate": [1e-3, 1e-5]}, "inverted"),
        ({"space.learning_rate": [0, 1e-3]}, "must be positive"),
        ({"space.learning_rate": [1e-5]}, "[low, high]"),
        ({"space.batch_size": [0, 8]}, "at least 1"),
        ({"space.epochs": []}, "at least 1"),
        ({"search.trials": 0}, "search.trials"),
        ({"search.mode": "maximize"}, "'max' or 'min'"),
        ({"data.test_fraction": 1.5}, "between 0 and 1"),
        ({"data.labels": ["ham"]}, "two distinct"),
        ({"train.precision": "fp8"}, "fp32, fp16 or bf16"),
        ({"search.trials": "many"}, "must be int"),
        ({"search.trails": 3}, "did you mean search.trials?"),
        ({"modle.name": "x"}, "did you mean model?"),
    ],
)
def test_invalid_values_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(overrides=overrides)
    assert message in str(info.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("search:\n  trials: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_override_syntax():
    assert parse_override("search.trials=3") == ("search.trials", 3)
    assert parse_override("model.name=bert-base-uncased") == ("model.name", "bert-base-uncased")
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("search.trials")
