"""The worker loop: one HF Trainer run per trial (or the refit), reporting to Ray Train.

Runs on each Ray Train worker (`trainable.work` hands it its Work). Eval and save strategies
are both per epoch because `RayTrainReportCallback` reports (metrics and checkpoint) only when
the Trainer saves.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ray
import ray.train
import torch
from datasets import concatenate_datasets
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
from transformers import (
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer import TRAINER_STATE_NAME

from trainable.callbacks import FiniteLossCallback, StopAfterEpochs, WorkCallback
from trainable.config import Config
from trainable.hyperparameters import training_arguments, typed
from trainable.loss import BalancedLoss
from trainable.metrics import ClassificationMetrics
from trainable.model import load_model, load_tokenizer
from trainable.work import Mode, Work


def build_training_args(
    cfg: Config, hp: dict, output_dir: str, per_epoch: bool = True
) -> TrainingArguments:
    """`hp`: the sampled hyperparameters. `per_epoch`: evaluate and save (which reports to
    Ray Train) after every epoch."""
    use_gpu = bool(cfg.resources.use_gpu)
    return TrainingArguments(
        output_dir=output_dir,
        **training_arguments(hp),
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
    cfg: Config, hp: dict, splits, output_dir: str, callbacks: list[TrainerCallback]
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
        compute_metrics=ClassificationMetrics(
            labels, cfg.data.positive_label, keep_predictions=True
        ),
        compute_loss_func=BalancedLoss(splits["train"]["label"], len(labels)) if weighted else None,
        callbacks=[FiniteLossCallback(), *callbacks],
    )
    return prepare_trainer(trainer)


def run(work: Work) -> None:
    """A trial, or a refit, on this worker."""
    loop_started_at = time.time()
    cfg, hp = work.config, typed(work.hyperparameters)
    splits = ray.get(work.splits_ref)
    torch.set_num_threads(cfg.resources.cpus_per_worker)
    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        try:
            if work.mode is Mode.REFIT:
                both = concatenate_datasets([splits["train"], splits["validation"]])
                refit(cfg, hp, {"train": both}, work.stop_after_epochs, output_dir)
            else:
                trial(cfg, hp, splits, output_dir, loop_started_at)
        except torch.OutOfMemoryError:
            # The trial fails alone, its reason one line that names the knobs.
            raise MemoryError(
                f"out of GPU memory with {cfg.resources.trials_sharing_a_gpu} trial(s) per GPU "
                f"at batch size {hp['batch_size']} and model.max_length "
                f"{cfg.model.max_length}: lower resources.trials_per_gpu, space.batch_size or "
                "model.max_length"
            ) from None


def trial(cfg: Config, hp: dict, splits, output_dir: str, loop_started_at: float) -> None:
    """Trains from the start, or from the checkpoint Ray Train restored; a trial restored
    after its last epoch replays its final report instead of training."""
    callbacks = [WorkCallback(loop_started_at), RayTrainReportCallback()]
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        build_trainer(cfg, hp, splits, output_dir, callbacks).train()
        return
    with checkpoint.as_directory() as restored:
        hf_checkpoint = Path(restored) / RayTrainReportCallback.CHECKPOINT_NAME
        final = finished_metrics(hf_checkpoint)
        if final is not None:
            # Nothing is left to train; without this report the restored trial would end
            # with no result.
            ray.train.report(final, checkpoint=checkpoint)
            return
        trainer = build_trainer(cfg, hp, splits, output_dir, callbacks)
        trainer.train(resume_from_checkpoint=str(hf_checkpoint))


def refit(cfg: Config, hp: dict, splits, epochs: int, output_dir: str) -> None:
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
