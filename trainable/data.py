"""Data: check the messages (trainable/data_source.py loads them), split them (stratified),
tokenize them once."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from datasets.fingerprint import Hasher
from datasets.table import InMemoryTable
from datasets.utils.stratify import stratified_shuffle_split_generate_indices

from trainable.config import DataConfig
from trainable.data_source import load_raw
from trainable.errors import DataError, first_line
from trainable.text_prefix import cuts_exactly, encode

TEXT, LABEL = "text", "label"
TOKENIZE_BATCH = 1000  # texts per tokenizer call: enough for the fast tokenizer's threads


def normalize(ds: Dataset, cfg: DataConfig) -> Dataset:
    """Keeps text and label only, labels as ClassLabel ids; refuses what cannot be trained."""
    for column in (cfg.text_column, cfg.label_column):
        if column not in ds.column_names:
            raise DataError(
                f"dataset has no column {column!r} (it has {', '.join(ds.column_names)}): "
                "set data.text_column / data.label_column"
            )
    ds = ds.select_columns([cfg.text_column, cfg.label_column])
    ds = ds.rename_columns({cfg.text_column: TEXT, cfg.label_column: LABEL})
    has_text = _has_text(arrow_column(ds, TEXT).to_pylist())
    if not all(has_text):
        # Only then: a selection is a map of row numbers, which add_column below copies the
        # whole table to resolve (2.5 s at 200,000 texts).
        ds = ds.select(np.flatnonzero(has_text))
    if len(ds) == 0:
        raise DataError("dataset is empty: it has no rows with text")
    values = arrow_column(ds, LABEL).to_pylist()
    unlabelled = values.count(None)
    if unlabelled:
        raise DataError(
            f"{unlabelled} rows have no label in column {cfg.label_column!r}: "
            "label them or remove them"
        )

    feature = ds.features[LABEL]
    labels = cfg.labels or label_names(feature, values)
    names = feature.names if isinstance(feature, ClassLabel) else None
    label2id = {name: i for i, name in enumerate(labels)}

    def to_id(value: object) -> int:
        if names is not None:
            if not 0 <= value < len(names):
                return -1
            value = names[value]
        if cfg.labels is not None and isinstance(value, int) and 0 <= value < len(labels):
            return value  # ids into the configured labels
        return label2id.get(str(value).strip(), -1)

    known = {value: to_id(value) for value in set(values)}
    ids = [known[value] for value in values]
    bad = sorted({str(value) for value, i in known.items() if i < 0})
    if bad:
        raise DataError(
            f"labels {', '.join(bad[:5])} are not in data.labels {labels}: "
            "fix data.labels (or set it to null to read the labels from the data)"
        )
    counts = Counter(ids)
    if len(counts) < 2:
        raise DataError(
            f"the label column {cfg.label_column!r} holds a single class ({labels[ids[0]]}): "
            "a classifier needs examples of at least two"
        )
    missing = [name for i, name in enumerate(labels) if counts[i] == 0]
    if missing:
        raise DataError(
            f"data.labels names {', '.join(missing)}, which never occurs in the data: "
            "drop it from data.labels, or add examples of it"
        )
    ds = ds.remove_columns(LABEL).add_column(LABEL, ids)
    return ds.cast_column(LABEL, ClassLabel(names=list(labels)))


def label_names(feature, values: list) -> list[str]:
    """The labels of a label column (its feature, its values) with no configured list: a
    ClassLabel's names in its order, else the distinct values sorted, as transformers'
    `run_classification.py` does (numbers in numeric order)."""
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    values = set(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return [str(v) for v in sorted(values)]
    return sorted({str(v).strip() for v in values})


def split(ds: Dataset, cfg: DataConfig, seed: int) -> DatasetDict:
    """Stratified train/validation/test. Trials are compared on validation; test is touched once."""
    if cfg.max_rows is not None and cfg.max_rows < len(ds):
        ds = stratified_split(ds, train_size=cfg.max_rows, seed=seed)["train"]
    outer = stratified_split(ds, test_size=cfg.test_fraction, seed=seed)
    inner = stratified_split(outer["train"], test_size=cfg.validation_fraction, seed=seed)
    return DatasetDict(train=inner["train"], validation=inner["test"], test=outer["test"])


def tokenize(splits: DatasetDict, tokenizer, max_length: int, progress=None) -> DatasetDict:
    """Truncates at max_length and does not pad: the collator pads each batch to its longest
    and builds its attention mask. So only the token ids are kept, and the token type ids of a
    tokenizer that gives a single text any but 0 (a model reads absent ones as all 0): for a
    BERT tokenizer, one column of its three, to convert, hold and send to the trials.

    `progress`, when given, is called with the number of texts of each batch tokenized.

    datasets caches the result under the splits' and the tokenizer's fingerprints, so a search
    run again on the same file (`--resume`, another space) reads it back instead of tokenizing.
    It is handed on in memory, so that it pickles whole into Ray's object store and reaches
    workers on other nodes.
    """
    options = {
        "truncation": True,
        "max_length": max_length,
        "return_attention_mask": False,
        "return_token_type_ids": _token_types_vary(tokenizer),
    }
    # Hashed once, not by every split's map (0.2 s each for a BERT tokenizer).
    encoding = Hasher.hash([tokenizer, options])
    cut = cuts_exactly(tokenizer)
    # The types datasets gives these columns when it converts them itself.
    columns = {"input_ids": "int32"} | (
        {"token_type_ids": "int8"} if options["return_token_type_ids"] else {}
    )
    tokenized = DatasetDict()
    with _tokenizer_threads():
        for name, split in splits.items():
            features = Features(
                {LABEL: split.features[LABEL]}
                | {column: List(Value(kind)) for column, kind in columns.items()}
            )
            mapped = split.with_format("arrow").map(
                _encode,
                fn_kwargs={
                    "tokenizer": tokenizer,
                    "options": options,
                    "cut": cut,
                    "schema": features.arrow_schema,
                    "progress": progress,
                },
                batched=True,
                batch_size=TOKENIZE_BATCH,
                features=features,
                new_fingerprint=Hasher.hash([split._fingerprint, encoding]),
            )
            tokenized[name] = _in_memory(mapped.with_format(None))
    return tokenized


def _encode(
    batch: pa.Table, tokenizer, options: dict, cut: bool, schema: pa.Schema, progress
) -> pa.Table:
    """A batch of texts as Arrow columns of token ids, one conversion of the tokenizer's lists
    per column: given Python lists, datasets converts and casts them one row at a time (a fifth
    of the phase's time at 200,000 texts)."""
    encoded = encode(tokenizer, batch.column(TEXT).to_pylist(), options, cut)
    ids = [
        pa.array(encoded[field.name], type=field.type) for field in schema if field.name != LABEL
    ]
    if progress is not None:
        progress(batch.num_rows)
    return pa.Table.from_arrays([batch.column(LABEL), *ids], schema=schema)


def _token_types_vary(tokenizer) -> bool:
    """Whether a single text's token type ids carry anything: BERT's are all 0; XLNet's mark
    its classification token."""
    return any(tokenizer("a b", return_token_type_ids=True).get("token_type_ids", ()))


def _in_memory(split: Dataset) -> Dataset:
    """The split with its table held in memory (pickled whole), whether datasets mapped it
    from a cache file or built it in memory."""
    if not split.cache_files:
        return split
    return Dataset(InMemoryTable(split.data.table), info=split.info, split=split.split)


def prepare(cfg: DataConfig, seed: int) -> DatasetDict:
    """Raw text splits, ready to tokenize; their label feature names the classes by id."""
    return split(normalize(load_raw(cfg), cfg), cfg, seed)


def arrow_column(ds: Dataset, name: str) -> pa.ChunkedArray:
    """A column in one vectorised read. `ds[name]` is a lazy column in datasets 5: turned into a
    list or an array it is read one row at a time (11 s for 50,000 labels)."""
    return ds.with_format("arrow")[name]


def token_lengths(ds: Dataset) -> list[int]:
    """Each tokenized example's length, from its input_ids in one vectorised call."""
    return pc.list_value_length(arrow_column(ds, "input_ids")).to_pylist()


def _has_text(texts: list) -> list[bool]:
    return [isinstance(text, str) and text.strip() != "" for text in texts]


@contextmanager
def _tokenizer_threads() -> Iterator[None]:
    """The fast tokenizer encodes each batch on every core, its own Rust threads, with no
    process to fork and no copy to send back. The CLI turns those threads off
    (TOKENIZERS_PARALLELISM=false) for what comes after: once a forked child finds them used
    and the setting unset, it warns and cannot use them."""
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous


def stratified_split(
    ds: Dataset, seed: int, test_size: float | None = None, train_size: int | None = None
) -> DatasetDict:
    """The rows `ds.train_test_split(stratify_by_column=LABEL, seed=seed)` picks, with the
    labels read in one call: datasets 5 reads them one row at a time there (a minute for the
    two splits of 50,000 rows)."""
    n_test = ceil(test_size * len(ds)) if test_size is not None else len(ds) - train_size
    n_train = len(ds) - n_test
    try:
        if min(n_train, n_test) < 1:
            raise ValueError(f"{n_train} rows to train on and {n_test} to hold out")
        labels = arrow_column(ds, LABEL).to_numpy()
        rng = np.random.default_rng(seed)
        train, test = next(stratified_shuffle_split_generate_indices(labels, n_train, n_test, rng))
    except ValueError as exc:
        reason = "a class has a single row" if "class count" in str(exc) else first_line(exc)
        raise DataError(
            f"dataset of {len(ds)} rows is too small to split by class ({reason}): "
            "add rows or change data.test_fraction / data.validation_fraction"
        ) from None
    return DatasetDict(train=ds.select(train), test=ds.select(test))
