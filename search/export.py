"""Export: the selected model becomes a folder `transformers.pipeline` loads alone, with its
test scores, per class and as a confusion matrix, in `hpo_result.json`.

The test split is touched here, once, so the reported score is not the one the search optimised.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.train import Checkpoint
from ray.train.huggingface.transformers import RayTrainReportCallback
from sklearn.metrics import confusion_matrix
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from search.layout import RESULT_FILE
from search.selection import BestTrial, metric_key
from trainable.config import Config
from trainable.metrics import ClassificationMetrics, predict_split
from trainable.storage import stored_checkpoint, stored_uri

if TYPE_CHECKING:
    from search.refit import Refit


def export_best(
    best: BestTrial,
    cfg: Config,
    test_split,
    destination: Path,
    refit: Refit | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Writes safetensors weights, tokenizer and hpo_result.json; returns the result record
    and the classes the exported model predicts for the test split.

    The weights are the refit's when there is one, else the best trial's best checkpoint."""
    model, tokenizer = load_checkpoint(
        refit.checkpoint if refit else stored_checkpoint(best.checkpoint_path, cfg.storage_path)
    )
    labels = cfg.data.labels
    metrics = ClassificationMetrics(labels, cfg.data.positive_label)
    test, predicted = predict_split(
        model, tokenizer, test_split, cfg.train.eval_batch_size, "test", metrics
    )
    matrix = confusion_matrix(test_split["label"], predicted, labels=list(range(len(labels))))
    record = {
        "trial_id": best.trial_id,
        "hyperparameters": best.hyperparameters,
        "best_epoch": best.epoch,
        "validation_metrics": best.validation,
        "test_metrics": test,
        "test_per_class": metrics.per_class(test, "test", matrix.sum(axis=1)),
        # rows: the true class, columns: the predicted one, in the order of `labels`
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
        "labels": labels,
        "positive_label": cfg.data.positive_label,
        "metric": metric_key(cfg.search.metric),
        "mode": cfg.search.mode,
        "tie_breaker": cfg.search.tie_breaker and metric_key(cfg.search.tie_breaker),
        "model": cfg.model.name,
        "checkpoint": stored_uri(best.checkpoint_path, cfg.storage_path),
        "refit": refit.details if refit else None,  # None: the weights are the checkpoint's
    }
    # Written beside the destination and renamed into place, so a failed export leaves no
    # half-written model folder.
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    # The model was trained on messages cut at model.max_length: a pipeline asked to truncate
    # cuts there too, not at the tokenizer's own limit (512 for MiniLM), which a small model's
    # position embeddings may not reach.
    tokenizer.model_max_length = cfg.model.max_length
    tokenizer.save_pretrained(partial)
    write_record(partial, record)
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)
    return record, predicted


def write_record(model_dir: Path, record: dict[str, Any]) -> None:
    """hpo_result.json, replaced whole (never left half-written)."""
    partial = model_dir / f"{RESULT_FILE}.partial"
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(model_dir / RESULT_FILE)


def load_checkpoint(checkpoint: Checkpoint):
    """The model and tokenizer a trial's (or the refit's) checkpoint holds."""
    with checkpoint.as_directory() as restored:
        hf_dir = Path(restored) / RayTrainReportCallback.CHECKPOINT_NAME
        return (
            AutoModelForSequenceClassification.from_pretrained(hf_dir),
            AutoTokenizer.from_pretrained(hf_dir),
        )


def predict_checkpoint(checkpoint_path: str, cfg: Config, split) -> np.ndarray:
    """The classes a trial's checkpoint predicts for a tokenized split."""
    model, tokenizer = load_checkpoint(stored_checkpoint(checkpoint_path, cfg.storage_path))
    metrics = ClassificationMetrics(cfg.data.labels, cfg.data.positive_label)
    batch = cfg.train.eval_batch_size
    return predict_split(model, tokenizer, split, batch, "test", metrics)[1]
