"""The HF Trainer of a trial, a seed of one (`search.repeats`) or the refit: its arguments
from the config and the sampled hyperparameters, its model, data, metrics and loss.

Eval and save strategies are both per epoch because a trial reports (metrics and checkpoint)
only when the Trainer saves (trainable/reports.py, `ReportEachSave`).
"""

from __future__ import annotations

import torch
from ray.train.huggingface.transformers import prepare_trainer
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from trainable.callbacks import FiniteLossCallback, SavePredictions
from trainable.collate import TokenBatches
from trainable.config import Config
from trainable.device import cpu_plan
from trainable.loss import BalancedLoss
from trainable.metrics import ClassificationMetrics
from trainable.model import load_model, load_tokenizer
from trainable.reports import TrialFolder


def build_training_args(
    cfg: Config, hp: dict, output_dir: str, per_epoch: bool = True
) -> TrainingArguments:
    """`hp`: the sampled hyperparameters. `per_epoch`: evaluate and save (which reports to
    Ray Train) after every epoch."""
    use_gpu = bool(cfg.resources.use_gpu)
    _, loaders = cpu_plan(use_gpu, cfg.resources.cpus_per_worker or 1)
    return TrainingArguments(
        output_dir=output_dir,
        **(cfg.train_section_arguments() | cfg.space.training_arguments(hp)),
        per_device_eval_batch_size=cfg.train.eval_batch_size,
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
        dataloader_num_workers=loaders,
        dataloader_persistent_workers=loaders > 0,  # not restarted for every epoch and evaluation
        # Several workers train under DDP; every parameter is used, so the unused-parameter
        # search would only cost time.
        ddp_find_unused_parameters=False,
        # TokenBatches hold the model's inputs alone and come to the loader as padded batches,
        # not as the per-message dicts the Trainer's column removal filters.
        remove_unused_columns=False,
        # TokenCountingTrainer counts the tokens on the CPU: the Trainer's own count
        # ("all") builds, gathers and reads back a device tensor every step.
        include_num_input_tokens_seen="no",
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
    predictions_to: TrialFolder | None = None,
) -> Trainer:
    """A Trainer on `splits["train"]`; it evaluates on `splits["validation"]` when there is one.
    `predictions_to`: the trial's folder, where each evaluation's predictions go beside its
    checkpoints (trainable/predictions.py)."""
    tokenizer = load_tokenizer(cfg.model)
    labels = cfg.data.labels
    model = load_model(cfg.model, labels, tokenizer, seed=cfg.seed)
    evaluates = "validation" in splits
    weighted = cfg.train.class_weights == "balanced"
    metrics = ClassificationMetrics(labels, cfg.data.positive_label)
    if predictions_to is not None:
        callbacks = [*callbacks, SavePredictions(metrics, predictions_to)]
    train = TokenBatches(splits["train"], tokenizer)
    trainer = TokenCountingTrainer(
        model=model,
        args=build_training_args(cfg, hp, output_dir, per_epoch=evaluates),
        train_dataset=train,
        eval_dataset=TokenBatches(splits["validation"], tokenizer) if evaluates else None,
        processing_class=tokenizer,
        data_collator=count_tokens,
        compute_metrics=metrics,
        compute_loss_func=BalancedLoss(train.labels, len(labels)) if weighted else None,
        callbacks=[FiniteLossCallback(), *callbacks],
    )
    return prepare_trainer(trainer)


class LengthGroupedTrainer(Trainer):
    """The HF Trainer, its length-grouped samplers given each example's length as TokenBatches
    read it from the split's offsets. transformers 5 would measure every example in a Python
    loop: the training split at each train() (each epoch of a search.repeats seed), the
    validation split at every evaluation. The samplers, and so the batches, are transformers'
    own."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if not self._groups_by_length(dataset):
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=dataset.lengths.tolist())

    def _get_eval_sampler(self, eval_dataset):
        if not self._groups_by_length(eval_dataset):
            return super()._get_eval_sampler(eval_dataset)
        seed = self.args.seed if self.args.data_seed is None else self.args.data_seed
        return LengthGroupedSampler(
            self.args.eval_batch_size,
            lengths=eval_dataset.lengths.tolist(),
            generator=torch.Generator().manual_seed(seed),
        )

    def _groups_by_length(self, dataset) -> bool:
        return self.args.train_sampling_strategy == "group_by_length" and isinstance(
            dataset, TokenBatches
        )


TOKENS_KEY = "tokens_in_batch"  # a plain int the collator adds; the model never sees it


def count_tokens(batch: dict) -> dict:
    """The data loader's `collate_fn` over TokenBatches: the padded batch, with its token
    count, padding included, added while it is still on the CPU (in a data-loading worker, if
    there are any)."""
    return {**batch, TOKENS_KEY: batch["input_ids"].numel()}


class TokenCountingTrainer(LengthGroupedTrainer):
    """Counts `state.num_input_tokens_seen` as the Trainer's "all" mode does (every worker's
    tokens, padding included) from the counts `count_tokens` adds: per step a Python
    int, and across DDP workers one gather per evaluation rather than one per step."""

    unsynced_tokens = 0  # this DDP worker's, since the last evaluation

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.args.world_size > 1:
            self.unsynced_tokens += inputs.pop(TOKENS_KEY)
        else:
            self.state.num_input_tokens_seen += inputs.pop(TOKENS_KEY)
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs.pop(TOKENS_KEY, None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def evaluate(self, *args, **kwargs):
        if self.args.world_size > 1:
            tokens = torch.tensor(self.unsynced_tokens, device=self.args.device)
            self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()
            self.unsynced_tokens = 0
        return super().evaluate(*args, **kwargs)
