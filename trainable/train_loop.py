"""The worker loop: one HF Trainer run per trial (or the refit), reporting to Ray Train.

Runs on each Ray Train worker (`trainable.worker` hands it its Work); `trainable.trainer`
builds the Trainer, and `trainable.seeds` runs a trial of several seeds.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import ray
import ray.train
import torch
from datasets import concatenate_datasets
from transformers import TrainerState
from transformers.trainer import TRAINER_STATE_NAME

from trainable import seeds
from trainable.callbacks import ReportEachSave, StopAfterEpochs, WorkCallback
from trainable.config import Config
from trainable.device import check_precision, cpu_plan
from trainable.reports import HF_CHECKPOINT, TrialReports
from trainable.trainer import build_trainer
from trainable.work import Mode, Work


def run(work: Work, reports: TrialReports) -> None:
    """A trial, or a refit, on this worker, reporting to `reports`."""
    loop_started_at = time.time()
    cfg = work.config
    hp = cfg.space.typed(work.hyperparameters)
    check_precision(cfg)
    splits = ray.get(work.splits_ref)
    torch.set_num_threads(cpu_plan(bool(cfg.resources.use_gpu), cfg.resources.cpus_per_worker)[0])
    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        try:
            if work.mode is Mode.REFIT:
                both = concatenate_datasets([splits["train"], splits["validation"]])
                refit(cfg, hp, {"train": both}, work.stop_after_epochs, output_dir, reports)
            else:
                trial(cfg, hp, splits, output_dir, loop_started_at, reports)
        except torch.OutOfMemoryError:
            # The trial fails alone, its reason one line that names the knobs.
            raise MemoryError(
                f"out of GPU memory with {cfg.resources.trials_sharing_a_gpu} trial(s) per GPU "
                f"at batch size {hp['batch_size']} and model.max_length "
                f"{cfg.model.max_length}: lower resources.trials_per_gpu, space.batch_size or "
                "model.max_length"
            ) from None


def trial(
    cfg: Config, hp: dict, splits, output_dir: str, loop_started_at: float, reports: TrialReports
) -> None:
    """Trains from the start, or from the last checkpoint the trial reported; a trial restored
    after its last epoch replays its final report instead of training."""
    if cfg.search.repeats > 1:
        seeds.repeated_trial(cfg, hp, splits, output_dir, loop_started_at, reports)
        return
    callbacks = [WorkCallback(loop_started_at), ReportEachSave(reports)]
    checkpoint = reports.restored()
    folder = reports.folder()
    if checkpoint is None:
        build_trainer(cfg, hp, splits, output_dir, callbacks, predictions_to=folder).train()
        return
    with checkpoint.as_directory() as restored:
        hf_checkpoint = Path(restored) / HF_CHECKPOINT
        final = finished_metrics(hf_checkpoint)
        if final is not None:
            # Nothing is left to train; without this report the restored trial would end
            # with no result.
            reports.report(final, checkpoint)
            return
        trainer = build_trainer(cfg, hp, splits, output_dir, callbacks, predictions_to=folder)
        trainer.train(resume_from_checkpoint=str(hf_checkpoint))


def refit(
    cfg: Config, hp: dict, splits, epochs: int, output_dir: str, reports: TrialReports
) -> None:
    """Trains on all of `splits["train"]` (the search's train and validation messages) for
    `epochs` epochs, then reports the model as the run's one checkpoint."""
    restored = reports.restored()
    if restored is not None:
        # Only a finished refit saves, so a restored run has nothing left to train.
        reports.report({"restored": True}, restored)
        return
    threads = None if cfg.resources.use_gpu else cfg.resources.cpus_per_worker
    control = reports.refit_control(threads)
    callbacks = [StopAfterEpochs(epochs), *([control] if control else [])]
    trainer = build_trainer(cfg, hp, splits, output_dir, callbacks)
    trainer.train()
    if control is not None and control.dropped:
        return  # the search no longer wants it: nothing to save or report
    metrics = {
        "epochs_trained": round(trainer.state.epoch, 3),
        "steps": trainer.state.global_step,
        "train_loss": trainer.state.log_history[-1].get("train_loss"),
        "worker_pid": os.getpid(),
    }
    with tempfile.TemporaryDirectory(prefix="refit-") as saved:
        checkpoint = None
        if trainer.args.should_save:  # rank 0
            trainer.save_model(str(Path(saved) / HF_CHECKPOINT))
            checkpoint = ray.train.Checkpoint.from_directory(saved)
        reports.report(metrics, checkpoint)


def finished_metrics(hf_checkpoint: Path) -> dict[str, float] | None:
    """The last evaluation of a checkpoint taken at the end of training; None if unfinished."""
    state = TrainerState.load_from_json(str(hf_checkpoint / TRAINER_STATE_NAME))
    if state.global_step < state.max_steps:
        return None
    evaluations = [log for log in state.log_history if "eval_loss" in log]
    return evaluations[-1] if evaluations else None
