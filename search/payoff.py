"""Did the search pay off? The winner's validation score with a 95% interval, the trials it
cannot be told apart from, and what the exported model gains on test over the defaults' trial.

Paired bootstraps (search/bootstrap.py) over the examples: validation predictions come from
each trial's best evaluation (the file its worker wrote beside its checkpoints,
trainable/predictions.py), test predictions from the exported model and from the defaults'
trial's best checkpoint, both scored in one process where the trials ran (search/export.py).
Test chooses nothing: it is scored after selection, for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

from search.bootstrap import Interval, compare_to_winner, difference, interval
from search.scorer import Scorer
from search.selection import Ranking, best_per_trial
from trainable import predictions
from trainable.config import Config
from trainable.hyperparameters import ran_point, typed
from trainable.scoring import Scored

CONFIDENCE = 0.95
RESAMPLES = 2000


def scorer(cfg: Config) -> Scorer | None:
    """The search's metric as a bootstrap scorer; None for loss, which predictions cannot give."""
    if cfg.search.metric == "loss":
        return None
    labels = cfg.data.labels
    positive = None if cfg.data.positive_label is None else labels.index(cfg.data.positive_label)
    return Scorer(cfg.search.metric, len(labels), positive)


@dataclass
class Payoff:
    """What the validation side found, and the defaults' trial to score on test."""

    validation_bootstrap: dict[str, Any] | None = None
    defaults: tuple[str, str] | None = None  # (trial id, best checkpoint)

    def record(self, cfg: Config, test_labels, exported: Scored, defaults: Scored | None) -> dict:
        """The record's `validation_bootstrap` and `gain_over_defaults`."""
        gain = None
        if self.defaults is not None and defaults is not None:
            try:
                gain = test_gain(cfg, test_labels, exported.predicted, defaults, self.defaults[0])
            except ValueError as exc:
                return _no_intervals(exc).record(cfg, test_labels, exported, None)
        record = {"validation_bootstrap": self.validation_bootstrap, "gain_over_defaults": gain}
        if gain is None:
            record["gain_over_defaults_missing"] = (
                "no defaults' trial (search.initial_points is empty)"
                if not cfg.search.initial_points
                else "the defaults' trial kept no checkpoint (it failed or stopped before an "
                "evaluation)"
            )
        return record


def _no_intervals(reason: Exception) -> Payoff:
    # The model is exported all the same: a record without intervals beats none.
    print(f"no bootstrap intervals: {reason}", flush=True)
    return Payoff()


def plan_payoff(cfg: Config, results, winner_id: str, checkpoint_storage: str) -> Payoff:
    """The validation bootstrap from each trial's best evaluation's file, and (when there is
    one) the defaults' trial whose checkpoint the test split compares with the export."""
    bests = best_per_trial(results, Ranking.of(cfg.search))
    try:
        boot = validation_payoff(kept_predictions(bests, checkpoint_storage), cfg, winner_id)
    except ValueError as exc:
        return _no_intervals(exc)
    return Payoff(boot, defaults_trial(bests, cfg) if boot is not None else None)


def kept_predictions(bests: dict, checkpoint_storage: str) -> dict[str, tuple]:
    """Trial id → (references, predictions) of its best evaluation (selection.best_per_trial),
    read from the file its worker wrote; a trial without one is left out."""
    kept = {}
    for trial_id, (_, row) in bests.items():
        epoch = row.get("epoch")  # the HF Trainer's, which names the file
        if isinstance(epoch, (int, float)) and np.isfinite(epoch):
            found = predictions.read(checkpoint_storage, trial_id, round(epoch))
            if found is not None:
                kept[trial_id] = found
    return kept


def validation_payoff(evaluated: dict, cfg: Config, winner_id: str) -> dict[str, Any] | None:
    """The winner's interval and every other trial's difference to it, on validation.
    `evaluated`: trial id → (references, predictions) of its best evaluation.

    Each trial kept its predictions with the true classes in the order it evaluated them.
    Every trial evaluates in the same order (the same seed and batch size group the same
    lengths), which the check on the true classes confirms: a trial that evaluated in another
    order is left out rather than compared on mismatched examples."""
    score = scorer(cfg)
    evaluated = dict(evaluated)
    if score is None or winner_id not in evaluated:
        return None
    labels, winner = evaluated.pop(winner_id)
    others = {
        trial_id: predictions
        for trial_id, (references, predictions) in evaluated.items()
        if np.array_equal(references, labels)
    }
    differences = compare_to_winner(labels, winner, others, score, **_settings())
    ordered = sorted(differences.items(), key=lambda item: item[1].value, reverse=True)
    own = {trial_id: interval(labels, p, score, **_settings()) for trial_id, p in others.items()}
    return {
        "metric": cfg.search.metric,
        "confidence": CONFIDENCE,
        "resamples": RESAMPLES,
        "examples": len(labels),
        # With several seeds a trial ranks by their mean score; its kept predictions, and so
        # its interval, are its first seed's, whose checkpoint is the one exported.
        "seeds": cfg.search.repeats,
        "winner": {
            "trial_id": winner_id,
            **interval(labels, winner, score, **_settings()).to_dict(),
        },
        "difference_to_winner": {trial_id: d.to_dict() for trial_id, d in ordered},
        "others": {trial_id: own[trial_id].to_dict() for trial_id, _ in ordered},
        "tied_with_winner": [trial_id for trial_id, d in ordered if d.contains_zero],
    }


def defaults_trial(bests: dict, cfg: Config) -> tuple[str, str] | None:
    """(trial id, best checkpoint) of the trial that ran search.initial_points[0] (the HF
    Trainer's defaults in the shipped configs); None without one, or without its checkpoint."""
    if not cfg.search.initial_points:
        return None
    point = typed(cfg.search.initial_points[0])
    for trial_id, (result, row) in bests.items():
        checkpoint = row.get(CHECKPOINT_PATH_KEY)
        if ran_point(result.config, point) and checkpoint:
            return trial_id, checkpoint
    return None


def test_gain(
    cfg: Config, test_labels, exported: np.ndarray, defaults: Scored, defaults_id: str
) -> dict[str, Any]:
    """The exported model's test score minus the defaults' trial's, with its interval."""
    gain: Interval = difference(
        np.asarray(test_labels), exported, defaults.predicted, scorer(cfg), **_settings()
    )
    return {
        "metric": cfg.search.metric,
        "defaults_trial": defaults_id,
        "defaults_hyperparameters": typed(cfg.search.initial_points[0]),
        **gain.to_dict(),
        "distinguishable": not gain.contains_zero,
        "defaults_scored_on": defaults.where,
    }


def _settings() -> dict[str, Any]:
    return {"resamples": RESAMPLES, "confidence": CONFIDENCE}
