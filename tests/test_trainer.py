"""The trial's Trainer: its length-grouped samplers are transformers' own, fed lengths read in
one vectorised call instead of a Python pass over every example."""

from __future__ import annotations

import torch
from transformers import DataCollatorWithPadding, Trainer

from trainable import data
from trainable.config import DataConfig
from trainable.config_file import config_from_dict
from trainable.model import load_model, load_tokenizer
from trainable.trainer import LengthGroupedTrainer, build_training_args


def test_the_samplers_match_transformers_own(tmp_path):
    cfg = config_from_dict({"model": {"tiny": True, "max_length": 32}, "data": {"max_rows": 300}})
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=300), seed=0), tokenizer, 32)
    assert data.token_lengths(splits["train"]) == [len(ids) for ids in splits["train"]["input_ids"]]
    hp = {"learning_rate": 1e-4, "batch_size": 8, "epochs": 1}
    args = build_training_args(cfg, hp, str(tmp_path))
    assert args.train_sampling_strategy == "group_by_length"
    trainers = [
        kind(
            model=load_model(cfg.model, ["ham", "spam"], tokenizer, seed=0),
            args=args,
            train_dataset=splits["train"],
            eval_dataset=splits["validation"],
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        for kind in (LengthGroupedTrainer, Trainer)
    ]
    orders = []
    for trainer in trainers:
        # As transformers calls them: on the splits without the columns the model does not take.
        train = trainer._remove_unused_columns(splits["train"])
        validation = trainer._remove_unused_columns(splits["validation"])
        torch.manual_seed(0)
        orders.append(
            (list(trainer._get_train_sampler(train)), list(trainer._get_eval_sampler(validation)))
        )
    assert orders[0] == orders[1]
    assert sorted(orders[0][0]) == list(range(len(splits["train"])))
