"""Metrics reported by every evaluation: accuracy, spam precision, recall and F1 (HF adds eval_)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import evaluate
import numpy as np

METRIC_SCRIPT = Path(__file__).parent / "metric_scripts" / "spam_metrics"


@cache
def _metric() -> evaluate.EvaluationModule:
    return evaluate.load(str(METRIC_SCRIPT))


def compute_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    return _metric().compute(predictions=predictions, references=labels)


def evaluate_model(model, tokenizer, dataset, batch_size: int, prefix: str) -> dict[str, float]:
    """Loss and metrics of a trained model on one tokenized split, keys prefixed `<prefix>_`."""
    return predict_split(model, tokenizer, dataset, batch_size, prefix)[0]


def predict_split(
    model, tokenizer, dataset, batch_size: int, prefix: str
) -> tuple[dict[str, float], np.ndarray]:
    """`evaluate_model`'s scores, and the class the model predicts for each row."""
    import tempfile

    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            disable_tqdm=True,
            log_level="warning",
        )
        trainer = Trainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
        )
        trainer.remove_callback(PrinterCallback)  # the caller reports; no raw dict on stdout
        output = trainer.predict(dataset, metric_key_prefix=prefix)
    keep = ("loss", "accuracy", "precision", "recall", "f1")
    metrics = {k: v for k, v in output.metrics.items() if k.removeprefix(f"{prefix}_") in keep}
    return metrics, np.argmax(output.predictions, axis=-1)
