"""The HF Trainer of a trial, a seed of one (`search.repeats`) or the refit: its arguments
from the config and the sampled hyperparameters, its model, data, metrics and loss.

Eval and save strategies are both per epoch because `RayTrainReportCallback` reports (metrics
and checkpoint) only when the Trainer saves.
"""

from __future__ import annotations

import datasets
import torch
from ray.train.huggingface.transformers import prepare_trainer
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from trainable.callbacks import FiniteLossCallback, SavePredictions
from trainable.config import Config
from trainable.data import LABEL, arrow_column, token_lengths
from trainable.hyperparameters import training_arguments
from trainable.loss import BalancedLoss
from trainable.metrics import ClassificationMetrics
from trainable.model import load_model, load_tokenizer


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
        # A seed of search.repeats resumes from its own checkpoint every epoch: exactly only
        # with the optimizer's state.
        save_only_model=not (cfg.train.save_optimizer_state or cfg.search.repeats > 1),
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        fp16=use_gpu and cfg.train.precision == "fp16",
        bf16=use_gpu and cfg.train.precision == "bf16",
        use_cpu=not use_gpu,
        # Several workers train under DDP; every parameter is used, so the unused-parameter
        # search would only cost time.
        ddp_find_unused_parameters=False,
        include_num_input_tokens_seen="all",
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
    )


def build_trainer(
    cfg: Config,
    hp: dict,
    splits,
    output_dir: str,
    callbacks: list[TrainerCallback],
    keep_predictions: bool = False,
) -> Trainer:
    """A Trainer on `splits["train"]`; it evaluates on `splits["validation"]` when there is one.
    `keep_predictions`: each evaluation's predictions go to a file beside the trial's
    checkpoints (trainable/predictions.py)."""
    tokenizer = load_tokenizer(cfg.model)
    labels = cfg.data.labels
    model = load_model(cfg.model, labels, tokenizer, seed=cfg.seed)
    evaluates = "validation" in splits
    weighted = cfg.train.class_weights == "balanced"
    metrics = ClassificationMetrics(labels, cfg.data.positive_label)
    if keep_predictions:
        callbacks = [*callbacks, SavePredictions(metrics)]
    train_labels = arrow_column(splits["train"], LABEL).to_numpy() if weighted else None
    trainer = LengthGroupedTrainer(
        model=model,
        args=build_training_args(cfg, hp, output_dir, per_epoch=evaluates),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"] if evaluates else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics,
        compute_loss_func=BalancedLoss(train_labels, len(labels)) if weighted else None,
        callbacks=[FiniteLossCallback(), *callbacks],
    )
    return prepare_trainer(trainer)


class LengthGroupedTrainer(Trainer):
    """The HF Trainer, its length-grouped samplers given each example's length in one
    vectorised read. transformers 5 removes the columns the model does not take before its
    samplers look for a `length` column, then measures every example in a Python loop: the
    training split at each train() (each epoch of a search.repeats seed), the validation
    split at every evaluation. The samplers, and so the batches, are transformers' own."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if not self._groups_by_length(dataset):
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=token_lengths(dataset))

    def _get_eval_sampler(self, eval_dataset):
        if not self._groups_by_length(eval_dataset):
            return super()._get_eval_sampler(eval_dataset)
        seed = self.args.seed if self.args.data_seed is None else self.args.data_seed
        return LengthGroupedSampler(
            self.args.eval_batch_size,
            lengths=token_lengths(eval_dataset),
            generator=torch.Generator().manual_seed(seed),
        )

    def _groups_by_length(self, dataset) -> bool:
        return self.args.train_sampling_strategy == "group_by_length" and isinstance(
            dataset, datasets.Dataset
        )
