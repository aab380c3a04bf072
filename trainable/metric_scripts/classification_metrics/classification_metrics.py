"""Accuracy, macro and weighted F1, MCC and per-class precision, recall and F1, as an
`evaluate` metric whose arithmetic is scikit-learn's.

Kept in the project so `evaluate.load(<this folder>)` works offline: the hub's
`evaluate.load("accuracy")` fetches its script from the network.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)


class ClassificationMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy, macro/weighted F1, MCC and per-class precision, recall, F1.",
            citation="",
            inputs_description=(
                "predictions and references: class ids; num_classes: how many ids there are; "
                "positive_id: the class that `precision`, `recall` and `f1` are about (two "
                "classes), or None"
            ),
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_classes, positive_id=None):
        ids = list(range(num_classes))
        # Every class is scored, present in this split or not; a class never predicted scores
        # 0 precision rather than a warning.
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=ids, average=None, zero_division=0
        )
        scores = {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(
                f1_score(references, predictions, labels=ids, average="macro", zero_division=0)
            ),
            "weighted_f1": float(
                f1_score(references, predictions, labels=ids, average="weighted", zero_division=0)
            ),
            "mcc": float(matthews_corrcoef(references, predictions)),
            "per_class": {
                "precision": precision.tolist(),
                "recall": recall.tolist(),
                "f1": f1.tolist(),
                "support": np.asarray(support).tolist(),
            },
        }
        if positive_id is not None:
            scores["precision"] = float(precision[positive_id])
            scores["recall"] = float(recall[positive_id])
            scores["f1"] = float(f1[positive_id])
        return scores
