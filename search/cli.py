"""The command line: flags, and the one typed config they make (with --resume, the search's own)."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any, NoReturn

from search.credentials import move_credentials_to_env
from search.output import read_search
from trainable.config import Config
from trainable.config_file import config_from_dict, load_config, parse_override
from trainable.errors import ConfigError

# CLI flag → dotted config key
FLAG_KEYS = {
    "trials": "search.trials",
    "max_concurrent": "search.max_concurrent",
    "seed": "seed",
    "output": "output",
    "tracking_uri": "tracking.uri",
    "experiment": "tracking.experiment",
    "address": "address",
    "verbose": "verbose",
    "data": "data.source",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "metric": "search.metric",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Hyperparameter search for fine-tuning a text classifier "
        "(Ray Tune + Optuna TPE + ASHA, HF Trainer on Ray Train, MLflow tracking).",
    )
    parser.add_argument(
        "--config", help="YAML config file (default: built-in defaults = configs/default.yaml)"
    )
    parser.add_argument("--trials", type=int, help="number of trials to run (search.trials)")
    parser.add_argument(
        "--output", help="folder for results, checkpoints, MLflow store and best_model/ (output)"
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI, e.g. http://127.0.0.1:5000 or databricks "
        "(default: sqlite:///<output>/mlflow.db)",
    )
    parser.add_argument("--experiment", help="MLflow experiment name (tracking.experiment)")
    parser.add_argument(
        "--address",
        help="existing Ray cluster to join: auto, HOST:6379 or ray://HOST:10001 "
        "(default: start a local Ray)",
    )
    parser.add_argument(
        "--max-concurrent", type=int, help="trials running at once (search.max_concurrent)"
    )
    parser.add_argument("--seed", type=int, help="seed for the split, the sampler and training")
    parser.add_argument(
        "--data",
        metavar="FILE",
        help="your own data: a .csv/.tsv/.json/.jsonl/.parquet file or a hub dataset id "
        "(data.source; default: the embedded SMS spam data)",
    )
    parser.add_argument("--text-column", help="the column holding the text (data.text_column)")
    parser.add_argument("--label-column", help="the column holding the class (data.label_column)")
    parser.add_argument(
        "--metric",
        help="what trials are ranked by on validation: f1 (two classes), macro_f1, "
        "weighted_f1, accuracy, mcc or loss (search.metric; default: f1 for two classes, "
        "macro_f1 for more)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config value, e.g. --set train.weight_decay=0.01 (repeatable)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=None,
        help="show Ray's own progress tables and every worker's log (verbose)",
    )
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="finish the interrupted search in DIR (its --output), with its own config",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier search in the output folder",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = dict(parse_override(text) for text in args.overrides)
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    if args.resume is None:
        return move_credentials_to_env(load_config(args.config, overrides))
    # A resumed search keeps its own config; only where it runs and how loudly may change.
    changed = set(overrides) - {"address", "verbose"} | ({"config"} if args.config else set())
    if changed or args.overwrite:
        dropped = ", ".join(sorted(changed)) or "--overwrite"
        raise ConfigError(f"--resume takes the search's own config: drop {dropped}")
    saved = read_search(Path(args.resume).expanduser().resolve())["config"]
    saved["output"] = str(Path(args.resume).expanduser().resolve())
    return move_credentials_to_env(config_from_dict(saved, overrides))


def exit_with(code: int) -> NoReturn:
    """Exits a command with `code`. Before Ray's own exit handler stops the Ray it started,
    every object is frozen out of the garbage collector: the collections of interpreter
    shutdown would otherwise walk the millions of objects torch, transformers and Ray leave,
    3 to 5 s of every command."""
    gc.freeze()
    sys.exit(code)
