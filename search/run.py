"""`python -m search.run`: the whole search, from config to exported model.

CLI → config → data (tokenized once) → Ray → Tuner (Optuna + ASHA, one TorchTrainer per
trial, MLflow) → best checkpoint → `<output>/best_model` → summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from search.layout import BEST_MODEL, OWNED, REPORT_DIR, SEARCH_FILE
from trainable.config import Config, config_from_dict, load_config, parse_override
from trainable.errors import ConfigError, SetupError, UserError

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
        return load_config(args.config, overrides)
    # A resumed search keeps its own config; only where it runs and how loudly may change.
    changed = set(overrides) - {"address", "verbose"} | ({"config"} if args.config else set())
    if changed or args.overwrite:
        dropped = ", ".join(sorted(changed)) or "--overwrite"
        raise ConfigError(f"--resume takes the search's own config: drop {dropped}")
    saved = read_search(Path(args.resume).expanduser().resolve())["config"]
    saved["output"] = str(Path(args.resume).expanduser().resolve())
    return config_from_dict(saved, overrides)


def read_search(output: Path) -> dict[str, Any]:
    marker = output / SEARCH_FILE
    if not marker.is_file():
        raise SetupError(f"{output} holds no search to resume (no {SEARCH_FILE}): check --resume")
    return json.loads(marker.read_text())


def check_output_free(cfg: Config, overwrite: bool) -> None:
    if (cfg.output_dir / SEARCH_FILE).exists() and not overwrite:
        raise SetupError(
            f"output folder {cfg.output_dir} already holds a search: pass --overwrite to "
            "replace it or choose another --output"
        )


def claim_output(cfg: Config, overwrite: bool) -> tuple[str, str]:
    """Makes the output folder this search's own; returns the search's name and MLflow run."""
    from search.tracking import open_search_run

    out = cfg.output_dir
    marker = out / SEARCH_FILE
    if overwrite:
        for name in OWNED:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.search.name or f"{out.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_id = open_search_run(cfg, name)
    record = {"name": name, "mlflow_run_id": run_id, "config": cfg.to_dict()}
    marker.write_text(json.dumps(record, indent=2) + "\n")
    return name, run_id


def quiet_libraries() -> None:
    """Keeps the driver's own output to the progress lines and the summary."""
    import logging
    import os
    import warnings

    import optuna
    import transformers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    # Tune's newer console output prints its experiment box and a TensorBoard hint even at
    # verbose=0; the older one is silent there.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def run_search(cfg: Config, overwrite: bool = False, resume: bool = False) -> dict[str, Any]:
    import ray
    from datasets import DatasetDict

    from search.cluster import connect, fit_to_cluster
    from search.export import export_best, find_best
    from search.refit import refit_best
    from search.report import write_report
    from search.tracking import check_tracking, close_search_run
    from search.tuner import build_tuner, restore_tuner, selection_metric
    from trainable import data
    from trainable.model import check_remote_code, load_tokenizer
    from trainable.trial import TrialSetup

    started = time.monotonic()
    if not cfg.verbose:
        quiet_libraries()
    # Every check comes before the output folder is touched: bad input leaves nothing behind.
    tokenizer = load_tokenizer(cfg.model)
    check_remote_code(cfg.model)
    splits = data.tokenize(data.prepare(cfg.data, cfg.seed), tokenizer, cfg.model.max_length)
    check_tracking(cfg)
    if resume:
        search = read_search(cfg.output_dir)
        search_name, run_id = search["name"], search["mlflow_run_id"]
    else:
        check_output_free(cfg, overwrite)
    connect(cfg)
    cfg = fit_to_cluster(cfg)
    if not resume:
        search_name, run_id = claim_output(cfg, overwrite)
    print(
        f"data: {len(splits['train'])} train, {len(splits['validation'])} validation, "
        f"{len(splits['test'])} test messages",
        flush=True,
    )
    res = cfg.resources
    print(
        f"trials: {cfg.search.max_concurrent} at once, each {res.num_workers} worker(s) x "
        f"{res.cpus_per_worker} CPU{' + 1 GPU' if res.use_gpu else ''}",
        flush=True,
    )
    metric = selection_metric(cfg)
    setup = TrialSetup(
        config=cfg,
        # Tokenized once here; every trial reads the same object from the object store.
        splits_ref=ray.put(DatasetDict(train=splits["train"], validation=splits["validation"])),
        selection_metric=metric,
        checkpoint_storage=f"{cfg.storage_path.rstrip('/')}/{search_name}/checkpoints",
    )
    if resume:
        tuner = restore_tuner(cfg, setup, search_name)
    else:
        tuner = build_tuner(cfg, setup, search_name, run_id)
    results = tuner.fit()
    ended = results.num_terminated + results.num_errors
    if ended < cfg.search.trials:
        raise SearchInterrupted(
            f"search interrupted with {ended} of {cfg.search.trials} trials ended: finish it "
            f"with `python -m search.run --resume {cfg.output_dir}`"
        )

    best = find_best(results, metric, cfg.search.mode)
    failed = [_failure(r) for r in results if r.error]
    report_dir = write_report(cfg.output_dir)
    if best is None:
        close_search_run(cfg, run_id, None, report_dir, None)
        raise SearchFailed(
            f"no trial finished an epoch; {len(failed)} failed: " + "; ".join(failed[:3])
        )
    refit = refit_best(best, setup, splits) if cfg.search.refit else None
    model_dir = cfg.output_dir / BEST_MODEL
    record = export_best(best, cfg, splits["test"], model_dir, refit)
    close_search_run(cfg, run_id, record, report_dir, model_dir)
    record["wall_time_s"] = round(time.monotonic() - started, 1)
    record["trials"] = len(results)
    record["failed_trials"] = failed
    record["disk_mb"] = round(_disk_usage(cfg.output_dir) / 2**20, 1)
    mark_finished(cfg.output_dir, record)
    return {"config": cfg, "record": record}


def mark_finished(output: Path, record: dict[str, Any]) -> None:
    search = read_search(output)
    search["finished"] = record
    partial = output / f".{SEARCH_FILE}.partial"
    partial.write_text(json.dumps(search, indent=2) + "\n")
    partial.replace(output / SEARCH_FILE)


def _disk_usage(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _failure(result) -> str:
    """`trial id: reason`, the reason being the last line of the trial's error: the exception
    the worker raised, not Ray's wrapping of it."""
    from trainable.errors import last_line

    trial_id = Path(result.path).name.split("_")[2]  # run_trial_<id>_<n>_<params>
    return f"{trial_id}: {last_line(result.error)}"


class SearchFailed(Exception):
    """Every trial failed: nothing to export."""


class SearchInterrupted(Exception):
    """Stopped before every trial ended (Ctrl-C): the state is saved for --resume."""


def print_summary(cfg: Config, record: dict[str, Any]) -> None:
    from transformers import pipeline

    from search.export import SAMPLE_MESSAGE
    from search.tracking import ui_command

    model_dir = cfg.output_dir / BEST_MODEL
    hp = record["hyperparameters"]
    val, test = record["validation_metrics"], record["test_metrics"]
    print()
    print(f"search finished: {record['trials']} trials in {record['wall_time_s']:.0f} s")
    if record["failed_trials"]:
        print(f"failed trials ({len(record['failed_trials'])}):")
        for reason in record["failed_trials"]:
            print(f"  - {reason}")
    print(
        f"best trial {record['trial_id']} (epoch {record['best_epoch']}): "
        f"learning_rate={hp['learning_rate']:.3g} batch_size={hp['batch_size']} "
        f"epochs={hp['epochs']}"
    )
    print(
        f"  validation: f1={val.get('eval_f1', float('nan')):.4f} "
        f"accuracy={val.get('eval_accuracy', float('nan')):.4f} (the trial's checkpoint)"
    )
    refit = record["refit"]
    if refit:
        print(
            f"  refit:      {refit['epochs']} epochs on train + validation "
            f"({refit['examples']} messages) in {refit['time_s']:.0f} s"
        )
    print(
        "  test:       "
        + " ".join(f"{k.removeprefix('test_')}={v:.4f}" for k, v in test.items())
        + " (the exported model)"
    )
    print(f"exported model: {model_dir}")
    print(f"disk used: {record['disk_mb']:.0f} MB in {cfg.output_dir}")
    print(f"report: {cfg.output_dir / REPORT_DIR} (trials.md and plots)")
    print(f"MLflow runs: {ui_command(cfg)}")
    prediction = pipeline("text-classification", model=str(model_dir))(SAMPLE_MESSAGE)[0]
    print(f"sample: {SAMPLE_MESSAGE[:50]}... -> {prediction['label']} ({prediction['score']:.3f})")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        done = read_search(cfg.output_dir).get("finished") if args.resume else None
        if done:
            print(
                f"search in {cfg.output_dir} already finished ({done['trials']} trials; "
                f"best model in {cfg.output_dir / BEST_MODEL}): nothing to do"
            )
            return 0
        outcome = run_search(cfg, overwrite=args.overwrite, resume=args.resume is not None)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SearchFailed as exc:
        print(f"search failed: {exc}", file=sys.stderr)
        return 1
    except SearchInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    print_summary(outcome["config"], outcome["record"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
