"""The worker loop: one HF Trainer run per trial, reporting every epoch to Ray Train.

Runs on each Ray Train worker. Eval and save strategies are both per epoch because
`RayTrainReportCallback` reports (metrics and checkpoint) only when the Trainer saves.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
from transformers import (
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer import TRAINER_STATE_NAME

from trainable.config import Config
from trainable.loss import BalancedLoss
from trainable.metrics import ClassificationMetrics
from trainable.model import load_model, load_tokenizer


@dataclass
class Hyperparameters:
    learning_rate: float
    batch_size: int
    epochs: int

    @classmethod
    def from_trial(cls, params: dict[str, Any]) -> Hyperparameters:
        return cls(float(params["learning_rate"]), int(params["batch_size"]), int(params["epochs"]))


class FiniteLossCallback(TrainerCallback):
    """Fails the trial when its training loss turns NaN or infinite: the HF Trainer would train
    on (its log filter even hides the NaN), and every later epoch would score garbage."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss ({loss}) in epoch {math.ceil(state.epoch)}: "
                "lower space.learning_rate, or train in fp32"
            )


class WorkCallback(TrainerCallback):
    """Adds the trial's time inside training steps and evaluation, and its tokens, to each
    evaluation's metrics: throughput, and the orchestration overhead around the work, follow.

    `tokens_trained` counts message tokens; `tokens_computed` counts them with the padding
    the model also ran on; both, and the times, are cumulative over the trial's epochs.
    `loop_started_at` and `training_started_at` (Unix times) place the worker's start-up.
    """

    def __init__(self, loop_started_at: float | None = None):
        self.loop_started_at = loop_started_at

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.work = {"time_train_s": 0.0, "time_eval_s": 0.0}
        if self.loop_started_at is not None:
            self.work["loop_started_at"] = self.loop_started_at
            self.work["training_started_at"] = time.time()
        self.tokens_per_epoch = sum(map(sum, train_dataloader.dataset["attention_mask"]))

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.work["time_train_s"] += time.perf_counter() - self.step_started

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.work["time_eval_s"] += metrics["eval_runtime"]
        counts = {
            "tokens_trained": round(self.tokens_per_epoch * state.epoch),
            "tokens_computed": state.num_input_tokens_seen,
        }
        metrics.update(self.work, **counts)
        state.log_history[-1].update(self.work, **counts)


class StopAfterEpochs(TrainerCallback):
    """Ends training after `epochs` epochs of a schedule planned for more: a refit stops where
    the selected checkpoint stopped, on the same learning-rate curve."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if round(state.epoch) >= self.epochs:
            control.should_training_stop = True


def build_training_args(
    cfg: Config, hp: Hyperparameters, output_dir: str, per_epoch: bool = True
) -> TrainingArguments:
    """`per_epoch`: evaluate and save (which reports to Ray Train) after every epoch."""
    use_gpu = bool(cfg.resources.use_gpu)
    return TrainingArguments(
        output_dir=output_dir,
        learning_rate=hp.learning_rate,
        per_device_train_batch_size=hp.batch_size,
        num_train_epochs=hp.epochs,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup_ratio,  # a float below 1 is a fraction of all steps
        eval_strategy="epoch" if per_epoch else "no",
        save_strategy="epoch" if per_epoch else "no",
        logging_strategy="epoch",
        logging_nan_inf_filter=False,  # a NaN loss must show, for FiniteLossCallback
        save_total_limit=1,
        save_only_model=not cfg.train.save_optimizer_state,
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        fp16=use_gpu and cfg.train.precision == "fp16",
        bf16=use_gpu and cfg.train.precision == "bf16",
        use_cpu=not use_gpu,
        # One worker per trial still gets a DDP wrapper from Ray Train; every parameter is
        # used, so the unused-parameter search would only cost time.
        ddp_find_unused_parameters=False,
        include_num_input_tokens_seen="all",
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
    )


def build_trainer(
    cfg: Config, hp: Hyperparameters, splits, output_dir: str, callbacks: list[TrainerCallback]
) -> Trainer:
    """A Trainer on `splits["train"]`; it evaluates on `splits["validation"]` when there is one."""
    tokenizer = load_tokenizer(cfg.model)
    labels = cfg.data.labels
    model = load_model(cfg.model, labels, tokenizer, seed=cfg.seed)
    evaluates = "validation" in splits
    weighted = cfg.train.class_weights == "balanced"
    trainer = Trainer(
        model=model,
        args=build_training_args(cfg, hp, output_dir, per_epoch=evaluates),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"] if evaluates else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=ClassificationMetrics(labels, cfg.data.positive_label),
        compute_loss_func=BalancedLoss(splits["train"]["label"], len(labels)) if weighted else None,
        callbacks=[FiniteLossCallback(), *callbacks],
    )
    return prepare_trainer(trainer)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """A trial (per-epoch evaluation, checkpoints and reports) or, given `refit_epochs`, a refit."""
    loop_started_at = time.time()
    cfg: Config = loop_config["config"]
    hp = Hyperparameters.from_trial(loop_config["hyperparameters"])
    splits = ray.get(loop_config["splits_ref"])
    torch.set_num_threads(cfg.resources.cpus_per_worker)

    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        if "refit_epochs" in loop_config:
            refit(cfg, hp, splits, loop_config["refit_epochs"], output_dir)
            return
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            trial_trainer(cfg, hp, splits, output_dir, loop_started_at).train()
            return
        with checkpoint.as_directory() as restored:
            hf_checkpoint = Path(restored) / RayTrainReportCallback.CHECKPOINT_NAME
            final = finished_metrics(hf_checkpoint)
            if final is not None:
                # The trial trained to its end before the search was killed, so nothing is left
                # to train; without this report the restored trial would end with no result.
                ray.train.report(final, checkpoint=checkpoint)
                return
            trainer = trial_trainer(cfg, hp, splits, output_dir, loop_started_at)
            trainer.train(resume_from_checkpoint=str(hf_checkpoint))


def trial_trainer(
    cfg: Config, hp: Hyperparameters, splits, output_dir: str, loop_started_at: float
) -> Trainer:
    callbacks = [WorkCallback(loop_started_at), RayTrainReportCallback()]
    return build_trainer(cfg, hp, splits, output_dir, callbacks)


def refit(cfg: Config, hp: Hyperparameters, splits, epochs: int, output_dir: str) -> None:
    """Trains on all of `splits["train"]` (the search's train and validation messages) for
    `epochs` epochs, then reports the model as the run's one checkpoint."""
    restored = ray.train.get_checkpoint()
    if restored is not None:
        # Only a finished refit saves, so a restored run has nothing left to train.
        ray.train.report({"restored": True}, checkpoint=restored)
        return
    trainer = build_trainer(cfg, hp, splits, output_dir, [StopAfterEpochs(epochs)])
    trainer.train()
    metrics = {
        "epochs_trained": round(trainer.state.epoch, 3),
        "steps": trainer.state.global_step,
        "train_loss": trainer.state.log_history[-1].get("train_loss"),
    }
    with tempfile.TemporaryDirectory(prefix="refit-") as saved:
        checkpoint = None
        if trainer.args.should_save:  # rank 0
            trainer.save_model(str(Path(saved) / RayTrainReportCallback.CHECKPOINT_NAME))
            checkpoint = ray.train.Checkpoint.from_directory(saved)
        ray.train.report(metrics, checkpoint=checkpoint)


def finished_metrics(hf_checkpoint: Path) -> dict[str, float] | None:
    """The last evaluation of a checkpoint taken at the end of training; None if unfinished."""
    state = TrainerState.load_from_json(str(hf_checkpoint / TRAINER_STATE_NAME))
    if state.global_step < state.max_steps:
        return None
    evaluations = [log for log in state.log_history if "eval_loss" in log]
    return evaluations[-1] if evaluations else None
