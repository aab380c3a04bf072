"""Where a trial on a worker reports its epochs and finds its last checkpoint.

A trial reports each epoch's metrics with its checkpoint, and a restarted one resumes from the
last checkpoint it reported. In a Ray Train run of its own (`TrainRunReports`) Ray Train keeps
both; on a warm worker that trains one trial after another (`trainable/slot.py`) the worker
keeps them in the same layout itself, and the trial can be told to stop after any epoch.
Each save reports through `trainable.callbacks.ReportEachSave`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow.fs
import ray.train
from ray.train.huggingface.transformers import RayTrainReportCallback
from transformers import TrainerCallback

# Inside a reported checkpoint, the HF Trainer's checkpoint folder (as Ray's callback names it).
HF_CHECKPOINT = RayTrainReportCallback.CHECKPOINT_NAME


@dataclass(frozen=True)
class TrialFolder:
    """A trial's folder in the search's checkpoint storage: its checkpoints, its Train
    snapshot and its predictions."""

    filesystem: pyarrow.fs.FileSystem
    path: str


class TrialReports(Protocol):
    def folder(self) -> TrialFolder: ...

    def restored(self) -> ray.train.Checkpoint | None:
        """The last checkpoint the trial reported before this run of it; None when new."""

    def report(self, metrics: dict, checkpoint: ray.train.Checkpoint | None) -> bool:
        """Reports an epoch; False when the search stopped the trial there."""

    def refit_control(self, cpus_per_slot: int | None) -> TrainerCallback | None:
        """A refit's callback that stops it when the search drops it and sets its CPU threads
        (`cpus_per_slot` each slot, None: leave them); None where nothing steers the refit."""


class TrainRunReports:
    """A trial that is a Ray Train run of its own: Train keeps its reports and restores it."""

    def folder(self) -> TrialFolder:
        storage = ray.train.get_context().get_storage()
        return TrialFolder(storage.storage_filesystem, storage.experiment_fs_path)

    def restored(self) -> ray.train.Checkpoint | None:
        return ray.train.get_checkpoint()

    def report(self, metrics: dict, checkpoint: ray.train.Checkpoint | None) -> bool:
        # A stopped trial's Train run is torn down by Tune: a report always goes on.
        ray.train.report(metrics, checkpoint=checkpoint)
        return True

    def refit_control(self, cpus_per_slot: int | None) -> None:
        return None  # a refit of its own holds its CPUs from the start, and runs to the end
