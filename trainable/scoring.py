"""Test scoring after the search: checkpoints' predictions for the test split, computed where the
trials ran (on a cluster, a Ray task with a trial worker's resources, a GPU when trials have
one, so that a driver on a head node without a GPU only collects class ids and scores).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ray.train import Checkpoint

from trainable.config import Config
from trainable.metrics import ClassificationMetrics, predict_split


@dataclass
class Scored:
    """One checkpoint's test scores (keys `test_*`) and the class it predicts for each row."""

    scores: dict[str, float]
    predicted: np.ndarray
    where: dict = field(default_factory=dict)  # host, pid and device it ran on


def load_checkpoint(checkpoint: Checkpoint):
    """The model and tokenizer a trial's (or the refit's) checkpoint holds."""
    from ray.train.huggingface.transformers import RayTrainReportCallback
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with checkpoint.as_directory() as restored:
        hf_dir = Path(restored) / RayTrainReportCallback.CHECKPOINT_NAME
        return (
            AutoModelForSequenceClassification.from_pretrained(hf_dir),
            AutoTokenizer.from_pretrained(hf_dir),
        )


def score_checkpoints(
    checkpoints: list[Checkpoint], cfg: Config, split, threads: int | None = None
) -> list[Scored]:
    """Each checkpoint's model on a tokenized split, in one process (one import of the model
    stack for all of them), on `threads` CPU threads (torch's default, every core, if None)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    metrics = ClassificationMetrics(cfg.data.labels, cfg.data.positive_label)
    scored = []
    for checkpoint in checkpoints:
        model, tokenizer = load_checkpoint(checkpoint)
        scores, predicted = predict_split(
            model, tokenizer, split, cfg.train.eval_batch_size, "test", metrics
        )
        where = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": next(model.parameters()).device.type,  # where the Trainer put it
        }
        scored.append(Scored(scores, predicted.astype(np.int32), where))
    return scored
