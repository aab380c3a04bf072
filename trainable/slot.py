"""A warm worker: one Ray Train worker that trains the search's trials one after another.

The worker imports torch and transformers once, then takes trial after trial from the
dispatcher (`trainable/dispatcher.py`), each as a cold trial would train (`trainable/
train_loop.py`). Each trial's checkpoints and Train snapshot go to its own folder in the
search's checkpoint storage, in the layout a Train run of its own would leave, written with Ray
Train's own StorageContext and CheckpointManager: the refit, the pruner, the records and a
resumed search read them as they read a cold trial's.
"""

from __future__ import annotations

import asyncio
import gc
import traceback

import ray
import ray.train
import torch
from ray.train import CheckpointConfig
from ray.train.v2._internal.execution.checkpoint.checkpoint_manager import CheckpointManager
from ray.train.v2._internal.execution.storage import StorageContext
from ray.train.v2._internal.execution.training_report import _TrainingReport
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

from trainable.callbacks import RefitControl
from trainable.failures import RECURRING
from trainable.reports import TrialFolder
from trainable.train_loop import run
from trainable.work import SlotWork


def serve(work: SlotWork) -> None:
    dispatcher = ray.get_actor(work.dispatcher)
    context = ray.get_runtime_context()
    me, node = context.current_actor, context.get_node_id()
    while (assignment := ray.get(dispatcher.take.remote(work.slot, me, node))) is not None:
        trial_id, trial_work = assignment
        reports = SlotReports(dispatcher, trial_id, work.checkpoint_storage, work.slot)
        try:
            run(trial_work, reports)
        except Exception as exc:  # the trial fails (or is tried again), the worker goes on
            reason = traceback.format_exception_only(exc)[-1].strip()
            recurring = isinstance(exc, RECURRING)
            ray.get(dispatcher.failed.remote(work.slot, trial_id, reason, recurring))
        else:
            ray.get(dispatcher.done.remote(work.slot, trial_id))
        finally:
            gc.collect()  # the trial's model and Trainer, before the next one's
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


class SlotReports:
    """A trial's reports on a warm worker: its checkpoints in its own folder, registered with
    Ray Train's CheckpointManager as its own Train run would, its epochs relayed to Tune
    through the dispatcher. A refit's, the same, relayed to the search's driver."""

    def __init__(self, dispatcher, trial_id: str, checkpoint_storage: str, slot: int):
        self.dispatcher = dispatcher
        self.trial_id = trial_id
        self.slot = slot
        self.storage = StorageContext(storage_path=checkpoint_storage, experiment_dir_name=trial_id)

    def refit_control(self, cpus_per_slot: int | None) -> RefitControl:
        def ask() -> tuple[bool, int]:
            return ray.get(self.dispatcher.refit_control.remote(self.trial_id, self.slot))

        return RefitControl(ask, cpus_per_slot)

    def folder(self) -> TrialFolder:
        return TrialFolder(self.storage.storage_filesystem, self.storage.experiment_fs_path)

    def restored(self) -> ray.train.Checkpoint | None:
        latest = _manager(self.storage).latest_checkpoint_result
        return latest.checkpoint if latest is not None else None

    def report(self, metrics: dict, checkpoint: ray.train.Checkpoint | None) -> bool:
        if checkpoint is not None:
            name = StorageContext.make_default_checkpoint_dir_name()
            checkpoint = self.storage.persist_current_checkpoint(checkpoint, name)
            asyncio.run(_register(self.storage, _TrainingReport(checkpoint, metrics, False)))
            metrics = {**metrics, CHECKPOINT_PATH_KEY: checkpoint.path}
        return ray.get(self.dispatcher.report.remote(self.trial_id, metrics))


def _manager(storage: StorageContext) -> CheckpointManager:
    """The trial's checkpoint manager, its state read back from the trial's snapshot. Every
    checkpoint is kept: the search's CheckpointPruner chooses which to delete."""
    return CheckpointManager(CheckpointConfig(num_to_keep=None), storage)


async def _register(storage: StorageContext, report: _TrainingReport) -> None:
    # Inside an event loop: the manager wakes its waiters with an asyncio task.
    _manager(storage).register_checkpoint(report)
