"""The paired bootstrap: intervals of a score, ties with the winner, the gain over the defaults."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from search.bootstrap import (
    Interval,
    difference,
    interval,
    winner_and_others,
)
from search.scorer import Scorer
from trainable.metrics import METRIC_MODES


def _with_errors(labels: np.ndarray, wrong: np.ndarray, num_classes: int) -> np.ndarray:
    """The labels, wrong at the given positions (the next class)."""
    predictions = labels.copy()
    predictions[wrong] = (labels[wrong] + 1) % num_classes
    return predictions


@pytest.fixture
def messages() -> np.ndarray:
    """1,000 messages, about 13% spam (class 1), as in the SMS Spam Collection."""
    return (np.random.default_rng(7).random(1000) < 0.13).astype(int)


def test_identical_predictions_tie_with_an_interval_of_exactly_zero(messages):
    predictions = _with_errors(messages, np.arange(0, 1000, 25), 2)
    for metric in ("accuracy", "f1", "macro_f1", "weighted_f1", "mcc"):
        score = Scorer(metric, 2, positive_id=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tie = difference(messages, predictions, predictions.copy(), score)
        assert (tie.value, tie.low, tie.high) == (0.0, 0.0, 0.0)
        assert tie.contains_zero
        assert str(tie) == "0.0000 [0.0000, 0.0000]"


def test_thirty_more_right_of_a_thousand_is_not_a_tie(messages):
    errors = np.random.default_rng(1).permutation(1000)
    better = _with_errors(messages, errors[:20], 2)  # 98.0% right
    worse = _with_errors(messages, errors[:50], 2)  # 95.0%: wrong on 30 more
    score = Scorer("accuracy", 2)

    gain = difference(messages, better, worse, score)
    assert gain.value == pytest.approx(0.03)
    assert 0 < gain.low < 0.03 < gain.high
    assert not gain.contains_zero

    loss = difference(messages, worse, better, score)
    assert loss.value == pytest.approx(-0.03)
    assert loss.high < 0
    # Paired: the same resamples for both orders, so the interval is exactly mirrored.
    assert (loss.low, loss.high) == pytest.approx((-gain.high, -gain.low))


def test_an_interval_holds_its_value_stays_in_range_and_repeats_with_its_seed(messages):
    predictions = _with_errors(messages, np.random.default_rng(2).permutation(1000)[:60], 2)
    for metric in ("accuracy", "f1"):
        score = Scorer(metric, 2, positive_id=1)
        result = interval(messages, predictions, score, seed=3)
        assert 0 <= result.low < result.value < result.high <= 1
        assert result == interval(messages, predictions, score, seed=3)
        assert result != interval(messages, predictions, score, seed=4)
    narrow = interval(messages, predictions, score, confidence=0.5)
    wide = interval(messages, predictions, score, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_the_full_sample_value_is_scikit_learns():
    rng = np.random.default_rng(5)
    three = rng.integers(0, 3, 300)
    guesses = np.where(rng.random(300) < 0.7, three, rng.integers(0, 3, 300))
    assert interval(three, guesses, Scorer("macro_f1", 3)).value == pytest.approx(
        f1_score(three, guesses, average="macro")
    )
    assert interval(three, guesses, Scorer("mcc", 3)).value == pytest.approx(
        matthews_corrcoef(three, guesses)
    )

    two = rng.integers(0, 2, 300)
    guesses = np.where(rng.random(300) < 0.8, two, 1 - two)
    for positive_id in (0, 1):
        value = interval(two, guesses, Scorer("f1", 2, positive_id=positive_id)).value
        assert value == pytest.approx(f1_score(two, guesses, pos_label=positive_id))
    assert f1_score(two, guesses, pos_label=0) != pytest.approx(f1_score(two, guesses, pos_label=1))


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_resampled_scores_are_scikit_learns_on_the_resample(num_classes):
    # A resample is the full set weighted by how often each example was drawn.
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, 200)
    predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, num_classes, 200))
    ids = list(range(num_classes))
    expected = {
        "accuracy": lambda w: accuracy_score(labels, predictions, sample_weight=w),
        "macro_f1": lambda w: f1_score(
            labels, predictions, labels=ids, average="macro", sample_weight=w, zero_division=0
        ),
        "weighted_f1": lambda w: f1_score(
            labels, predictions, labels=ids, average="weighted", sample_weight=w, zero_division=0
        ),
        "mcc": lambda w: matthews_corrcoef(labels, predictions, sample_weight=w),
    }
    if num_classes == 2:
        expected["f1"] = lambda w: f1_score(
            labels, predictions, pos_label=1, sample_weight=w, zero_division=0
        )
    assert set(expected) | {"f1", "loss"} == set(METRIC_MODES)

    for _ in range(5):
        drawn = np.bincount(rng.integers(0, 200, 200), minlength=200)
        true = np.bincount(labels, weights=drawn, minlength=num_classes)
        predicted = np.bincount(predictions, weights=drawn, minlength=num_classes)
        correct = np.bincount(
            labels, weights=drawn * (labels == predictions), minlength=num_classes
        )
        for metric, sklearn_score in expected.items():
            score = Scorer(metric, num_classes, positive_id=1)
            assert score.of_counts(correct, true, predicted) == pytest.approx(sklearn_score(drawn))


def test_undefined_scores_are_zero_as_in_scikit_learn():
    # No positive in the labels nor the predictions: F1 and MCC are undefined.
    negatives = np.zeros(50, dtype=int)
    for metric in ("f1", "mcc"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = interval(negatives, negatives, Scorer(metric, 2, positive_id=1))
        assert (result.value, result.low, result.high) == (0.0, 0.0, 0.0)


def test_the_comparison_names_the_trials_that_tie_with_the_winner(messages):
    errors = np.random.default_rng(6).permutation(1000)
    winner = _with_errors(messages, errors[:20], 2)
    others = {
        "same": winner.copy(),
        "one_more_wrong": _with_errors(messages, errors[:21], 2),
        "defaults": _with_errors(messages, errors[:80], 2),
    }
    score = Scorer("accuracy", 2)
    differences = winner_and_others(messages, winner, others, score).differences

    assert list(differences) == list(others)
    assert [name for name, d in differences.items() if d.contains_zero] == [
        "same",
        "one_more_wrong",
    ]
    assert differences["defaults"].value == pytest.approx(-0.06)
    assert differences["defaults"].high < 0
    # The same resamples as a pairwise difference with the same seed.
    assert differences["defaults"] == difference(messages, others["defaults"], winner, score)


@pytest.mark.parametrize("metric", ["macro_f1", "mcc"])
def test_one_pass_gives_each_model_s_interval_and_difference_as_alone(metric):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 12, 3000)
    models = [
        np.where(rng.random(3000) < p, labels, rng.integers(0, 12, 3000))
        for p in (0.7, 0.6, 0.65, 0.7)
    ]
    score = Scorer(metric, 12)
    others = {f"trial_{i}": model for i, model in enumerate(models[1:])}
    compared = winner_and_others(labels, models[0], others, score, resamples=500, seed=4)

    assert compared.winner == interval(labels, models[0], score, resamples=500, seed=4)
    for name, model in others.items():
        assert compared.others[name] == interval(labels, model, score, resamples=500, seed=4)
        alone = difference(labels, model, models[0], score, resamples=500, seed=4)
        assert compared.differences[name] == alone


def test_an_interval_reads_as_text_and_as_json():
    result = Interval(0.971234, 0.96009, 0.98104)
    assert str(result) == "0.9712 [0.9601, 0.9810]"
    assert json.loads(json.dumps(result.to_dict())) == {
        "value": 0.9712,
        "low": 0.9601,
        "high": 0.981,
    }
    assert not result.contains_zero
    assert Interval(-0.01, -0.00001, 0.02).to_dict()["low"] == 0.0
    assert str(Interval(-0.01, -0.00001, 0.02)) == "-0.0100 [0.0000, 0.0200]"


def test_loss_and_unknown_metrics_are_refused():
    with pytest.raises(ValueError, match="loss cannot be bootstrapped"):
        Scorer("loss", 2)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        Scorer("auc", 2)
    with pytest.raises(ValueError, match="two classes and positive_id"):
        Scorer("f1", 3, positive_id=1)
    with pytest.raises(ValueError, match="two classes and positive_id"):
        Scorer("f1", 2)


def test_mismatched_or_out_of_range_predictions_are_refused():
    score = Scorer("accuracy", 2)
    with pytest.raises(ValueError, match="same examples"):
        difference([0, 1, 1], [0, 1, 1], [0, 1], score)
    with pytest.raises(ValueError, match="class ids from 0 to 1"):
        interval([0, 1, 1], [0, 2, 1], score)
    with pytest.raises(ValueError, match="1-D array of class ids"):
        interval([0, 1, 1], [0.0, 1.0, 1.0], score)
    with pytest.raises(ValueError, match="labels is empty"):
        interval([], [], score)
