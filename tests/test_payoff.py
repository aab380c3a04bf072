"""On test, apart: the search's pick against the defaults' trial, the refit against the pick;
and the defaults' trial runs its whole schedule whatever ASHA makes of it."""

from __future__ import annotations

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from sklearn.metrics import f1_score

from search.payoff import DEFAULTS, PICK, DefaultsTrial, Payoff
from search.scheduler import DefaultsRunToTheEnd
from search.selection import BestTrial
from search.summary import gain_lines
from trainable.config import Config, SearchConfig
from trainable.scoring import Scored
from trainable.task import resolve

DEFAULTS_POINT = {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3}


def _cfg() -> Config:
    return resolve(Config(search=SearchConfig(initial_points=[DEFAULTS_POINT])), ["ham", "spam"])


def _best(trial_id: str) -> BestTrial:
    point = {"learning_rate": 1e-4, "batch_size": 16, "epochs": 2}
    return BestTrial(trial_id, point, 2, {"eval_f1": 0.9}, "unused")


def _predictions(labels: np.ndarray, wrong: int, seed: int) -> np.ndarray:
    predicted = labels.copy()
    flip = np.random.default_rng(seed).choice(len(labels), wrong, replace=False)
    predicted[flip] = 1 - predicted[flip]
    return predicted


def test_the_pick_is_compared_with_the_defaults_and_the_refit_with_the_pick():
    labels = np.array([0] * 700 + [1] * 300)
    export, pick, defaults = (_predictions(labels, n, seed) for seed, n in enumerate((20, 60, 150)))
    scored = {
        "export": Scored({}, export),
        PICK: Scored({}, pick, {"pid": 1}),
        DEFAULTS: Scored({}, defaults, {"pid": 1}),
    }
    payoff = Payoff({"winner": {}}, DefaultsTrial("d", "unused", 2, 3))
    record = payoff.record(_cfg(), labels, scored, _best("w"))

    over_defaults, over_pick = record["search_over_defaults"], record["refit_over_pick"]
    f1 = {name: f1_score(labels, p) for name, p in (("e", export), ("p", pick), ("d", defaults))}
    assert over_defaults["value"] == pytest.approx(f1["p"] - f1["d"], abs=1e-4)
    assert over_pick["value"] == pytest.approx(f1["e"] - f1["p"], abs=1e-4)
    assert over_defaults["distinguishable"] and over_pick["distinguishable"]
    assert not over_defaults["pick_is_defaults"]
    lines = gain_lines(record)
    assert lines[0].startswith(
        "  the search's pick over the defaults (learning_rate=5.00e-05 batch_size=8 epochs=3, "
        "trial d, stopped after 2 of its 3 epochs; both trained on train): test f1 +"
    )
    assert lines[0].endswith(": a real gain")
    assert lines[1].startswith("  the refit over the pick (train + validation against train)")


def test_a_pick_that_is_the_defaults_trial_is_said_in_those_words():
    labels = np.array([0, 1] * 50)
    scored = {"export": Scored({}, labels.copy())}  # no refit: the export is the pick
    payoff = Payoff({"winner": {}}, DefaultsTrial("d", "unused", 3, 3))
    record = payoff.record(_cfg(), labels, scored, _best("d"))
    assert record["search_over_defaults"]["pick_is_defaults"]
    assert record["refit_over_pick"] is None
    assert gain_lines(record) == [
        "  the search picked the defaults' own trial (learning_rate=5.00e-05 batch_size=8 "
        "epochs=3, trial d): no gain to show"
    ]


def test_asha_stops_a_trial_at_its_rung_but_not_the_defaults_trial():
    scheduler = DefaultsRunToTheEnd(
        DEFAULTS_POINT, time_attr="training_iteration", max_t=3, grace_period=1,
        reduction_factor=2, stop_last_trials=False,
    )  # fmt: skip
    scheduler.set_search_properties("eval_f1", "max")
    good = Trial("fake", config={"learning_rate": 1e-4, "batch_size": 16, "epochs": 3}, stub=True)
    defaults = Trial("fake", config=dict(DEFAULTS_POINT), stub=True)
    worse = Trial("fake", config={"learning_rate": 3e-4, "batch_size": 32, "epochs": 3}, stub=True)
    for trial in (good, defaults, worse):
        scheduler.on_trial_add(None, trial)
    first_epoch = {"training_iteration": 1}
    assert scheduler.on_trial_result(None, good, {**first_epoch, "eval_f1": 0.9}) == "CONTINUE"
    # Below the rung's cut-off, as ASHA itself says of the next trial with the same score.
    assert scheduler.on_trial_result(None, defaults, {**first_epoch, "eval_f1": 0.5}) == (
        TrialScheduler.CONTINUE
    )
    assert scheduler.on_trial_result(None, worse, {**first_epoch, "eval_f1": 0.5}) == (
        TrialScheduler.STOP
    )
