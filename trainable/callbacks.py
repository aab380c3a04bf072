"""Trainer callbacks of the worker loop: a trial that diverged fails, each evaluation
carries the trial's work (time and tokens) and keeps its predictions in a file, each save
reports the epoch, a refit stops where the selected checkpoint did (and, on a warm worker,
when the search drops it)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray.train
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from transformers.training_args import ParallelMode

from trainable import predictions
from trainable.metrics import ClassificationMetrics
from trainable.reports import HF_CHECKPOINT, TrialFolder, TrialReports

# Logged losses (one per epoch) that may be non-finite in a row while the weights stay finite:
# under fp16 the gradient scaler skips an overflowing step and lowers its scale, so a loss that
# overflowed is no sign that the trial diverged.
NON_FINITE_LOGS_TOLERATED = 2


def diverged(non_finite_losses_in_a_row: int, weights_finite: bool) -> bool:
    """Whether a trial whose last logged loss was not finite has diverged: its weights are no
    longer finite, or its loss has stayed non-finite longer than a skipped step explains."""
    return not weights_finite or non_finite_losses_in_a_row > NON_FINITE_LOGS_TOLERATED


def weights_finite(model) -> bool:
    import torch

    return bool(torch.stack([p.isfinite().all() for p in model.parameters()]).all())


class FiniteLossCallback(TrainerCallback):
    """Fails a trial that diverged (see `diverged`): the HF Trainer would train on (its log
    filter, off in trainable/trainer.py, even hides the NaN), and every later epoch would score
    garbage. The weights are looked at only after a non-finite loss."""

    def __init__(self):
        self.in_a_row = 0

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        self.in_a_row = 0 if math.isfinite(loss) else self.in_a_row + 1
        if self.in_a_row and diverged(self.in_a_row, weights_finite(model)):
            raise FloatingPointError(
                f"non-finite training loss ({loss}) in epoch {math.ceil(state.epoch)}, "
                f"{self.in_a_row} logged loss(es) in a row: "
                "lower space.learning_rate, or train in fp32"
            )


class WorkCallback(TrainerCallback):
    """Adds the trial's time inside training steps and evaluation, and its tokens, to each
    evaluation's metrics: throughput, and the orchestration overhead around the work, follow.

    `tokens_trained` counts message tokens; `tokens_computed` counts them with the padding
    the model also ran on; both, and the times, are cumulative over the trial's epochs.
    `loop_started_at` and `training_started_at` (Unix times) place the worker's start-up, and
    `worker_pid` names the process that trained it (a warm worker trains several trials).
    `ddp_processes` is the size of the torch process group the Trainer trains in: 0 when it
    trains alone, as a one-worker trial should (trainable/trial.py).
    """

    def __init__(self, loop_started_at: float | None = None, carried: dict | None = None):
        """`carried`: the `work` of an earlier train() call this one continues (a seed of
        search.repeats trains one epoch per call)."""
        self.loop_started_at = loop_started_at
        self.carried = carried

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.work = dict(self.carried or {"time_train_s": 0.0, "time_eval_s": 0.0})
        if self.loop_started_at is not None and self.carried is None:
            self.work["loop_started_at"] = self.loop_started_at
            self.work["training_started_at"] = time.time()
            self.work["worker_pid"] = os.getpid()
        # Unpadded, a message's tokens are its input_ids (trainable/collate.py, TokenBatches).
        self.tokens_per_epoch = int(train_dataloader.dataset.lengths.sum())

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.work["time_train_s"] += time.perf_counter() - self.step_started

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.work["time_eval_s"] += metrics["eval_runtime"]
        distributed = args.parallel_mode is ParallelMode.DISTRIBUTED
        counts = {
            "tokens_trained": round(self.tokens_per_epoch * state.epoch),
            "tokens_computed": state.num_input_tokens_seen,
            "ddp_processes": args.world_size if distributed else 0,
        }
        if args.device.type == "cuda":  # checks search/gpu_share.py's estimate
            import torch

            counts["gpu_peak_gib"] = torch.cuda.max_memory_reserved(args.device) / 2**30
        metrics.update(self.work, **counts)
        state.log_history[-1].update(self.work, **counts)


class SavePredictions(TrainerCallback):
    """Writes each evaluation's predicted and true classes (what `metrics` last saw) to the
    trial's folder in the search's checkpoint storage (trainable/predictions.py), before the
    epoch's report: the search's bootstrap reads them there."""

    def __init__(self, metrics: ClassificationMetrics, folder: TrialFolder):
        self.metrics = metrics
        self.folder = folder

    def on_evaluate(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.metrics.last is None:
            return  # every rank evaluates on the gathered predictions; one writes them
        content = predictions.encode(*self.metrics.last, num_classes=len(self.metrics.labels))
        predictions.write(self.folder.filesystem, self.folder.path, round(state.epoch), content)


class StopAfterEpochs(TrainerCallback):
    """Ends training after `epochs` epochs of a schedule planned for more: a refit stops where
    the selected checkpoint stopped, on the same learning-rate curve."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if round(state.epoch) >= self.epochs:
            control.should_training_stop = True


class RefitControl(TrainerCallback):
    """A refit on a warm worker (`search/warm_refit.py`), asking the search every few seconds
    (`ask`: go on?, and how many slots' CPUs it may use) whether it still wants the refit, and
    taking the CPU threads of the slots that wait idle once the trials are over.

    A refit whose thread count changes while it trains sums in a different order from then
    on: its weights differ from a refit on a fixed thread count in the last bits, as those of
    any two runs with different thread counts do."""

    ASK_EVERY_S = 2.0

    def __init__(self, ask: Callable[[], tuple[bool, int]], cpus_per_slot: int | None):
        self.ask = ask
        self.cpus_per_slot = cpus_per_slot  # None: the refit trains on a GPU, threads stay
        self.dropped = False
        self.asked_at = -math.inf

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.asked_at < self.ASK_EVERY_S:
            return
        self.asked_at = time.monotonic()
        wanted, slots = self.ask()
        if not wanted:
            self.dropped = True
            control.should_training_stop = True
        elif self.cpus_per_slot and slots * self.cpus_per_slot != torch.get_num_threads():
            torch.set_num_threads(slots * self.cpus_per_slot)


class LastReport(TrainerCallback):
    """Keeps what a trial reports at each save (every log merged, the latest value of each key
    winning) for a caller that reports itself."""

    def on_save(self, args, state, control, **kwargs):
        self.metrics = {key: value for log in state.log_history for key, value in log.items()}


class ReportEachSave(LastReport):
    """What `RayTrainReportCallback` does at each save (every log merged, the Trainer's last
    checkpoint copied into the report's), reporting to `reports`, and ending the training when
    the search stopped the trial."""

    def __init__(self, reports: TrialReports):
        self.reports = reports

    def on_save(self, args, state, control, **kwargs):
        super().on_save(args, state, control, **kwargs)
        with tempfile.TemporaryDirectory(prefix="report-") as saved:
            last = get_last_checkpoint(args.output_dir)
            checkpoint = None
            if last is not None:
                shutil.copytree(last, Path(saved, HF_CHECKPOINT))
                checkpoint = ray.train.Checkpoint.from_directory(saved)
            if not self.reports.report(self.metrics, checkpoint):
                control.should_training_stop = True
