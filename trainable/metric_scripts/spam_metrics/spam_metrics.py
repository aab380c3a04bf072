"""Accuracy plus precision, recall and F1 of the positive class (spam), as an `evaluate` metric.

Kept in the project so `evaluate.load(<this folder>)` works offline: the hub's
`evaluate.load("accuracy")` fetches its script from the network.
"""

import datasets
import evaluate
import numpy as np


class SpamMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy and positive-class precision, recall and F1.",
            citation="",
            inputs_description="predictions and references: class ids; pos_label: the positive id",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, pos_label=1):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        true_pos = int(np.sum((predictions == pos_label) & (references == pos_label)))
        predicted_pos = int(np.sum(predictions == pos_label))
        actual_pos = int(np.sum(references == pos_label))
        precision = true_pos / predicted_pos if predicted_pos else 0.0
        recall = true_pos / actual_pos if actual_pos else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "accuracy": float(np.mean(predictions == references)),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
