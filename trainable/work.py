"""What a Ray Train worker is asked to do, typed: the Tune trial (or the refit) writes it, the
worker's loop (trainable/train_loop.py) reads it, through trainable/worker.py."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from trainable.config import Config

WORK_KEY = "work"  # the one key of Ray Train's train_loop_config
REFIT_PREFIX = "refit-"


class Mode(enum.Enum):
    TRIAL = "trial"  # evaluate, checkpoint and report every epoch; resumes from a checkpoint
    REFIT = (
        "refit"  # train on all of `splits["train"]`, stop after `stop_after_epochs`, report once
    )


@dataclass
class Work:
    mode: Mode
    config: Config
    hyperparameters: dict[str, Any]
    splits_ref: Any  # a ray.ObjectRef to the tokenized DatasetDict
    stop_after_epochs: int | None = None  # REFIT: the epoch the selected checkpoint was taken at

    def as_loop_config(self) -> dict[str, Any]:
        return {WORK_KEY: self}


@dataclass(frozen=True)
class SlotWork:
    """What a warm worker's Train run is asked to do: serve trials from the dispatcher
    (trainable/slot.py)."""

    dispatcher: str  # the dispatcher actor's name
    slot: int
    checkpoint_storage: str  # the search's; each trial's folder is named after its id

    def as_loop_config(self) -> dict[str, Any]:
        return {WORK_KEY: self}


def refit_id(trial_id: str, epoch: int) -> str:
    """A refit's name, on a warm worker or in a Train run of its own, and its folder's in the
    search's checkpoint storage: a search resumed after its driver died during the refit
    finds a finished one there."""
    return f"{REFIT_PREFIX}{trial_id}-{epoch}"
