"""Did the search pay off? The winner's validation score with a 95% interval, the trials it
cannot be told apart from, and what the exported model gains on test over the defaults' trial.

Paired bootstraps (search/bootstrap.py) over the examples: validation predictions come from
each trial's best evaluation (reported with its scores), test predictions from the exported
model and from the defaults' trial's best checkpoint. Test chooses nothing: it is scored after
selection, for the record.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

from search.bootstrap import Interval, compare_to_winner, difference, interval
from search.scorer import Scorer
from search.selection import PREDICTIONS_KEY, REFERENCES_KEY
from trainable.config import Config
from trainable.hyperparameters import ran_point, typed
from trainable.metrics import decode_predictions

CONFIDENCE = 0.95
RESAMPLES = 2000


def scorer(cfg: Config) -> Scorer | None:
    """The search's metric as a bootstrap scorer; None for loss, which predictions cannot give."""
    if cfg.search.metric == "loss":
        return None
    labels = cfg.data.labels
    positive = None if cfg.data.positive_label is None else labels.index(cfg.data.positive_label)
    return Scorer(cfg.search.metric, len(labels), positive)


def validation_payoff(bests: dict, cfg: Config, winner_id: str) -> dict[str, Any] | None:
    """The winner's interval and every other trial's difference to it, on validation.
    `bests`: each trial's best evaluation (selection.best_per_trial).

    Each trial kept its predictions with the true classes in the order it evaluated them.
    Every trial evaluates in the same order (the same seed and batch size group the same
    lengths), which the check on the true classes confirms: a trial that evaluated in another
    order is left out rather than compared on mismatched examples."""
    score = scorer(cfg)
    evaluated = {
        trial_id: (
            decode_predictions(row[REFERENCES_KEY]),
            decode_predictions(row[PREDICTIONS_KEY]),
        )
        for trial_id, (_, row) in bests.items()
        if isinstance(row.get(PREDICTIONS_KEY), str) and isinstance(row.get(REFERENCES_KEY), str)
    }
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
    cfg: Config, test_labels, exported: np.ndarray, defaults: np.ndarray, defaults_id: str
) -> dict[str, Any]:
    """The exported model's test score minus the defaults' trial's, with its interval."""
    gain: Interval = difference(
        np.asarray(test_labels), exported, defaults, scorer(cfg), **_settings()
    )
    return {
        "metric": cfg.search.metric,
        "defaults_trial": defaults_id,
        "defaults_hyperparameters": typed(cfg.search.initial_points[0]),
        **gain.to_dict(),
        "distinguishable": not gain.contains_zero,
    }


def _settings() -> dict[str, Any]:
    return {"resamples": RESAMPLES, "confidence": CONFIDENCE}
