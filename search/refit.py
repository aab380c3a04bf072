"""Refit: the selected learning rate, batch size and epoch count, trained again on train +
validation, and exported instead of the trial's checkpoint.

Validation has done its job once it has chosen; its messages (a fifth of the search's training
data by default) then make the model better as training data. scikit-learn's `refit=True` does
the same. The test split stays out of both, so the reported test score is still untouched.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.train import Checkpoint

from search.cluster import running_alone
from search.placement import watching
from search.selection import BestTrial
from trainable.errors import last_line
from trainable.hyperparameters import describe
from trainable.storage import stored_uri
from trainable.trial import TrialSetup, fit, train_run
from trainable.work import Mode, Work, refit_id

WORKER_DETAILS = ("epochs_trained", "steps", "train_loss", "worker_pid")


@dataclass
class Refit:
    checkpoint: Checkpoint
    details: dict[str, Any]  # examples, epochs, WORKER_DETAILS, time_s, checkpoint


def refit_record(
    best: BestTrial, messages: int, metrics: dict, time_s: float, path: str, storage: str
) -> dict[str, Any]:
    """A finished refit's details, from what its worker reported (`metrics`) and where its
    checkpoint went (`path` on the filesystem of `storage`)."""
    return {
        "examples": messages,
        "epochs": best.epoch,
        **{k: metrics[k] for k in WORKER_DETAILS if k in metrics},
        "time_s": round(time_s, 1),
        "checkpoint": stored_uri(path, storage),
    }


def announce(best: BestTrial, messages: int) -> None:
    print(
        f"refit: {describe(best.hyperparameters)}, stopped after epoch {best.epoch}, on train + "
        f"validation ({messages} texts)",
        flush=True,
    )


def refit_best(best: BestTrial, setup: TrialSetup, messages: int) -> Refit | None:
    """The refit model's checkpoint, trained on the `messages` of train and validation; None
    (and a warning) when the refit fails, so the search still exports the selected trial's
    checkpoint."""
    hp = best.hyperparameters
    announce(best, messages)
    started = time.monotonic()
    free_cpus = ray.available_resources().get("CPU", 0)
    alone = dataclasses.replace(setup, config=running_alone(setup.config, free_cpus))
    # The worker joins train and validation itself: the search's splits are in the object
    # store already, and a second copy of them would only take its memory.
    work = Work(Mode.REFIT, alone.config, hp, setup.splits_ref, best.epoch)
    try:
        with watching():
            run = train_run(alone, work, name=refit_id(best.trial_id, best.epoch))
            result = fit(run, alone.config)
    except Exception as exc:  # a failed refit must not lose the search's result
        print(
            f"refit failed ({last_line(exc)}): exporting trial {best.trial_id}'s checkpoint",
            flush=True,
        )
        return None
    details = refit_record(
        best,
        messages,
        result.metrics,
        time.monotonic() - started,
        result.checkpoint.path,
        setup.config.storage_path,
    )
    print(f"refit done in {details['time_s']:.0f} s", flush=True)
    return Refit(result.checkpoint, details)
