"""The scores of every evaluation: accuracy, macro and weighted F1, MCC, precision, recall and
F1 of each class and, for two classes, of the positive one (the HF Trainer adds `eval_`).

`search.metric` names one of them to rank trials by. The arithmetic is scikit-learn's, behind
the `evaluate` metric kept in `metric_scripts/`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np

METRIC_SCRIPT = Path(__file__).parent / "metric_scripts" / "classification_metrics"
# What search.metric may name, and the direction that is better for each.
METRIC_MODES = {
    "f1": "max",  # F1 of the positive class: two classes only
    "macro_f1": "max",  # mean of the classes' F1: every class counts the same
    "weighted_f1": "max",  # mean of the classes' F1 weighted by their support
    "accuracy": "max",
    "mcc": "max",  # Matthews correlation: -1 to 1, 0 for chance, robust to imbalance
    "loss": "min",
}
BINARY_METRICS = ("f1", "precision", "recall")
PER_CLASS = ("precision", "recall", "f1")
# Timing figures the Trainer adds to every evaluation: not scores.
TIMINGS = ("runtime", "samples_per_second", "steps_per_second")


@cache
def _metric():
    import evaluate

    return evaluate.load(str(METRIC_SCRIPT))


def class_key(label: str) -> str:
    """A label as it appears in metric names (`eval_f1_<key>`): MLflow allows no other signs."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", str(label)).strip("_") or "_"


class ClassificationMetrics:
    """`compute_metrics` for the HF Trainer, knowing the label names and the positive class."""

    def __init__(self, labels: list[str], positive_label: str | None = None):
        self.labels = list(labels)
        self.positive_id = None if positive_label is None else self.labels.index(positive_label)
        # The last evaluation's (predictions, references), for a callback that keeps them
        # (trainable/callbacks.py SavePredictions): metrics carry scores only.
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, eval_pred) -> dict[str, float]:
        logits, references = eval_pred
        predictions = np.argmax(logits, axis=-1)
        self.last = (predictions, np.asarray(references))
        return self.scores(predictions, references)

    def scores(self, predictions, references) -> dict[str, float]:
        """Flat scores, per-class ones named `<precision|recall|f1>_<label>`."""
        result = _metric().compute(
            predictions=predictions,
            references=references,
            num_classes=len(self.labels),
            positive_id=self.positive_id,
        )
        per_class = result.pop("per_class")
        for name in PER_CLASS:
            for label, value in zip(self.labels, per_class[name], strict=True):
                result[f"{name}_{class_key(label)}"] = float(value)
        return result

    def per_class(self, metrics: dict[str, float], prefix: str, support) -> dict[str, dict]:
        """`{label: {precision, recall, f1, support}}` from an evaluation's flat metrics."""
        return {
            label: {
                **{name: metrics[f"{prefix}_{name}_{class_key(label)}"] for name in PER_CLASS},
                "support": int(count),
            }
            for label, count in zip(self.labels, support, strict=True)
        }


def predict_split(
    model, tokenizer, dataset, batch_size: int, prefix: str, metrics: ClassificationMetrics
) -> tuple[dict[str, float], np.ndarray]:
    """Loss and scores of a trained model on one tokenized split, keys prefixed `<prefix>_`,
    and the class it predicts for each row."""
    import tempfile

    from transformers import PrinterCallback, Trainer, TrainingArguments

    from trainable.collate import TokenBatches, read_batch

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            disable_tqdm=True,
            log_level="warning",
            remove_unused_columns=False,  # TokenBatches come padded, the model's inputs alone
        )
        trainer = Trainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            data_collator=read_batch,
            compute_metrics=metrics,
        )
        trainer.remove_callback(PrinterCallback)  # the caller reports; no raw dict on stdout
        output = trainer.predict(TokenBatches(dataset, tokenizer), metric_key_prefix=prefix)
    scores = {k: v for k, v in output.metrics.items() if not k.endswith(TIMINGS)}
    return scores, np.argmax(output.predictions, axis=-1)
