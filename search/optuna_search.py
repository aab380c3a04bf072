"""OptunaSearch that records what really happened to trials ASHA stopped early.

Ray 2.60's `OptunaSearch.on_trial_complete` tells Optuna that every trial with a score is
COMPLETE. A 3-epoch trial cut after one epoch would then read as "3 epochs give this score",
misleading TPE and the importance analysis about the epochs dimension. Here such a trial is
told as PRUNED, and every epoch's score is an intermediate value: Tune hands a stopped
trial's last result to `on_trial_complete` only, so Ray's searcher never reports it.
"""

from __future__ import annotations

from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

EPOCHS_PARAM = "epochs"


def stopped_early(params: dict, result: dict | None) -> bool:
    """True when the trial reported fewer epochs than it was sampled to train."""
    if not result or EPOCHS_PARAM not in params:
        return False
    return result.get(TRAINING_ITERATION, 0) < int(params[EPOCHS_PARAM])


class PruneAwareOptunaSearch(OptunaSearch):
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

    def _stored(self, trial_id: str):
        """The study's own record of the trial."""
        return self._ot_study._storage.get_trial(self._ot_trials[trial_id]._trial_id)
