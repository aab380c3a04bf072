"""Did the search pay off? The winner's validation score with a 95% interval, the trials it
cannot be told apart from, and on test, apart: what the search's pick gains over the defaults'
trial (both trained on the same data, the defaults run to the end of their schedule:
search/scheduler.py) and what the refit gains over the pick.

Paired bootstraps (search/bootstrap.py) over the examples: validation predictions come from
each trial's best evaluation (the file its worker wrote beside its checkpoints,
trainable/predictions.py), test predictions from the exported model, the pick's and the
defaults' trials' best checkpoints, scored in one process where the trials ran
(search/export.py).
Test chooses nothing: it is scored after selection, for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.result import TRAINING_ITERATION

from search.bootstrap import Interval, difference, winner_and_others
from search.export import exported_checkpoint
from search.scorer import Scorer
from search.selection import BestTrial, Ranking, best_per_trial
from trainable import predictions
from trainable.config import Config
from trainable.hyperparameters import EPOCHS, ran_point
from trainable.scoring import Scored
from trainable.storage import stored_checkpoint

if TYPE_CHECKING:
    from search.refit import Refit

PICK, DEFAULTS = "pick", "defaults"  # roles of the checkpoints scored on test, beside the export

CONFIDENCE = 0.95
RESAMPLES = 2000


def scorer(cfg: Config) -> Scorer | None:
    """The search's metric as a bootstrap scorer; None for loss, which predictions cannot give."""
    if cfg.search.metric == "loss":
        return None
    labels = cfg.data.labels
    positive = None if cfg.data.positive_label is None else labels.index(cfg.data.positive_label)
    return Scorer(cfg.search.metric, len(labels), positive)


@dataclass(frozen=True)
class DefaultsTrial:
    """The trial that ran search.initial_points[0], and how much of its schedule it ran."""

    trial_id: str
    checkpoint: str  # its best
    epochs_run: int
    epochs: int  # its schedule


@dataclass
class Payoff:
    """What the validation side found, and the defaults' trial to score on test."""

    validation_bootstrap: dict[str, Any] | None = None
    defaults: DefaultsTrial | None = None

    def checkpoints(self, cfg: Config, best: BestTrial, refit: Refit | None) -> dict[str, Any]:
        """What test scores, by role: the export; the pick's own checkpoint when a refit
        replaced it; the defaults' trial's when it is not the pick."""
        stored = {"export": exported_checkpoint(best, refit, cfg)}
        if refit is not None:
            stored[PICK] = stored_checkpoint(best.checkpoint_path, cfg.storage_path)
        if self.defaults is not None and self.defaults.trial_id != best.trial_id:
            stored[DEFAULTS] = stored_checkpoint(self.defaults.checkpoint, cfg.storage_path)
        return stored

    def record(self, cfg: Config, test_labels, scored: dict[str, Scored], best: BestTrial) -> dict:
        """The record's `validation_bootstrap`, `search_over_defaults` (the pick's checkpoint
        against the defaults' trial's, both trained on train) and `refit_over_pick` (the export
        against the pick's checkpoint). `scored`: test predictions by role (`checkpoints`)."""
        pick = scored.get(PICK, scored["export"])
        try:
            over_defaults = self._search_over_defaults(cfg, test_labels, pick, scored, best)
            over_pick = (
                _test_difference(cfg, test_labels, scored["export"], pick)
                if PICK in scored and scorer(cfg) is not None
                else None
            )
        except ValueError as exc:
            return _no_intervals(exc).record(cfg, test_labels, scored, best)
        record = {
            "validation_bootstrap": self.validation_bootstrap,
            "search_over_defaults": over_defaults,
            "refit_over_pick": over_pick,
        }
        if over_defaults is None:
            record["search_over_defaults_missing"] = self._why_no_defaults(cfg)
        return record

    def _search_over_defaults(self, cfg, test_labels, pick, scored, best) -> dict | None:
        defaults = self.defaults
        if defaults is None or scorer(cfg) is None:
            return None
        about = {
            "defaults_trial": defaults.trial_id,
            "defaults_hyperparameters": cfg.defaults_point,
            "defaults_epochs_run": defaults.epochs_run,
            "defaults_epochs": defaults.epochs,
        }
        if defaults.trial_id == best.trial_id:
            return {"metric": cfg.search.metric, "pick_is_defaults": True, **about}
        gain = _test_difference(cfg, test_labels, pick, scored[DEFAULTS])
        return {**gain, "pick_is_defaults": False, **about}

    def _why_no_defaults(self, cfg: Config) -> str:
        if not cfg.search.initial_points:
            return "no defaults' trial (search.initial_points is empty)"
        if scorer(cfg) is None:
            return "the metric is loss, which class predictions cannot score"
        return "the defaults' trial kept no checkpoint (it failed or stopped before an evaluation)"


def _no_intervals(reason: Exception) -> Payoff:
    # The model is exported all the same: a record without intervals beats none.
    print(f"no bootstrap intervals: {reason}", flush=True)
    return Payoff()


def plan_payoff(cfg: Config, results, winner_id: str, checkpoint_storage: str) -> Payoff:
    """The validation bootstrap from each trial's best evaluation's file, and (when there is
    one) the defaults' trial whose checkpoint the test split compares with the pick's."""
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
    compared = winner_and_others(labels, winner, others, score, **_settings())
    ordered = sorted(compared.differences.items(), key=lambda item: item[1].value, reverse=True)
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
            **compared.winner.to_dict(),
        },
        "difference_to_winner": {trial_id: d.to_dict() for trial_id, d in ordered},
        "others": {trial_id: compared.others[trial_id].to_dict() for trial_id, _ in ordered},
        "tied_with_winner": [trial_id for trial_id, d in ordered if d.contains_zero],
    }


def defaults_trial(bests: dict, cfg: Config) -> DefaultsTrial | None:
    """The trial that ran search.initial_points[0] (the HF Trainer's defaults in the shipped
    configs), with its best checkpoint; None without one, or without its checkpoint."""
    if not cfg.search.initial_points:
        return None
    point = cfg.defaults_point
    for trial_id, (result, row) in bests.items():
        checkpoint = row.get(CHECKPOINT_PATH_KEY)
        if ran_point(result.config, point) and checkpoint:
            ran = int(result.metrics.get(TRAINING_ITERATION, 0))
            return DefaultsTrial(trial_id, checkpoint, ran, int(result.config[EPOCHS]))
    return None


def _test_difference(cfg: Config, test_labels, one: Scored, other: Scored) -> dict[str, Any]:
    """`one`'s test score minus `other`'s, with its paired interval."""
    gain: Interval = difference(
        np.asarray(test_labels), one.predicted, other.predicted, scorer(cfg), **_settings()
    )
    return {
        "metric": cfg.search.metric,
        **gain.to_dict(),
        "distinguishable": not gain.contains_zero,
        "scored_on": other.where,
    }


def _settings() -> dict[str, Any]:
    return {"resamples": RESAMPLES, "confidence": CONFIDENCE}
