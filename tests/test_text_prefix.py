"""Long texts tokenized from their first words give the token ids of the whole texts."""

from __future__ import annotations

import random

import pytest

from trainable import data, text_prefix
from trainable.config import DataConfig, ModelConfig

MAX_LENGTH = 32  # cut after 512 characters


def _messages() -> list[str]:
    splits = data.prepare(DataConfig(), seed=0)
    return [text for split in splits.values() for text in split["text"]]


def _long_texts(messages: list[str]) -> list[str]:
    """Texts of 2 to 60 messages joined by spaces, newlines and tabs, and the awkward ones: a
    cut inside a run of spaces, a first word longer than the cut, a prefix too short in tokens
    to fill max_length (tokenized whole again), text without spaces, one exactly at the limit."""
    rng = random.Random(0)
    texts = [
        rng.choice([" ", "  ", "\n", " \t ", "\n\n"]).join(
            rng.choices(messages, k=rng.randint(2, 60))
        )
        for _ in range(300)
    ]
    limit = MAX_LENGTH * text_prefix.CHARS_PER_TOKEN
    words = " ".join(messages[:200])
    return texts + [
        words[:500] + " " * 40 + words,
        "x" * 700 + " " + words,
        "y" * 300 + " " + "z" * 300 + " " + words,
        " " * 600 + words,
        "好" * 2000,
        words[:limit],
        words[: limit - 1] + " " + words,
    ]


def _byte_level_bpe(messages: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    specials = ["<s>", "</s>", "<pad>"]
    tokenizer.train_from_iterator(
        messages,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>")


def _metaspace_unigram(messages: list[str]):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(
        messages,
        trainers.UnigramTrainer(
            vocab_size=600, special_tokens=["<pad>", "<unk>"], unk_token="<unk>"
        ),
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>")


def _embedded(messages: list[str]):
    from trainable.model import load_tokenizer

    return load_tokenizer(ModelConfig())


@pytest.mark.parametrize("make", [_embedded, _byte_level_bpe, _metaspace_unigram])
def test_long_texts_cut_at_a_space_give_the_whole_texts_token_ids(make, monkeypatch):
    messages = _messages()
    tokenizer = make(messages)
    assert text_prefix.cuts_exactly(tokenizer)
    texts = _long_texts(messages)
    options = {"truncation": True, "max_length": MAX_LENGTH, "return_attention_mask": False}
    theirs = tokenizer(texts, **options)
    # At 3 and 5 characters a token, many cuts hold about max_length tokens: the last word
    # before the cut is among the ones kept, and a text that falls short is tokenized again.
    for chars_per_token in (text_prefix.CHARS_PER_TOKEN, 3, 5):
        monkeypatch.setattr(text_prefix, "CHARS_PER_TOKEN", chars_per_token)
        ours = text_prefix.encode(tokenizer, texts, options, cut=True)
        assert ours["input_ids"] == theirs["input_ids"], chars_per_token
        # What a pipeline tokenizes itself: the texts shortened the same way.
        shortened = text_prefix.shortened(tokenizer, texts, MAX_LENGTH)
        assert sum(len(a) < len(b) for a, b in zip(shortened, texts, strict=True)) > 20
        assert tokenizer(shortened, **options)["input_ids"] == theirs["input_ids"]


def test_tokenizers_whose_splits_it_cannot_read_or_that_keep_the_end_tokenize_whole_texts():
    from tokenizers import pre_tokenizers

    messages = _messages()
    keeps_the_end = _embedded(messages)
    keeps_the_end.truncation_side = "left"
    no_splits = _byte_level_bpe(messages)
    no_splits.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(use_regex=False)
    for tokenizer in (keeps_the_end, no_splits):
        assert not text_prefix.cuts_exactly(tokenizer)


def test_the_data_phase_tokenizes_long_texts_as_whole_ones(tmp_path):
    import pandas as pd

    texts = _long_texts(_messages())
    path = tmp_path / "long.parquet"
    pd.DataFrame({"text": texts, "label": [i % 3 for i in range(len(texts))]}).to_parquet(path)
    splits = data.prepare(DataConfig(source=str(path)), seed=0)
    tokenizer = _embedded([])
    tokenized = data.tokenize(splits, tokenizer, MAX_LENGTH)
    for name, split in splits.items():
        texts = data.arrow_column(split, "text").to_pylist()
        whole = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)
        assert data.arrow_column(tokenized[name], "input_ids").to_pylist() == whole["input_ids"]
