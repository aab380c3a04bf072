"""Export: the selected model becomes a folder `transformers.pipeline` loads alone, with its
test scores, per class and as a confusion matrix, in `hpo_result.json`.

The test split is touched here, once, so the reported score is not the one the search optimised:
scored where the trials ran (trainable/scoring.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray.train import Checkpoint
from sklearn.metrics import confusion_matrix

from search.confusion import top_confusions
from search.layout import RESULT_FILE
from search.selection import BestTrial, metric_key
from trainable.config import Config
from trainable.metrics import ClassificationMetrics
from trainable.scoring import Scored, load_checkpoint, score_checkpoints
from trainable.storage import stored_checkpoint, stored_uri
from trainable.trial import scaling_config

if TYPE_CHECKING:
    from search.refit import Refit


def exported_checkpoint(best: BestTrial, refit: Refit | None, cfg: Config) -> Checkpoint:
    """The refit's checkpoint when there is one, else the best trial's best."""
    return refit.checkpoint if refit else stored_checkpoint(best.checkpoint_path, cfg.storage_path)


def score_where_trials_ran(cfg: Config, split, checkpoints: dict[str, Checkpoint]) -> dict:
    """The test scores and predictions of each checkpoint (by its role: the export, the
    pick's, the defaults'), scored in one process. On a cluster (cfg.address), that is a Ray
    task asking for what a trial's worker does (its CPUs, its GPU or share of one): the
    driver, often on a head node without a GPU, only collects the class ids. A Ray instance
    the search started is this machine, where the trials ran: the driver scores, which saves a
    worker importing torch and transformers again (about 10 s), and with the trials and the
    refit over, it has every core to score on."""
    roles, stored = list(checkpoints), list(checkpoints.values())
    if cfg.address is None:
        scored = score_checkpoints(stored, cfg, split)
    else:
        each = scaling_config(cfg).resources_per_worker
        task = ray.remote(score_checkpoints).options(
            num_cpus=each["CPU"], num_gpus=each.get("GPU", 0), name="score_test_split"
        )
        scored = ray.get(task.remote(stored, cfg, split, each["CPU"]))
    return dict(zip(roles, scored, strict=True))


def export_best(
    best: BestTrial,
    cfg: Config,
    test_labels,
    destination: Path,
    refit: Refit | None,
    scored: Scored,
) -> dict[str, Any]:
    """Writes safetensors weights, tokenizer and hpo_result.json; returns the result record.
    `scored`: the exported checkpoint's test scores and predictions (score_where_trials_ran)."""
    model, tokenizer = load_checkpoint(exported_checkpoint(best, refit, cfg))
    labels = cfg.data.labels
    metrics = ClassificationMetrics(labels, cfg.data.positive_label)
    test = scored.scores
    matrix = confusion_matrix(test_labels, scored.predicted, labels=list(range(len(labels))))
    record = {
        "trial_id": best.trial_id,
        "hyperparameters": best.hyperparameters,
        "best_epoch": best.epoch,
        "validation_metrics": best.validation,
        "test_metrics": test,
        "test_per_class": metrics.per_class(test, "test", matrix.sum(axis=1)),
        # rows: the true class, columns: the predicted one, in the order of `labels`
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
        "top_confusions": top_confusions(matrix, labels),
        "labels": labels,
        "positive_label": cfg.data.positive_label,
        "metric": metric_key(cfg.search.metric),
        "mode": cfg.search.mode,
        "tie_breaker": cfg.search.tie_breaker and metric_key(cfg.search.tie_breaker),
        "model": cfg.model.name,
        "checkpoint": stored_uri(best.checkpoint_path, cfg.storage_path),
        "refit": refit.details if refit else None,  # None: the weights are the checkpoint's
        "test_scored_on": scored.where,
    }
    # Written beside the destination and renamed into place, so a failed export leaves no
    # half-written model folder.
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    save_tokenizer(tokenizer, cfg.model.max_length, partial)
    write_record(partial, record)
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)
    return record


def save_tokenizer(tokenizer, max_length: int, folder: Path) -> None:
    """Saves the tokenizer with the length the model was trained at as its limit.

    transformers' text-classification pipeline truncates only when called with
    `truncation=True` (5.x reads no default from the folder), and then cuts at
    `model_max_length`: at model.max_length, not at the tokenizer's own limit (512 for MiniLM),
    which a small model's position embeddings may not reach. The `tokenizers` library, and
    the servers built on it, read tokenizer.json's own truncation, which says the same, and
    its padding, which is dropped: MiniLM's pads every text to 128, past a shorter limit."""
    tokenizer.model_max_length = max_length
    if tokenizer.is_fast:
        tokenizer.backend_tokenizer.enable_truncation(max_length=max_length)
        tokenizer.backend_tokenizer.no_padding()
    tokenizer.save_pretrained(folder)


def write_record(model_dir: Path, record: dict[str, Any]) -> None:
    """hpo_result.json, replaced whole (never left half-written)."""
    partial = model_dir / f"{RESULT_FILE}.partial"
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(model_dir / RESULT_FILE)
