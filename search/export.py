"""Export: the best trial's best checkpoint becomes a folder `transformers.pipeline` loads alone.

The test split is touched here, once, so the reported score is not the one the search optimised.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs
from ray.train import Checkpoint
from ray.train.huggingface.transformers import RayTrainReportCallback
from ray.tune import ResultGrid
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from search.layout import RESULT_FILE
from trainable.config import Config
from trainable.metrics import evaluate_model

if TYPE_CHECKING:
    from search.refit import Refit

SAMPLE_MESSAGE = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only."
)
HYPERPARAMETERS = ("learning_rate", "batch_size", "epochs")


@dataclass
class BestTrial:
    trial_id: str
    hyperparameters: dict[str, Any]
    epoch: int
    validation: dict[str, float]
    checkpoint_path: str


def find_best(results: ResultGrid, metric: str, mode: str) -> BestTrial | None:
    """The best epoch of any trial whose checkpoint still exists; None when no trial reported."""
    candidates = []
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or frame.empty or metric not in frame or CHECKPOINT_PATH_KEY not in frame:
            continue
        for row in frame.to_dict("records"):
            value, path = row.get(metric), row.get(CHECKPOINT_PATH_KEY)
            if isinstance(path, str) and value is not None and not math.isnan(value):
                candidates.append((value, result, row))
    candidates.sort(key=lambda item: item[0], reverse=(mode == "max"))
    for _, result, row in candidates:
        if _exists(row[CHECKPOINT_PATH_KEY]):
            return BestTrial(
                trial_id=result.metrics.get("trial_id", ""),
                hyperparameters={k: result.config[k] for k in HYPERPARAMETERS},
                epoch=int(row["training_iteration"]),
                validation={k: v for k, v in row.items() if k.startswith("eval_")},
                checkpoint_path=row[CHECKPOINT_PATH_KEY],
            )
    return None


def export_best(
    best: BestTrial,
    cfg: Config,
    test_split,
    destination: Path,
    refit: Refit | None = None,
) -> dict[str, Any]:
    """Writes safetensors weights, tokenizer and hpo_result.json; returns the result record.

    The weights are the refit's when there is one, else the best trial's best checkpoint."""
    source = refit.checkpoint if refit else Checkpoint(best.checkpoint_path)
    with source.as_directory() as restored:
        hf_dir = Path(restored) / RayTrainReportCallback.CHECKPOINT_NAME
        model = AutoModelForSequenceClassification.from_pretrained(hf_dir)
        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    test = evaluate_model(model, tokenizer, test_split, cfg.train.eval_batch_size, "test")
    record = {
        "trial_id": best.trial_id,
        "hyperparameters": best.hyperparameters,
        "best_epoch": best.epoch,
        "validation_metrics": best.validation,
        "test_metrics": test,
        "metric": cfg.search.metric,
        "mode": cfg.search.mode,
        "model": cfg.model.name,
        "checkpoint": best.checkpoint_path,
        "refit": refit.details if refit else None,  # None: the weights are the checkpoint's
    }
    # Written beside the destination and renamed into place, so a failed export leaves no
    # half-written model folder.
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    (partial / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)
    return record


def _exists(uri: str) -> bool:
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    except pyarrow.ArrowInvalid:
        fs, path = pyarrow.fs.LocalFileSystem(), uri
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
