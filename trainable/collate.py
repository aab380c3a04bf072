"""Batches of tokenized messages, padded to their longest, as the Trainer's data loader builds
them for training, evaluation and scoring."""

from __future__ import annotations

import torch
from transformers import DataCollatorWithPadding


class PaddedBatches:
    """DataCollatorWithPadding's batches, built as NumPy arrays and handed to torch without a
    copy. Building the tensors from the padded lists with torch.tensor took 70% of the
    collation: about 90 us per message against 30 us this way, a per-message cost outside the
    training steps that an epoch of 127,000 messages paid 8 s more for (BENCHMARKS.md, "At
    scale")."""

    def __init__(self, tokenizer):
        self.pad = DataCollatorWithPadding(tokenizer, return_tensors="np")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return {key: torch.from_numpy(value) for key, value in self.pad(features).items()}
