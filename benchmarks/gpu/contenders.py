"""The GPU benchmark's contenders: what each runs, on which shared settings, its share of the
time budget, and how a run is described in its tables (light: no heavy imports).

Every contender gets the same data, model, space, seed, precision and trial count, as the
search's own `--set key=value` overrides; the peer takes them too, so its config is the
searches' config.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Narrower than the default space (batch 8-32, 2-4 epochs), so that the three contenders fit
# 8 minutes; the trial count stays.
SPACE = {"space.epochs": [1, 2], "space.batch_size": [16, 32]}
# HF's default learning rate, at the point of the space nearest HF's batch 8 and 3 epochs.
INITIAL_POINT = {"learning_rate": 5.0e-5, "batch_size": 16, "epochs": 2}


@dataclass(frozen=True)
class Contender:
    label: str
    weight: float  # its share of the budget left, against the contenders still to run


# In the order they run: the numbers that matter most first.
CONTENDERS = {
    "packed": Contender("finetune-hpo, trials packed on the GPU", 45),
    "peer": Contender("HF hyperparameter_search, in-process", 35),
    "single": Contender("finetune-hpo, one trial at a time", 20),
}


def settings(trials: int, precision: str, seed: int) -> dict[str, Any]:
    """What every contender shares, as overrides of the search's config."""
    return {
        "data.source": "embedded",
        "model.name": "embedded",
        "seed": seed,
        "search.trials": trials,
        **SPACE,
        "search.initial_points": [INITIAL_POINT],
        "train.precision": precision,
        # The peer exports its best trial's checkpoint; so do the searches, which also spares
        # them the refit's Train run.
        "search.refit": False,
    }


def command(name: str, shared: dict[str, Any], output: Path) -> list[str]:
    """The contender's command line; `output`: its folder."""
    sets = [arg for key, value in shared.items() for arg in ("--set", f"{key}={_yaml(value)}")]
    if name == "peer":
        return [sys.executable, "-m", "benchmarks.gpu.peer", "--out", str(output), *sets]
    own = {
        "packed": (
            "--max-concurrent",
            str(shared["search.trials"]),
            "resources.trials_per_gpu=auto",
        ),
        "single": ("--max-concurrent", "1", "resources.trials_per_gpu=1"),
    }[name]
    return [
        *(sys.executable, "-m", "search.run", own[0], own[1], "--set", own[2]),
        *(*sets, "--output", str(output), "--overwrite"),
    ]


def _yaml(value: Any) -> str:
    """A value as `--set` reads it (YAML); JSON is YAML, and the strings here are plain words."""
    return value if isinstance(value, str) else json.dumps(value)


def time_share(left_s: float, weights: list[float]) -> float:
    """The first contender's share of `left_s`, against the weights of those still to run: what
    one contender leaves unused goes to the later ones."""
    return max(0.0, left_s) * weights[0] / sum(weights)


def notes(busy_source: str | None) -> list[str]:
    """What the table's reader needs to know of how it was measured."""
    return [
        "Same for every contender: the embedded SMS data (all of it) and all-MiniLM-L6-v2, the "
        "seed, the precision, the trial count and the space. The space is narrower than the "
        "default (batch_size [8, 16, 32], epochs [2, 3, 4]) so that the three fit the budget; "
        "the trial count is not cut.",
        "Both searches run with search.refit=false: their exported model is the best trial's "
        "checkpoint, as the peer's is, and a refit (one more Train run) would not fit.",
        f"The searches try learning rate {INITIAL_POINT['learning_rate']:g}, batch "
        f"{INITIAL_POINT['batch_size']}, {INITIAL_POINT['epochs']} epochs first "
        "(search.initial_points); the peer samples with "
        "TPE from its first trial, prunes with Optuna's median pruner and keeps HF's defaults "
        "(random batches; the searches group them by length), as benchmarks.peer does on the "
        "CPU.",
        "Trials per GPU-hour: the trials that ended, over the time from the first trial's start "
        "to the last one's end. Fixed cost: an ended trial's wall time (searches: Tune's trial "
        "start to the end of its MLflow run; peer: its model_init call to its end) less its "
        "time inside training steps and evaluation (WorkCallback), median.",
        f"GPU busy: NVML's busy percent (the time a kernel ran), read through {busy_source} about "
        "once a second over the contender's wall; GPU memory in use: every process on the GPU."
        if busy_source
        else "GPU busy and memory in use: unknown, NVML could not be read here (see the busy "
        "source in the JSON).",
        "Each contender got its share of the budget left when it started (weights "
        + ", ".join(f"{name} {c.weight:g}" for name, c in CONTENDERS.items())
        + "). While one ran, the benchmark read the previous one's records.",
    ]


def facts_for(
    args: argparse.Namespace, gpu: str, busy_source: str, busy_measured: bool, shared: dict
) -> dict:
    """What the run was: the GPU, the date, the settings, the labels, commands and notes."""
    from trainable.config_file import load_config

    cfg = load_config(None, shared)  # validated here, before any contender starts
    space = cfg.space.declared()
    low, high = space["learning_rate"]
    return {
        "gpu": gpu,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "setup": (
            f"{args.trials} trials each, {args.precision}, seed {args.seed}; space learning_rate "
            f"log-uniform [{low:g}, {high:g}], batch_size {space['batch_size']}, epochs "
            f"{space['epochs']}; budget {args.budget_s:.0f} s; {os.cpu_count()} CPUs; "
            f"{versions()}"
        ),
        "labels": {name: contender.label for name, contender in CONTENDERS.items()},
        "busy_source": busy_source,  # where busy shares were read, or why they were not
        "busy_measured": busy_measured,
        "settings": shared,
        "commands": {
            name: shlex.join(["python3", *command(name, shared, args.work / name)[1:]])
            for name in args.only
        },
        "notes": notes(busy_source if busy_measured else None),
    }


def versions() -> str:
    from importlib.metadata import version

    found = []
    for package in ("torch", "transformers", "ray", "optuna", "mlflow"):
        try:
            found.append(f"{package} {version(package)}")
        except Exception:
            found.append(f"{package} ?")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except Exception:
        commit = ""
    return ", ".join(found) + f"; commit {commit or 'unknown'}"
