"""Batches of tokenized messages, padded to their longest, as the Trainer's data loader reads
them for training, evaluation and scoring."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset

from trainable.data import LABEL, arrow_column

# The token columns a tokenized split may hold (trainable/data.py, `tokenize`), each with the
# tokenizer's attribute for its padding value.
PADDED_COLUMNS = {"input_ids": "pad_token_id", "token_type_ids": "pad_token_type_id"}


class TokenBatches(torch.utils.data.Dataset):
    """A tokenized split that the data loader reads a whole padded batch at a time: torch's
    fetcher hands `__getitems__` a batch's indices, and the batch is cut from the split's Arrow
    buffers in a few NumPy calls. The batches are DataCollatorWithPadding's, key for key and
    dtype for dtype, padded on the tokenizer's side (tests/test_trainer.py). Read from datasets
    as one dict per message and padded by the tokenizer, a batch cost about 35 us per message
    against 3: 4 s of every epoch of 127,000 messages, outside the training steps."""

    def __init__(self, split: Dataset, tokenizer):
        self.columns = {
            name: (*_values_and_offsets(arrow_column(split, name)), getattr(tokenizer, pad))
            for name, pad in PADDED_COLUMNS.items()
            if name in split.column_names
        }
        self.lengths = np.diff(self.columns["input_ids"][1])
        self.labels = arrow_column(split, LABEL).to_numpy().astype(np.int64)
        self.left = tokenizer.padding_side == "left"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One message, as a batch of one."""
        return self.__getitems__([index])

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        rows = np.asarray(indices)
        lengths = self.lengths[rows][:, None]
        width = int(lengths.max())
        # Each cell's position within its message; padding is where it falls outside.
        position = np.arange(width)[None, :]
        if self.left:
            position = position - (width - lengths)
        mask = (position >= 0) & (position < lengths)
        batch = {}
        for name, (values, offsets, pad) in self.columns.items():
            cells = np.where(mask, offsets[rows][:, None] + position, 0)
            batch[name] = torch.from_numpy(np.where(mask, values[cells], pad).astype(np.int64))
        batch["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
        batch["labels"] = torch.from_numpy(self.labels[rows])
        return batch


def read_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The data loader's `collate_fn` over TokenBatches: the batch comes padded."""
    return batch


def _values_and_offsets(column) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values, flat, and the offsets at which its rows start in them (one more
    than the rows: the last is where the last row ends)."""
    rows = column.combine_chunks()
    return rows.values.to_numpy(), rows.offsets.to_numpy()
