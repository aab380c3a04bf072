"""The trial's HF Trainer (trainable/trainer.py): transformers' own length-grouped samplers fed
lengths read in one vectorised call, and its token count, made on the CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from datasets import DatasetDict
from transformers import DataCollatorWithPadding, Trainer

from trainable import data
from trainable.collate import TokenBatches
from trainable.config import Config, DataConfig, ModelConfig
from trainable.config_file import config_from_dict
from trainable.model import load_model, load_tokenizer
from trainable.task import resolve
from trainable.trainer import LengthGroupedTrainer, build_trainer, build_training_args


def test_the_samplers_match_transformers_own(tmp_path):
    """The trial's length-grouped samplers, given TokenBatches' lengths, order the examples as
    transformers' own order the split, measuring each message."""
    cfg = config_from_dict({"model": {"tiny": True, "max_length": 32}, "data": {"max_rows": 300}})
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=300), seed=0), tokenizer, 32)
    batches = {name: TokenBatches(split, tokenizer) for name, split in splits.items()}
    assert batches["train"].lengths.tolist() == [len(ids) for ids in splits["train"]["input_ids"]]
    hp = {"learning_rate": 1e-4, "batch_size": 8, "epochs": 1}
    args = build_training_args(cfg, hp, str(tmp_path))
    assert args.train_sampling_strategy == "group_by_length"
    trainers = {
        kind: kind(
            model=load_model(cfg.model, ["ham", "spam"], tokenizer, seed=0),
            args=args,
            eval_dataset=splits["validation"],
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        for kind in (LengthGroupedTrainer, Trainer)
    }
    ours = trainers[LengthGroupedTrainer]
    torch.manual_seed(0)
    orders = [(list(ours._get_train_sampler(batches["train"])),
               list(ours._get_eval_sampler(batches["validation"])))]  # fmt: skip
    theirs = trainers[Trainer]
    # As transformers calls them: on the splits without the columns the model does not take.
    train = theirs._remove_unused_columns(splits["train"])
    validation = theirs._remove_unused_columns(splits["validation"])
    torch.manual_seed(0)
    orders.append(
        (list(theirs._get_train_sampler(train)), list(theirs._get_eval_sampler(validation)))
    )
    assert orders[0] == orders[1]
    assert sorted(orders[0][0]) == list(range(len(splits["train"])))


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
    messages = sum(data.token_lengths(splits["train"]))
    assert trial.state.num_input_tokens_seen == trainers_own.state.num_input_tokens_seen > messages
    assert len(gathers["trainer"]) == trainers_own.state.global_step > 1
    assert gathers["trial"] == []


def _with_token_types(split):
    """The split with a token type id column that is not all 0, as an XLNet tokenizer's."""
    return split.map(
        lambda batch: {
            "token_type_ids": [[i % 2 for i in range(len(ids))] for ids in batch["input_ids"]]
        },
        batched=True,
    )


@pytest.mark.parametrize("token_types", [False, True], ids=["token ids", "token type ids too"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_batches_are_transformers_padded_batches_built_through_numpy(side, token_types):
    """The batches TokenBatches reads equal DataCollatorWithPadding's on the same messages, in
    the sampler's order, key for key and dtype for dtype, on messages of different lengths:
    the token ids (and token type ids) padded on the tokenizer's side and the attention mask
    built."""
    tokenizer = load_tokenizer(ModelConfig(tiny=True))
    tokenizer.padding_side = side
    splits = data.tokenize(data.prepare(DataConfig(max_rows=300), seed=0), tokenizer, 48)
    split = _with_token_types(splits["train"]) if token_types else splits["train"]
    batches = TokenBatches(split, tokenizer)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).tolist()
    for indices in (order[:24], order[24:25], order[-7:]):
        features = [split[i] for i in indices]  # as datasets hands them: a dict per message
        ours, theirs = batches.__getitems__(indices), DataCollatorWithPadding(tokenizer)(features)
        assert set(ours) == set(theirs) >= {"input_ids", "attention_mask", "labels"}
        assert ("token_type_ids" in ours) == token_types
        for key, tensor in theirs.items():
            assert ours[key].dtype == tensor.dtype and torch.equal(ours[key], tensor), key
    assert len({len(split[i]["input_ids"]) for i in order[:24]}) > 1  # padding was needed


def test_the_model_reads_a_batch_of_token_ids_as_the_tokenizers_full_output():
    """The splits hold the token ids alone (trainable/data.py): a batch of them gives the
    embedded BERT model the logits that the tokenizer's own output, with its attention mask and
    token type ids, gives it."""
    cfg = ModelConfig(max_length=24)
    tokenizer = load_tokenizer(cfg)
    texts = data.prepare(DataConfig(max_rows=200), seed=0)["train"].select(range(16))
    ids = data.tokenize(DatasetDict(train=texts), tokenizer, cfg.max_length)["train"]
    ours = TokenBatches(ids, tokenizer).__getitems__(range(len(ids)))
    ours.pop("labels")
    theirs = tokenizer(
        list(texts[data.TEXT]), truncation=True, max_length=cfg.max_length, padding=True,
        return_tensors="pt",
    )  # fmt: skip
    assert set(theirs) == {"input_ids", "token_type_ids", "attention_mask"}
    assert set(ours) == {"input_ids", "attention_mask"}
    model = load_model(cfg, ["ham", "spam"], tokenizer, seed=0).eval()
    with torch.no_grad():
        assert torch.equal(model(**ours).logits, model(**theirs).logits)
