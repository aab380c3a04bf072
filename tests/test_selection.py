"""Ranking: the metric first, in its mode; the tie-breaker only between equal metric values."""

from __future__ import annotations

import math

from search.selection import Ranking


def test_the_tie_breaker_never_outranks_a_better_metric():
    # At about 1,000 positives one message moves F1 by ~0.0005: the old objective
    # F1 - 1e-3 * loss picked the lower F1 here (0.9705 - 0.00001 > 0.9710 - 0.0009).
    ranking = Ranking("f1", "max", "loss")
    better_f1 = {"eval_f1": 0.9710, "eval_loss": 0.90}
    lower_loss = {"eval_f1": 0.9705, "eval_loss": 0.01}
    assert 0.9705 - 1e-3 * 0.01 > 0.9710 - 1e-3 * 0.90  # what the old objective did
    assert ranking.better(better_f1, lower_loss)
    assert not ranking.better(lower_loss, better_f1)


def test_equal_metric_values_go_to_the_lower_loss():
    ranking = Ranking("macro_f1", "max", "loss")
    a = {"eval_macro_f1": 0.8, "eval_loss": 0.2}
    b = {"eval_macro_f1": 0.8, "eval_loss": 0.3}
    assert ranking.better(a, b) and not ranking.better(b, a)
    assert not ranking.better(a, a)


def test_a_tie_breaker_that_is_better_high_breaks_ties_upwards():
    ranking = Ranking("loss", "min", "accuracy")
    a = {"eval_loss": 0.2, "eval_accuracy": 0.9}
    b = {"eval_loss": 0.2, "eval_accuracy": 0.8}
    c = {"eval_loss": 0.1, "eval_accuracy": 0.1}
    assert sorted([b, c, a], key=ranking.key, reverse=True) == [c, a, b]


def test_missing_or_non_finite_scores_rank_nowhere():
    ranking = Ranking("f1", "max", "loss")
    assert ranking.key({"eval_f1": math.nan}) is None
    assert ranking.key({"eval_loss": 0.1}) is None
    assert ranking.better({"eval_f1": 0.1, "eval_loss": math.nan}, {"eval_f1": math.nan})
    assert ranking.better({"eval_f1": 0.5, "eval_loss": 0.3}, {"eval_f1": 0.5})
