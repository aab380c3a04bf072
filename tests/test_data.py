from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from trainable import data
from trainable.config import DataConfig
from trainable.errors import DataError


def test_embedded_collection_loads_with_labels():
    ds = data.normalize(data.load_raw(DataConfig()), DataConfig())
    assert len(ds) == 4862
    assert ds.features["label"].names == ["ham", "spam"]
    assert sum(ds["label"]) == 642


def test_split_is_stratified_seeded_and_disjoint():
    cfg = DataConfig()
    splits = data.prepare(cfg, seed=42)
    sizes = {name: len(split) for name, split in splits.items()}
    assert sizes == {"train": 3111, "validation": 778, "test": 973}
    for split in splits.values():
        assert abs(sum(split["label"]) / len(split) - 642 / 4862) < 0.01
    assert sum(sum(split["label"]) for split in splits.values()) == 642
    again = data.prepare(cfg, seed=42)
    assert again["test"]["text"] == splits["test"]["text"]
    other = data.prepare(cfg, seed=1)
    assert other["test"]["text"] != splits["test"]["text"]


@pytest.mark.parametrize("sizes", [{"test_size": 0.2}, {"train_size": 1000}])
def test_the_split_picks_the_rows_datasets_train_test_split_picks(sizes):
    ds = data.normalize(data.load_raw(DataConfig()), DataConfig())
    ours = data.stratified_split(ds, seed=42, **sizes)
    theirs = ds.train_test_split(stratify_by_column="label", seed=42, **sizes)
    for name in ("train", "test"):
        assert ours[name]["text"] == theirs[name]["text"]


def test_tokenize_keeps_the_token_ids_truncated_and_unpadded():
    from trainable.config import ModelConfig
    from trainable.model import load_tokenizer

    splits = data.prepare(DataConfig(max_rows=200), seed=0)
    tokenized = data.tokenize(splits, load_tokenizer(ModelConfig()), max_length=16)
    lengths = [len(ids) for ids in tokenized["train"]["input_ids"]]
    assert max(lengths) == 16
    assert min(lengths) < 16
    # The collator builds the attention mask; the BERT tokenizer's token type ids are all 0.
    assert sorted(tokenized["train"].column_names) == ["input_ids", "label"]
    assert tokenized["train"].cache_files == []  # pickles whole into the object store


def _marking_its_end(tokenizer):
    """The embedded tokenizer giving its closing [SEP] token type 1, as XLNet's gives its
    classification token 2: a single text's token type ids that are not all 0."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    backend = tokenizer.backend_tokenizer
    backend.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]:1",
        special_tokens=[(t, tokenizer.convert_tokens_to_ids(t)) for t in ("[CLS]", "[SEP]")],
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]")


@pytest.mark.parametrize("token_types", [False, True], ids=["bert", "token types vary"])
def test_the_token_columns_are_what_datasets_builds_from_the_tokenizers_lists(token_types):
    from trainable.config import ModelConfig
    from trainable.model import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig())
    if token_types:
        tokenizer = _marking_its_end(tokenizer)
    splits = data.prepare(DataConfig(max_rows=300), seed=0)
    ours = data.tokenize(splits, tokenizer, max_length=16)
    options = {"truncation": True, "max_length": 16, "return_attention_mask": False}
    for name, split in splits.items():
        theirs = split.map(
            lambda batch: tokenizer(batch["text"], return_token_type_ids=token_types, **options),
            batched=True,
            remove_columns=["text"],
        )
        assert ours[name].features == theirs.features
        assert ours[name].data.table.equals(theirs.data.table)
    assert ("token_type_ids" in ours["train"].column_names) == token_types


def test_the_data_phase_counts_its_tokenizing_in_lines(tmp_path, monkeypatch, capsys):
    from search import count_progress
    from search.data_phase import load_task
    from trainable.config_file import load_config

    path = tmp_path / "messages.csv"  # a new file: datasets has not tokenized it before
    rows = [{**row, "message": f"{row['message']} {i}"} for i, row in enumerate(_rows() * 30)]
    pd.DataFrame(rows).to_csv(path, index=False)
    columns = {"data.text_column": "message", "data.label_column": "kind"}
    cfg = load_config(
        "configs/tiny.yaml", {"data.source": str(path), "data.max_rows": None, **columns}
    )
    monkeypatch.setattr(count_progress, "PROGRESS_EVERY_S", 0.0)
    _, _, tokenized, _ = load_task(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if " of 3,000 texts (" in line]
    # A line after each batch of 1,000 but the last: train 1,920 texts, validation 480, test 600.
    assert [line.split()[:2] for line in lines] == [
        ["tokenized", "1,000"],
        ["tokenized", "1,920"],
        ["tokenized", "2,400"],
    ]
    assert [len(split) for split in tokenized.values()] == [1920, 480, 600]


def test_the_same_file_tokenized_again_is_read_from_the_datasets_cache(tmp_path, monkeypatch):
    from trainable.config import ModelConfig
    from trainable.model import load_tokenizer

    path = tmp_path / "messages.csv"
    frame = pd.DataFrame(_rows())
    frame["message"] += " with more words than eight tokens hold"
    frame.to_csv(path, index=False)
    cfg = DataConfig(source=str(path), text_column="message", label_column="kind")
    first = data.tokenize(data.prepare(cfg, seed=0), load_tokenizer(ModelConfig()), 8)
    encoded = []
    encode = data._encode
    monkeypatch.setattr(
        data, "_encode", lambda *args, **kw: encoded.append(1) or encode(*args, **kw)
    )
    # Another search's data phase: the file read, split and tokenized again by a new tokenizer.
    again = data.tokenize(data.prepare(cfg, seed=0), load_tokenizer(ModelConfig()), 8)
    assert encoded == []
    assert again["train"].cache_files == []
    for name, split in first.items():
        assert again[name]["input_ids"] == split["input_ids"]
    longer = data.tokenize(data.prepare(cfg, seed=0), load_tokenizer(ModelConfig()), 16)
    assert encoded
    assert max(map(len, longer["train"]["input_ids"])) > 8


def _rows(n_spam=20, n_ham=80):
    return [{"message": f"win cash {i}", "kind": "spam"} for i in range(n_spam)] + [
        {"message": f"see you {i}", "kind": "ham"} for i in range(n_ham)
    ]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_local_files_with_custom_columns(tmp_path, suffix):
    frame = pd.DataFrame(_rows())
    path = tmp_path / f"messages{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dict("records")))
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    cfg = DataConfig(source=str(path), text_column="message", label_column="kind")
    splits = data.prepare(cfg, seed=0)
    assert sum(len(split) for split in splits.values()) == 100
    assert sum(splits["test"]["label"]) == 4  # 20% of 20 spam, stratified


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_in_an_s3_bucket_read_as_local_ones(tmp_path, suffix, s3, monkeypatch):
    frame = pd.DataFrame(_rows())
    local = tmp_path / f"messages{suffix}"
    if suffix == ".csv":
        frame.to_csv(local, index=False)
    else:
        frame.to_parquet(local)
    uri = s3.put(f"data/messages{suffix}", local.read_bytes())
    s3.use(monkeypatch)
    columns = {"text_column": "message", "label_column": "kind"}
    stored = data.prepare(DataConfig(source=uri, **columns), seed=0)
    from_disk = data.prepare(DataConfig(source=str(local), **columns), seed=0)
    assert sum(len(split) for split in stored.values()) == 100
    assert stored["test"]["text"] == from_disk["test"]["text"]


def test_integer_labels_are_ids(tmp_path):
    path = tmp_path / "ids.csv"
    pd.DataFrame(
        {"text": [f"m{i}" for i in range(50)], "label": [i % 2 for i in range(50)]}
    ).to_csv(path, index=False)
    ds = data.normalize(data.load_raw(DataConfig(source=str(path))), DataConfig(source=str(path)))
    assert sum(ds["label"]) == 25


def test_rows_without_text_are_dropped_with_their_labels(tmp_path):
    path = tmp_path / "gaps.jsonl"
    texts = ["ham one", "", "spam two", "   ", None, "ham three", "spam four", "\t\n"]
    labels = ["ham", "spam", "spam", "ham", "ham", "ham", "spam", "spam"]
    pd.DataFrame({"text": texts, "label": labels}).to_json(path, orient="records", lines=True)
    cfg = DataConfig(source=str(path))
    ds = data.normalize(data.load_raw(cfg), cfg)
    assert ds["text"] == ["ham one", "spam two", "ham three", "spam four"]
    assert [ds.features["label"].int2str(i) for i in ds["label"]] == ["ham", "spam", "ham", "spam"]


def _write(tmp_path, rows, name="d.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("rows", "overrides", "message"),
    [
        (_rows(), {"text_column": "body", "label_column": "kind"}, "no column 'body'"),
        (_rows(), {"text_column": "message"}, "no column 'label'"),
        (
            [{"text": "a", "label": "ham"}, {"text": "b", "label": "eggs"}],
            {"labels": ["ham", "spam"]},
            "eggs",
        ),
        (
            _rows(),
            {"text_column": "message", "label_column": "kind", "labels": ["ham", "spam", "eggs"]},
            "eggs, which never occurs",
        ),
        ([{"text": f"m{i}", "label": "ham"} for i in range(30)], {}, "single class"),
        ([{"text": "a", "label": "ham"}, {"text": "b", "label": "spam"}], {}, "too small"),
    ],
)
def test_unusable_data_is_refused(tmp_path, rows, overrides, message):
    cfg = DataConfig(source=_write(tmp_path, rows), **overrides)
    with pytest.raises(DataError) as info:
        data.prepare(cfg, seed=0)
    assert message in str(info.value)


def test_missing_empty_and_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load_raw(DataConfig(source=str(tmp_path / "none.csv")))
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataError, match="empty"):
        data.prepare(DataConfig(source=str(empty)), seed=0)
    with pytest.raises(DataError, match="could not load hub dataset"):
        data.load_raw(DataConfig(source="no-such-user/no-such-dataset"))


def test_labels_are_read_from_the_data_sorted_unless_configured(tmp_path):
    rows = [{"text": f"m{i}", "topic": t} for i in range(10) for t in ("tech", "food", "sports")]
    source = _write(tmp_path, rows)
    read = data.prepare(DataConfig(source=source, label_column="topic"), seed=0)
    assert read["train"].features["label"].names == ["food", "sports", "tech"]
    configured = DataConfig(source=source, label_column="topic", labels=["tech", "food", "sports"])
    ds = data.normalize(data.load_raw(configured), configured)
    assert ds.features["label"].names == ["tech", "food", "sports"]
    assert [ds.features["label"].int2str(i) for i in ds["label"][:3]] == ["tech", "food", "sports"]


def test_numeric_labels_sort_as_numbers(tmp_path):
    rows = [{"text": f"m{i}", "label": v} for i in range(10) for v in (10, 2, 0)]
    ds = data.normalize(data.load_raw(DataConfig(source=_write(tmp_path, rows))), DataConfig())
    assert ds.features["label"].names == ["0", "2", "10"]


def test_datasets_leaves_jax_and_tensorflow_alone_in_every_process():
    """A worker imports `trainable` before datasets; datasets then skips its JAX and TF
    formatters, which import those libraries wherever they are installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("USE_JAX", "USE_TF")}
    probe = (
        "import trainable.data, datasets.config as c; print(c.USE_JAX, c.USE_TF, c.JAX_AVAILABLE)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "0", "False"]
