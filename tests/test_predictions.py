"""Each evaluation's predictions file: class ids kept exactly, compact, found by trial and epoch
in the search's checkpoint storage. The search writes and reads them in tests/test_run.py."""

from __future__ import annotations

import numpy as np
import pyarrow.fs

from trainable import predictions


def test_class_ids_come_back_exactly_in_their_order_and_small():
    rng = np.random.default_rng(0)
    references, predicted = rng.integers(0, 50, 100_000), rng.integers(0, 50, 100_000)
    content = predictions.encode(predicted, references, num_classes=50)
    back_references, back_predicted = predictions.decode(content)
    assert np.array_equal(back_references, references)
    assert np.array_equal(back_predicted, predicted)
    assert back_predicted.dtype == np.int16
    assert len(content) < 2 * 2 * 100_000  # two int16 arrays at most, compressed
    many = predictions.encode([40_000], [39_999], num_classes=40_001)
    assert [a.tolist() for a in predictions.decode(many)] == [[39_999], [40_000]]


def test_a_trial_s_epoch_is_read_back_from_storage_and_a_missing_one_is_none(tmp_path):
    storage = tmp_path / "checkpoints"
    content = predictions.encode([1, 0, 2], [1, 1, 2], num_classes=3)
    predictions.write(pyarrow.fs.LocalFileSystem(), str(storage / "trial1"), 2, content)
    assert (storage / "trial1" / "predictions" / "epoch-2.npz").is_file()
    references, predicted = predictions.read(str(storage), "trial1", 2)
    assert references.tolist() == [1, 1, 2] and predicted.tolist() == [1, 0, 2]
    assert predictions.read(f"file://{storage}", "trial1", 2) is not None
    assert predictions.read(str(storage), "trial1", 1) is None
    assert predictions.read(str(storage), "trial2", 2) is None
