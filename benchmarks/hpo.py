"""finetune-hpo through its CLI, then its numbers read back from the search's own records.

Per trial: the trial's slot (its start to the next trial's start: trials run one at a time)
minus its time inside training steps and evaluation is its orchestration overhead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ray.tune import ExperimentAnalysis

from benchmarks.common import cli_args, parse_args, write_result
from search.layout import BEST_MODEL, RESULT_FILE, SEARCH_FILE


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    output = args.out / "hpo-search"
    started = time.time()
    command = [
        sys.executable,
        "-m",
        "search.run",
        *cli_args(args.setting),
        "--output",
        str(output),
        "--overwrite",
    ]
    subprocess.run(command, check=True)
    write_result(args.out, "hpo", collect(output, started, time.time()))


def collect(output: Path, started: float, ended: float) -> dict:
    search = json.loads((output / SEARCH_FILE).read_text())
    best = json.loads((output / BEST_MODEL / RESULT_FILE).read_text())
    analysis = ExperimentAnalysis(str(output / "ray_results" / search["name"]))
    trials = []
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        if frame is None or frame.empty:
            continue
        first, last = frame.iloc[0], frame.iloc[-1]
        trials.append(
            {
                "trial": trial.trial_id,
                "batch_size": trial.config["batch_size"],
                "start": float(last["timestamp"] - last["time_total_s"]),
                "last_report": float(last["timestamp"]),
                "epochs_run": int(last["training_iteration"]),
                **{
                    k: float(last[k])
                    for k in ("time_train_s", "time_eval_s", "tokens_trained", "tokens_computed")
                },
                **{
                    k: float(first[k])
                    for k in ("loop_started_at", "training_started_at")
                    if k in frame
                },
                "evals": [
                    {"time": float(t), "eval_f1": float(f)}
                    for t, f in zip(frame["timestamp"], frame["eval_f1"], strict=True)
                ],
            }
        )
    trials.sort(key=lambda t: t["start"])
    # The last trial's slot would run into the export, so it has none.
    for this, following in zip(trials, trials[1:], strict=False):
        this["slot_s"] = following["start"] - this["start"]
    return {
        "hyperparameters": best["hyperparameters"],
        "best_val_f1": best["validation_metrics"]["eval_f1"],
        "test_metrics": best["test_metrics"],
        "evals": [e for t in trials for e in t["evals"]],
        "trials": trials,
        "started": started,
        "wall_s": ended - started,
    }


if __name__ == "__main__":
    main()
