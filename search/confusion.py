"""The test split's confusion matrix read at tens of classes: each true class's shares, the
most frequent confusions, and the classes from the worst scored to the best.

Raw counts hide a rare class's errors beside a common class's; shares of the true class
(a row divided by its total) put every class on the same scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOP_CONFUSIONS = 10


def shares(matrix) -> np.ndarray:
    """Each row divided by its total: the share of a true class predicted as each class (0 for
    a class without test examples)."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def top_confusions(matrix, labels: list[str], n: int = TOP_CONFUSIONS) -> list[dict[str, Any]]:
    """The `n` most frequent errors as true -> predicted, with their count and share of the true
    class; ties in the order of `labels`. Cells without an error are left out."""
    counts = np.asarray(matrix, dtype=np.int64)
    errors = counts.copy()
    np.fill_diagonal(errors, 0)
    true, predicted = np.nonzero(errors)
    # lexsort sorts by its last key first: the count (descending), then true, then predicted.
    order = np.lexsort((predicted, true, -errors[true, predicted]))[:n]
    rates = shares(counts)
    return [
        {
            "true": labels[t],
            "predicted": labels[p],
            "count": int(errors[t, p]),
            "share_of_true": round(float(rates[t, p]), 4),
        }
        for t, p in zip(true[order], predicted[order], strict=True)
    ]


def worst_first(per_class: dict[str, dict[str, float]]) -> list[str]:
    """The labels by F1, lowest first; ties by recall, then in the given order."""
    return sorted(per_class, key=lambda label: (per_class[label]["f1"], per_class[label]["recall"]))
