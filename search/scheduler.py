"""ASHA, with the defaults' trial exempt: it runs its whole schedule.

The search reports what its pick gains over the defaults (search/payoff.py). ASHA stops a
trial at a rung when it ranks low there, mid-schedule, with its learning rate not yet decayed:
a defaults' trial cut after 2 of its 3 epochs is not the model the defaults give, and a gain
over it would flatter the search. Its results still count in ASHA's rungs, so the other trials
are measured against it as before.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from trainable.hyperparameters import ran_point


class DefaultsRunToTheEnd(ASHAScheduler):
    def __init__(self, defaults: dict[str, Any] | None, **asha: Any):
        """`defaults`: the defaults' point (search.initial_points[0], typed), or None."""
        super().__init__(**asha)
        self.defaults = defaults

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and self.is_defaults(trial.config):
            return TrialScheduler.CONTINUE
        return action

    def is_defaults(self, config: dict[str, Any]) -> bool:
        return self.defaults is not None and ran_point(config, self.defaults)
