"""The trial's HF Trainer (trainable/trainer.py): its token count, made on the CPU."""

from __future__ import annotations

import dataclasses

from transformers import DataCollatorWithPadding, Trainer

from trainable import data
from trainable.config import Config, DataConfig, ModelConfig
from trainable.model import load_tokenizer
from trainable.task import resolve
from trainable.trainer import build_trainer


def _count_gathers(trainer) -> list:
    """Every tensor the trainer's accelerator gathers, recorded on the way through."""
    gathered, gather = [], trainer.accelerator.gather

    def recording(tensor):
        gathered.append(tensor)
        return gather(tensor)

    trainer.accelerator.gather = recording
    return gathered


def test_tokens_are_counted_on_the_cpu_as_the_trainers_all_mode_counts_them(tmp_path):
    """Same `num_input_tokens_seen` as the HF Trainer's own count, padding included, on the
    same batches; where the Trainer's count builds and gathers a tensor every step, the
    trial's makes none."""
    cfg = resolve(Config(model=ModelConfig(tiny=True), seed=3), ["ham", "spam"])
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=100), seed=0), tokenizer, 32)
    hp = {"learning_rate": 1e-3, "batch_size": 16, "epochs": 1}
    trial = build_trainer(cfg, hp, {"train": splits["train"]}, str(tmp_path / "trial"), [])
    trainers_own = Trainer(
        model=trial.model, train_dataset=splits["train"],
        # the Trainer's count, as before
        args=dataclasses.replace(trial.args, include_num_input_tokens_seen="all"),
        data_collator=DataCollatorWithPadding(tokenizer),
    )  # fmt: skip
    assert trial.args.include_num_input_tokens_seen == "no"
    gathers = {}
    for name, trainer in (("trial", trial), ("trainer", trainers_own)):
        gathers[name] = _count_gathers(trainer)
        trainer.train()
    # Batches are padded to their longest message, so the count is above the messages' own.
    messages = sum(map(sum, splits["train"]["attention_mask"]))
    assert trial.state.num_input_tokens_seen == trainers_own.state.num_input_tokens_seen > messages
    assert len(gathers["trainer"]) == trainers_own.state.global_step > 1
    assert gathers["trial"] == []
