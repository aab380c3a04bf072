"""The search's storage, where Tune keeps its experiment and Ray Train its checkpoints: a local
folder or a URI such as s3://bucket/prefix, read through the pyarrow filesystem Ray resolves it
to (docs/storage.md).

Ray names a stored file by its path on that filesystem, without the URI's scheme: on S3 a
checkpoint is `bucket/prefix/...`. Such a path is read with the storage's filesystem, never as a
local one.
"""

from __future__ import annotations

import os

import pyarrow.fs
from ray.train import Checkpoint


def resolve(storage: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem of `storage` (a URI, or a local folder) and the storage's path on it."""
    if "://" not in storage:
        storage = os.path.abspath(os.path.expanduser(storage))
    return pyarrow.fs.FileSystem.from_uri(storage)


def stored_checkpoint(path: str, storage: str) -> Checkpoint:
    """The checkpoint Ray reported at `path`, a path on the filesystem of `storage`."""
    return Checkpoint(path, filesystem=resolve(storage)[0])


def stored_uri(path: str, storage: str) -> str:
    """`path` on the filesystem of `storage` as a URI a person can use (`s3://bucket/key`); a
    local path as it is."""
    scheme, found, _ = storage.partition("://")
    return f"{scheme}://{path}" if found and scheme != "file" else path


def exists(fs: pyarrow.fs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def stored_text(fs: pyarrow.fs.FileSystem, path: str) -> str | None:
    """The text of the file at `path` on `fs`; None when there is none."""
    if not exists(fs, path):
        return None
    with fs.open_input_stream(path) as stream:
        return stream.readall().decode("utf-8")
