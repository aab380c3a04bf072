"""`train.class_weights: balanced`: cross-entropy weighted by inverse class frequency."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight


class BalancedLoss:
    """The HF Trainer's `compute_loss_func`: each class weighted by n / (k * its count) in the
    training split (scikit-learn's "balanced"), so every class carries the same total weight
    and a rare class's mistakes are not drowned by the common ones'."""

    def __init__(self, train_labels, num_classes: int):
        weights = compute_class_weight(
            "balanced", classes=np.arange(num_classes), y=np.asarray(train_labels)
        )
        self.weight = torch.tensor(weights, dtype=torch.float32)

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"]
        return torch.nn.functional.cross_entropy(
            logits.float(), labels, weight=self.weight.to(logits.device)
        )
