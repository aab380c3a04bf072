"""Warm workers (`resources.warm_workers`): one long-lived Ray Train run per trial slot.

A cold trial is a Ray Train run of its own: a new controller and worker process, and torch and
transformers imported again, for every trial (docs/startup.md). With warm workers the search
starts `search.max_concurrent` Train runs before its first trial, each a worker that trains
one trial after another as the dispatcher hands them out (trainable/dispatcher.py,
trainable/slot.py). Tune, Optuna, ASHA and MLflow see the same trials; each trial's
checkpoints and Train snapshot are where a cold trial's are. A slot's worker that is lost is
restarted by Ray Train, and its trial resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import ray
from ray.tune import Callback

from trainable.config import Config
from trainable.errors import last_line
from trainable.refit_dispatcher import RefitDispatcher
from trainable.trial import TrialSetup, fit, train_run
from trainable.work import Mode, SlotWork, Work
from trainable.worker import slot_loop_per_worker

# A resource only the head node has; Ray Train places its own state actor there with it. The
# trial functions (search/tuner.py), the dispatcher and the slots' Train controllers stay on
# the head: a worker node that goes takes only workers.
HEAD_NODE = "node:__internal_head__"
# How long the slots' Train runs whose worker lives get to end in order once the trials are
# over; a run still running then is ended outright, as is at once a run whose worker waits for
# room (an interrupted search whose trials could not be placed).
CLOSE_TIMEOUT_S = 15.0


def dispatcher_name(search_name: str) -> str:
    return f"finetune-hpo-dispatcher-{search_name}"


@contextmanager
def warm_workers(cfg: Config, setup: TrialSetup, search_name: str) -> Iterator[TrialSetup]:
    """The trial setup for the search's trials: with warm workers, one that sends them to the
    slots started here, closed when the search's trials are over (or it is interrupted)."""
    if not cfg.resources.trials_on_warm_workers:
        yield setup
        return
    name = dispatcher_name(search_name)
    slots = cfg.search.max_concurrent
    dispatcher = (
        ray.remote(RefitDispatcher)
        .options(name=name, num_cpus=0, resources={HEAD_NODE: 0.001}, max_concurrency=10_000)
        .remote(slots, cfg.resources.max_failures, refit_template(cfg, setup))
    )
    storage = f"{cfg.experiment_path(search_name)}/slots"
    keep = ray.remote(num_cpus=0, max_retries=0, resources={HEAD_NODE: 0.001})(_keep_slot)
    runs = [
        keep.remote(setup, SlotWork(name, slot, setup.checkpoint_storage), storage)
        for slot in range(slots)
    ]
    try:
        yield dataclasses.replace(setup, dispatcher=name)
    finally:
        alive = ray.get(dispatcher.close.remote())
        ending = [run for slot, run in enumerate(runs) if slot in alive]
        waiting = [run for slot, run in enumerate(runs) if slot not in alive]
        _, unfinished = ray.wait(ending, num_returns=len(ending), timeout=CLOSE_TIMEOUT_S)
        for run in unfinished + waiting:
            ray.cancel(run, force=True)
        ray.kill(dispatcher)


def refit_template(cfg: Config, setup: TrialSetup) -> Work | None:
    """The refit the slots may run (search/warm_refit.py), its trial still to choose."""
    return Work(Mode.REFIT, cfg, {}, setup.splits_ref) if cfg.search.refit else None


def _keep_slot(setup: TrialSetup, work: SlotWork, storage: str) -> None:
    """Runs the slot's Train run until the dispatcher closes; a run that fails (its worker
    could not be placed) takes its trial down with the reason, and the waiting trials with it
    once no slot is left."""
    # Ray Train restarts a lost worker without end: the dispatcher counts each trial's tries.
    run = train_run(setup, work, f"slot-{work.slot}", slot_loop_per_worker, storage, -1)
    try:
        fit(run, setup.config)
    except Exception as exc:
        dispatcher = ray.get_actor(work.dispatcher)
        ray.get(dispatcher.slot_lost.remote(work.slot, last_line(exc)))


class SlotRelease(Callback):
    """Tells the dispatcher of each trial Tune ended: a warm worker training a trial that ASHA
    stopped (Tune ends its trial process) stops after the epoch it reported. Once the last
    trial ended the slots train no more trials, and a refit on one of them takes their CPUs;
    they end when the search leaves `warm_workers`."""

    def __init__(self, search_name: str):
        self.name = dispatcher_name(search_name)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial.trial_id)

    def on_experiment_end(self, trials, **info):
        ray.get(ray.get_actor(self.name).end_trials.remote())

    def _end(self, trial_id: str) -> None:
        ray.get_actor(self.name).end.remote(trial_id)
