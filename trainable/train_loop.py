"""The worker loop: one HF Trainer run per trial, reporting every epoch to Ray Train.

Runs on each Ray Train worker. Eval and save strategies are both per epoch because
`RayTrainReportCallback` reports (metrics and checkpoint) only when the Trainer saves.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from trainable.config import Config
from trainable.metrics import compute_metrics
from trainable.model import load_model, load_tokenizer

OBJECTIVE = "eval_objective"
# Weight of the tie-breaker in the objective. Validation F1 moves in steps of ~0.01 (about 50
# spam messages), and eval loss stays well under 1, so the tie-breaker only orders equal scores.
TIE_BREAK_WEIGHT = 1e-3


@dataclass
class Hyperparameters:
    learning_rate: float
    batch_size: int
    epochs: int

    @classmethod
    def from_trial(cls, params: dict[str, Any]) -> Hyperparameters:
        return cls(float(params["learning_rate"]), int(params["batch_size"]), int(params["epochs"]))


def objective(metrics: dict[str, float], metric: str, mode: str, tie_breaker: str | None) -> float:
    """The score trials are ranked by: the metric, ties broken by the lower tie-breaker."""
    value = metrics[metric]
    if tie_breaker is None:
        return value
    nudge = TIE_BREAK_WEIGHT * metrics[tie_breaker]
    return value - nudge if mode == "max" else value + nudge


class ObjectiveCallback(TrainerCallback):
    """Adds `eval_objective` to each evaluation's logged metrics, before they are reported."""

    def __init__(self, cfg: Config):
        self.search = cfg.search

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        score = objective(metrics, self.search.metric, self.search.mode, self.search.tie_breaker)
        metrics[OBJECTIVE] = score
        state.log_history[-1][OBJECTIVE] = score


def build_training_args(cfg: Config, hp: Hyperparameters, output_dir: str) -> TrainingArguments:
    use_gpu = bool(cfg.resources.use_gpu)
    return TrainingArguments(
        output_dir=output_dir,
        learning_rate=hp.learning_rate,
        per_device_train_batch_size=hp.batch_size,
        num_train_epochs=hp.epochs,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup_ratio,  # a float below 1 is a fraction of all steps
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=1,
        save_only_model=not cfg.train.save_optimizer_state,
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        fp16=use_gpu and cfg.train.precision == "fp16",
        bf16=use_gpu and cfg.train.precision == "bf16",
        use_cpu=not use_gpu,
        # One worker per trial still gets a DDP wrapper from Ray Train; every parameter is
        # used, so the unused-parameter search would only cost time.
        ddp_find_unused_parameters=False,
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
    )


def build_trainer(cfg: Config, hp: Hyperparameters, splits, output_dir: str) -> Trainer:
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, cfg.data.labels, tokenizer)
    trainer = Trainer(
        model=model,
        args=build_training_args(cfg, hp, output_dir),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[ObjectiveCallback(cfg), RayTrainReportCallback()],
    )
    return prepare_trainer(trainer)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    cfg: Config = loop_config["config"]
    hp = Hyperparameters.from_trial(loop_config["hyperparameters"])
    splits = ray.get(loop_config["splits_ref"])
    torch.set_num_threads(cfg.resources.cpus_per_worker)

    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        trainer = build_trainer(cfg, hp, splits, output_dir)
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            trainer.train()
            return
        with checkpoint.as_directory() as restored:
            trainer.train(
                resume_from_checkpoint=str(Path(restored) / RayTrainReportCallback.CHECKPOINT_NAME)
            )
