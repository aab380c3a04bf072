"""OptunaSearch that records what really happened to trials ASHA stopped early.

Ray 2.60's `OptunaSearch.on_trial_complete` tells Optuna that every trial with a score is
COMPLETE. A 3-epoch trial cut after one epoch would then read as "3 epochs give this score",
misleading TPE and the importance analysis about the epochs dimension. Here such a trial is
told as PRUNED, and every epoch's score is an intermediate value: Tune hands a stopped
trial's last result to `on_trial_complete` only, so Ray's searcher never reports it.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from search.layout import STUDY_NAME
from trainable.hyperparameters import EPOCHS


def stopped_early(params: dict, result: dict | None) -> bool:
    """True when the trial reported fewer epochs than it was sampled to train."""
    if not result or EPOCHS not in params:
        return False
    return result.get(TRAINING_ITERATION, 0) < int(params[EPOCHS])


class PruneAwareOptunaSearch(OptunaSearch):
    """Ray 2.60's OptunaSearch, telling Optuna PRUNED for a trial stopped early.

    No ray-project/ray issue reports that a scored trial is told COMPLETE however few epochs it
    ran; the rule (COMPLETE with a score, PRUNED only without one) dates from
    ray-project/ray#15283. Ray has no hook for it, so this override reads three attributes of
    Ray 2.60's OptunaSearch that have no public accessor: `_ot_study` (the Optuna study),
    `_ot_trials` (Tune trial id to Optuna trial) and `_completed_trials` (the ids told). Ray
    saves and restores the searcher's whole `__dict__` (ray-project/ray#30893), these included.
    tests/test_ray_contracts.py fails if Ray renames them or changes what they hold, or starts
    telling such a trial something other than COMPLETE.
    """

    def on_trial_result(self, trial_id: str, result: dict):
        if not self._told(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        if self._told(trial_id):
            self._completed_trials.add(trial_id)
            return
        if result and result.get(self.metric) is not None and TRAINING_ITERATION in result:
            step = result[TRAINING_ITERATION]
            if step not in self._stored(trial_id).intermediate_values:
                ot_trial.report(result[self.metric], step)
        if error:
            # Ray would record an errored trial that had reported an epoch as COMPLETE.
            state = TrialState.FAIL
        elif stopped_early(ot_trial.params, result):
            state = TrialState.PRUNED
        else:
            return super().on_trial_complete(trial_id, result, error)
        self._ot_study.tell(ot_trial, state=state)
        self._completed_trials.add(trial_id)

    def _told(self, trial_id: str) -> bool:
        """Whether the study already holds this trial's end. After the driver was killed, the
        searcher state Tune restores can predate what the study (on disk) was told."""
        return trial_id in self._ot_trials and self._stored(trial_id).state.is_finished()

    def _stored(self, trial_id: str) -> FrozenTrial:
        """The study's own record of the trial, read from its storage: the Optuna trial restored
        with the searcher holds what was true when Tune saved it."""
        number = self._ot_trials[trial_id].number
        return next(t for t in self._ot_study.get_trials(deepcopy=False) if t.number == number)


def fail_abandoned_trials(storage_uri: str) -> int:
    """Tells FAIL for the study's trials still running once a resumed search has ended: each
    was asked for by a killed driver after Tune last saved its state, so the resumed search
    never knew of it. Returns how many."""
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_uri)
    abandoned = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in abandoned:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(abandoned)
