"""The confusion matrix read at 50 classes: shares of the true class, the most frequent
confusions, the classes worst first, the summary's lines and the drawn matrix."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from search.confusion import shares, top_confusions, worst_first
from search.report_plots import plot_confusion_matrix
from search.summary import per_class_lines

CLASSES = 50
LABELS = [f"topic_{i:02d}" for i in range(CLASSES)]


@pytest.fixture(scope="module")
def predictions():
    """Test predictions at 50 classes: supports from 5 to 1,500, a tenth of each class wrong."""
    rng = np.random.default_rng(0)
    support = rng.integers(5, 1500, CLASSES)
    truth = np.repeat(np.arange(CLASSES), support)
    predicted = truth.copy()
    wrong = rng.random(len(truth)) < 0.1
    predicted[wrong] = rng.integers(0, CLASSES, wrong.sum())
    return truth, predicted


def record_of(truth, predicted) -> dict:
    matrix = confusion_matrix(truth, predicted, labels=range(CLASSES))
    p, r, f, s = precision_recall_fscore_support(
        truth, predicted, labels=range(CLASSES), zero_division=0
    )
    per_class = {
        label: {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
        for i, label in enumerate(LABELS)
    }
    return {
        "trial_id": "abc_00001",
        "labels": LABELS,
        "test_per_class": per_class,
        "confusion_matrix": {"labels": LABELS, "matrix": matrix.tolist()},
    }


def test_shares_divide_each_row_by_its_true_class():
    matrix = [[8, 2, 0], [0, 0, 0], [1, 1, 2]]
    assert shares(matrix).tolist() == [[0.8, 0.2, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]]


def test_top_confusions_are_the_largest_off_diagonal_cells(predictions):
    truth, predicted = predictions
    matrix = confusion_matrix(truth, predicted, labels=range(CLASSES))
    top = top_confusions(matrix, LABELS)
    errors = sorted(
        ((-int(n), t, p) for (t, p), n in np.ndenumerate(matrix) if t != p and n), key=tuple
    )[:10]
    assert [(c["true"], c["predicted"], c["count"]) for c in top] == [
        (LABELS[t], LABELS[p], -n) for n, t, p in errors
    ]
    for c in top:
        t = LABELS.index(c["true"])
        assert c["share_of_true"] == pytest.approx(c["count"] / (truth == t).sum(), abs=1e-4)
    assert top_confusions(np.eye(3, dtype=int), ["a", "b", "c"]) == []  # no error, none named


def test_worst_first_orders_by_f1_then_recall():
    scores = {
        "a": {"f1": 0.9, "recall": 0.9},
        "b": {"f1": 0.5, "recall": 0.7},
        "c": {"f1": 0.5, "recall": 0.4},
        "d": {"f1": 1.0, "recall": 1.0},
    }
    assert worst_first(scores) == ["c", "b", "a", "d"]


def test_the_summary_at_50_classes_names_the_worst_and_the_confusions(predictions):
    record = record_of(*predictions)
    lines = per_class_lines(record)
    assert lines[0] == "  per class on test, worst first:"
    worst = worst_first(record["test_per_class"])
    assert [line.split()[0] for line in lines[2:12]] == worst[:10]
    assert lines[12] == "    ... 40 more classes in report/per_class.md"
    header = lines.index(
        "  most frequent confusions on test (true -> predicted: count, share of true):"
    )
    top = top_confusions(record["confusion_matrix"]["matrix"], LABELS)
    assert lines[header + 1 :] == [
        f"    {c['true']} -> {c['predicted']}: {c['count']} ({c['share_of_true']:.1%})" for c in top
    ]  # and no 50-column matrix


def test_the_matrix_at_50_classes_is_drawn_at_a_readable_size(predictions, tmp_path):
    plot_confusion_matrix(record_of(*predictions), tmp_path / "matrix.png")
    width, height = Image.open(tmp_path / "matrix.png").size
    # Cells of about a quarter inch at 110 dpi: 50 rows of 26 pixels, labels and counts in
    # 7-point type, not a 4,000-pixel image of 2,500 numbers.
    assert 1200 < width < 2000 and 1200 < height < 2000
