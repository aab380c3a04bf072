"""The refit on a warm worker: started early on a slot that comes free while the last trials
train, or right after them, on a slot that already imported torch and transformers.

Once every trial has started, a slot whose trial ends has nothing left to train, and stays
idle until the search's last trial ends. `EarlyRefit` gives it the refit of the best trial
that has ended so far; each trial that ends after may change which one that is (the refit
then starts over for the new one). When the trials are over, the search keeps the refit if
it is of the trial and epoch it picked (`search/selection.py`), and the refit takes the CPU
threads of the slots that now wait idle (`trainable/callbacks.py`, RefitControl); otherwise
it drops it and refits its pick on a slot. Either way no new process imports torch for the
refit, and a refit that fails on a slot is tried again in a Train run of its own
(`search/refit.py`).
"""

from __future__ import annotations

import time

import ray
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.result import TRAINING_ITERATION

from search.checkpoints import CheckpointPruner
from search.refit import Refit, announce, refit_record
from search.selection import BestTrial
from trainable.config import Config
from trainable.hyperparameters import describe
from trainable.storage import stored_checkpoint
from trainable.trial import TrialFailed, TrialSetup, reports_of

ENDED = (Trial.TERMINATED, Trial.ERROR)


class EarlyRefit(Callback):
    """Plans the refit of the best trial that has ended, on the dispatcher, once no trial is
    left to start and fewer trials train than there are slots. Each trial's best evaluation
    is the pruner's (listed before this callback, it has heard each result first, and it
    keeps them across a resumed search)."""

    def __init__(self, cfg: Config, dispatcher: str, bests: CheckpointPruner):
        self.dispatcher = dispatcher
        self.trials = cfg.search.trials
        self.slots = cfg.search.max_concurrent
        self.space = cfg.space
        self.bests = bests
        self.planned: tuple[str, int] | None = None

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._plan(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._plan(trials, trial)

    def _plan(self, trials: list[Trial], ending: Trial) -> None:
        if len(trials) < self.trials:
            return  # Tune has trials still to create
        training = [t for t in trials if t is not ending and t.status not in ENDED]
        if not training or len(training) >= self.slots:
            return  # the trials are over (the search refits its pick), or every slot has one
        ended = {t.trial_id: t for t in trials if t is ending or t.status in ENDED}
        best = self.bests.best_of(ended)
        if best is None or TRAINING_ITERATION not in best[1]:
            return
        trial_id, epoch = best[0], int(best[1][TRAINING_ITERATION])
        if self.planned == (trial_id, epoch):
            return
        hyperparameters = self.space.typed(ended[trial_id].config)
        planned = ray.get(
            ray.get_actor(self.dispatcher).refit.remote(trial_id, hyperparameters, epoch)
        )
        if planned:
            self.planned = (trial_id, epoch)
            print(
                f"refit of trial {trial_id} ({describe(hyperparameters)}, stopped after epoch "
                f"{epoch}), the best that has ended, starts on a free slot while "
                f"{len(training)} trial(s) train: kept if the search picks that trial",
                flush=True,
            )


def refit_on_slot(setup: TrialSetup, best: BestTrial | None, messages: int) -> Refit | None:
    """The refit of the search's pick on a warm worker: the one started early when it is of
    the pick, else a new one; None when there is none to do here (no pick, no refit, no warm
    workers), or (with the reason) when it cannot run or fails there."""
    if best is None or not setup.config.search.refit or setup.dispatcher is None:
        return None
    dispatcher = ray.get_actor(setup.dispatcher)
    plan = ray.get(dispatcher.planned_refit.remote())
    waited_from = time.time()
    if plan is not None and (plan.trial_id, plan.epoch) == (best.trial_id, best.epoch):
        if plan.taken_at is not None:
            print(
                f"refit of trial {best.trial_id}, the search's pick, started "
                f"{waited_from - plan.taken_at:.0f} s before the trials ended: it goes on with "
                "every slot's CPUs",
                flush=True,
            )
    else:
        if plan is not None:
            print(
                f"refit of trial {plan.trial_id} dropped: the search picked trial {best.trial_id}",
                flush=True,
            )
        announce(best, messages)
        if not ray.get(dispatcher.refit.remote(best.trial_id, best.hyperparameters, best.epoch)):
            return None
        plan = ray.get(dispatcher.planned_refit.remote())
    try:
        reported = list(reports_of(dispatcher, plan.refit_id))  # one report, at the refit's end
        if not reported or CHECKPOINT_PATH_KEY not in reported[-1]:
            raise TrialFailed("it reported no model")
    except TrialFailed as exc:
        print(f"refit on a warm worker failed ({exc}): refitting anew", flush=True)
        return None
    metrics = reported[-1]
    taken_at = ray.get(dispatcher.planned_refit.remote()).taken_at
    ended_at = time.time()
    storage = setup.config.storage_path
    path = metrics[CHECKPOINT_PATH_KEY]
    details = {
        **refit_record(best, messages, metrics, ended_at - taken_at, path, storage),
        # The part of it that came after the trials: what it added to the search's time.
        "after_trials_s": round(ended_at - waited_from, 1),
        "started_early": taken_at < waited_from,
    }
    print(
        f"refit done in {details['time_s']:.0f} s, {details['after_trials_s']:.0f} s of it "
        "after the trials",
        flush=True,
    )
    return Refit(stored_checkpoint(path, storage), details)
