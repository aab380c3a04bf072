"""Each evaluation's predicted and true classes: one small file per trial and epoch, in the
trial's folder of the search's checkpoint storage (local or `s3://`), which the search's
bootstrap resamples (search/payoff.py).

They stay out of the metrics: a report travels through Tune's records, Train's checkpoint
snapshot, the checkpoint's trainer_state.json and MLflow, where per-example data would grow
with the validation split. The files live in `predictions/` beside the `checkpoint_*` folders,
which the search prunes, so every trial's every epoch keeps them (two compressed int16 arrays:
a few hundred KB at a million validation examples).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow.fs

from trainable.storage import exists, resolve

FOLDER = "predictions"


def relative_path(epoch: int) -> str:
    """Where an epoch's file lies in its trial's (Train run's) folder."""
    return f"{FOLDER}/epoch-{epoch}.npz"


def encode(predictions, references, num_classes: int) -> bytes:
    """Class ids in the order the Trainer evaluated them (length-grouped batches reorder the
    split): the true classes travel with the predictions."""
    dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        predictions=np.asarray(predictions, dtype=dtype),
        references=np.asarray(references, dtype=dtype),
    )
    return buffer.getvalue()


def decode(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(references, predictions) from a file's bytes."""
    with np.load(io.BytesIO(content)) as arrays:
        return arrays["references"], arrays["predictions"]


def write(fs: pyarrow.fs.FileSystem, run_dir: str, epoch: int, content: bytes) -> None:
    path = f"{run_dir.rstrip('/')}/{relative_path(epoch)}"
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(content)


def read(
    checkpoint_storage: str, trial_id: str, epoch: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(references, predictions) of a trial's evaluation at `epoch`; None without its file.
    `checkpoint_storage`: the search's, where each trial's Train run has its folder."""
    fs, run_dir = resolve(f"{checkpoint_storage.rstrip('/')}/{trial_id}")
    path = f"{run_dir}/{relative_path(epoch)}"
    if not exists(fs, path):
        return None
    with fs.open_input_stream(path) as stream:
        return decode(stream.readall())
