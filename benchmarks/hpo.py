"""finetune-hpo through its CLI, then its numbers read back from the search's own records.

Per trial: its start, reports and work from Tune's results, its end from its MLflow run; its
wall time minus its time inside training steps and evaluation is its orchestration overhead.
Every trial's best checkpoint is kept and scored on test, so the benchmark can tell what the
selection rule gained: the search itself never looks at test before it has chosen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ray.tune import ExperimentAnalysis
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

from benchmarks.common import (
    cli_args,
    config_for,
    load_classifier,
    parse_args,
    score_on_test,
    tokenized_splits,
    write_result,
)
from search.layout import BEST_MODEL, RESULT_FILE, SEARCH_FILE
from search.selection import Ranking
from trainable.config import Config
from trainable.config_file import config_from_dict

SEARCH_DIR = "hpo-search"  # the search's --output, under the contender's folder
# What the search's own summary says of its payoff, as hpo_result.json records it.
PAYOFF_KEYS = ("validation_bootstrap", "search_over_defaults", "refit_over_pick")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    write_result(args.out, "hpo", search_and_score(args.setting, args.out))


def search_and_score(setting: str, out: Path, trials: int | None = None, *sets: str) -> dict:
    """The setting's search (with `trials` and `--set` overrides `sets`, if given), its
    records read back, and every trial's best checkpoint scored on test."""
    output = out / SEARCH_DIR
    trials = trials or config_for(setting).search.trials
    # Keep every trial's best checkpoint (the search keeps the top 3): all are scored below.
    result = run_search(setting, output, trials, f"search.keep_top_trials={trials}", *sets)
    analysis_started = time.time()
    score_trials(result, setting, output / BEST_MODEL)
    # Scoring every checkpoint is the benchmark's own work, not the search's: it is taken out
    # of the wall time.
    result["analysis_s"] = time.time() - analysis_started
    return result


def run_search(
    setting: str,
    output: Path,
    trials: int,
    *sets: str,
    source: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """The setting's search through the CLI, with `--set` overrides `sets`, and its records
    read back. `source`: another checkout whose code runs the search (default: this one);
    `env`: variables set for the search alone."""
    command = [
        sys.executable,
        "-m",
        "search.run",
        *cli_args(setting, trials),
        *(arg for text in sets for arg in ("--set", text)),
        "--output",
        str(output),
        "--overwrite",
    ]
    started = time.time()
    subprocess.run(command, check=True, **running_from(source, env))
    return collect(output, started, time.time())


def running_from(source: Path | None, env: dict[str, str] | None = None) -> dict:
    """subprocess's cwd and env that run the CLI with `source`'s code (another checkout; this
    tree's when None), with the variables `env` set for it alone."""
    code = {"PYTHONPATH": str(source)} if source else {}
    return {"cwd": source, "env": {**os.environ, **code, **(env or {})}}


def score_trials(result: dict, setting: str, exported: Path) -> None:
    """Adds the test scores of every trial's best checkpoint still on disk, of the checkpoint
    the search selected, and the test rows the exported model gets wrong."""
    score = test_scorer(setting)
    scored = {}  # checkpoint → its test scores, each checkpoint scored once
    for trial in result["trials"]:
        best = trial.get("best")
        if best and Path(best["checkpoint"]).is_dir():
            scored[best["checkpoint"]] = score(best["checkpoint"])
            best.update(scored[best["checkpoint"]])
    chosen = result["checkpoint"]
    result["selected_test_metrics"] = scored.get(chosen) or score(chosen)
    result["test_metrics"]["test_wrong"] = score(exported)["test_wrong"]


def trial_ends(cfg: Config) -> dict[str, float]:
    """Unix time each trial ended, by trial id: when Tune closed the trial's MLflow run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    found = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([found.experiment_id], "tags.trial_name != ''") if found else []
    return {
        run.data.tags["trial_name"].rsplit("_", 1)[-1]: run.info.end_time / 1000
        for run in runs
        if run.info.end_time
    }


def test_scorer(setting: str):
    """checkpoint path → its test scores: what exporting that trial checkpoint, without the
    refit, would have reported. Benchmark-only: the search touches test once, after choosing."""
    cfg = config_for(setting)
    tokenizer, splits = tokenized_splits(cfg)

    def score(checkpoint: Path | str) -> dict:
        """A Ray checkpoint folder, or an exported model folder."""
        model = load_classifier(checkpoint)
        return score_on_test(model, tokenizer, splits["test"], cfg, cfg.train.eval_batch_size)

    return score


def best_checkpoint(frame, ranking: Ranking) -> dict | None:
    """A trial's best report as the search ranks them: its checkpoint and validation scores."""
    reported = [
        row
        for row in frame.to_dict("records")
        if isinstance(row.get(CHECKPOINT_PATH_KEY), str) and ranking.key(row) is not None
    ]
    if not reported:
        return None
    row = max(reported, key=ranking.key)
    return {
        "checkpoint": row[CHECKPOINT_PATH_KEY],
        "epoch": int(row["training_iteration"]),
        "eval_f1": float(row["eval_f1"]),
        "eval_loss": float(row["eval_loss"]),
    }


def reported_trials(analysis):
    """(trial, its results frame) for each trial of a Tune experiment that reported."""
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        if frame is not None and not frame.empty:
            yield trial, frame


def trial_timing(frame) -> dict[str, float]:
    """A trial's start, last report, epochs and work, from its results (one row per epoch):
    what the per-trial overhead is computed from (benchmarks.summary)."""
    first, last = frame.iloc[0], frame.iloc[-1]
    timing = {
        "start": float(last["timestamp"] - last["time_total_s"]),
        "last_report": float(last["timestamp"]),
        "epochs_run": int(last["training_iteration"]),
        "time_train_s": float(last["time_train_s"]),
        "time_eval_s": float(last["time_eval_s"]),
    }
    for key in ("loop_started_at", "training_started_at"):
        if key in frame:
            timing[key] = float(first[key])
    return timing


def collect(output: Path, started: float, ended: float) -> dict:
    search = json.loads((output / SEARCH_FILE).read_text())
    cfg = config_from_dict(search["config"], {"output": str(output)})
    best = json.loads((output / BEST_MODEL / RESULT_FILE).read_text())
    analysis = ExperimentAnalysis(cfg.experiment_path(search["name"]))
    trials = []
    for trial, frame in reported_trials(analysis):
        trials.append(
            {
                "trial": trial.trial_id,
                "batch_size": trial.config["batch_size"],
                **trial_timing(frame),
                **{k: float(frame.iloc[-1][k]) for k in ("tokens_trained", "tokens_computed")},
                "evals": [
                    {"time": float(t), "eval_f1": float(f)}
                    for t, f in zip(frame["timestamp"], frame["eval_f1"], strict=True)
                ],
                "best": best_checkpoint(frame, Ranking.of(cfg.search)),
            }
        )
    ends = trial_ends(cfg)
    for trial in trials:
        if trial["trial"] in ends:
            trial["end"] = ends[trial["trial"]]
    trials.sort(key=lambda t: t["start"])
    return {
        "hyperparameters": best["hyperparameters"],
        "best_val_f1": best["validation_metrics"]["eval_f1"],
        "test_metrics": best["test_metrics"],
        "checkpoint": best["checkpoint"],
        "refit": best.get("refit"),
        "payoff": {key: best.get(key) for key in PAYOFF_KEYS},
        "evals": [e for t in trials for e in t["evals"]],
        "trials": trials,
        "threads": search["config"]["resources"]["cpus_per_worker"],
        "started": started,
        "wall_s": ended - started,
    }


if __name__ == "__main__":
    main()
