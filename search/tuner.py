"""The Tuner: Optuna (seeded TPE) proposes, ASHA stops weak trials, MLflow records every trial."""

from __future__ import annotations

import os

import optuna
from ray import tune

from search.checkpoints import CheckpointPruner
from search.layout import STUDY_NAME
from search.optuna_search import PruneAwareOptunaSearch
from search.placement import PlacementWatch
from search.progress import ProgressPrinter
from search.restore_records import RestoreRecords
from search.scheduler import DefaultsRunToTheEnd
from search.selection import Ranking, metric_key
from search.slots import HEAD_NODE, SlotRelease, dispatcher_name
from search.space import search_space
from search.tracking import mlflow_callback
from search.warm_refit import EarlyRefit
from trainable.config import Config
from trainable.errors import SetupError
from trainable.hyperparameters import EPOCHS
from trainable.trial import TrialSetup, run_trial

# Tune saves which trials exist (and the searcher's state) at most every 10 s by default; a
# driver killed in between comes back without the trials it started since, whose runs
# run.close_abandoned then ends. Saving every second keeps that window below a trial's start-up.
# In a bucket each save uploads Tune's whole driver folder, every trial's record with it:
# 140x what the records weigh at 1 s (BENCHMARKS.md, "Storage in an S3 bucket"), so there the
# search keeps Tune's own 10 s and accepts the wider window.
SAVE_STATE_EVERY_S = {"local": "1", "bucket": "10"}


def save_state_often(cfg: Config) -> None:
    where = "bucket" if "://" in cfg.storage_path else "local"
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", SAVE_STATE_EVERY_S[where])


def trainable(setup: TrialSetup):
    # The trial function only waits on its Train workers, which hold the CPUs and GPUs. Holding
    # a CPU itself would starve them: two trials on 2 CPUs, each worker wanting another, hang.
    # Tune refuses an all-zero request, so the trial asks for one byte of memory instead. It
    # runs on the head, with the Train controller Ray puts beside it: a worker node that goes
    # (a reclaimed spot machine) then takes only workers, which Ray Train restarts from the
    # trial's checkpoint, and never the trial itself.
    return tune.with_resources(
        tune.with_parameters(run_trial, setup=setup), {"cpu": 0, "memory": 1, HEAD_NODE: 0.001}
    )


def restore_tuner(cfg: Config, setup: TrialSetup, search_name: str) -> tune.Tuner:
    """The interrupted search, its unfinished and errored trials resumed."""
    path = cfg.experiment_path(search_name)
    if not tune.Tuner.can_restore(path):
        raise SetupError(f"{path} holds no restorable search: start it again with --overwrite")
    save_state_often(cfg)
    return tune.Tuner.restore(
        path, trainable=trainable(setup), resume_unfinished=True, resume_errored=True
    )


def ended_trials(cfg: Config, search_name: str) -> int:
    """The trials that ended (finished, stopped early or errored) as Tune saved them. On Ctrl-C
    Tune saves its state, then stops the trials still running and counts them TERMINATED in
    what fit() returns: a trial still waiting for its workers would read as ended there."""
    trials = tune.ExperimentAnalysis(cfg.experiment_path(search_name)).trials
    return sum(trial.status in ("TERMINATED", "ERROR") for trial in trials)


def warm_worker_callbacks(
    cfg: Config, search_name: str, pruner: CheckpointPruner
) -> list[tune.Callback]:
    if not cfg.resources.trials_on_warm_workers:
        return []
    name = dispatcher_name(search_name)
    early = [EarlyRefit(cfg, name, pruner)] if cfg.search.refit else []
    return [SlotRelease(search_name), *early]


def build_tuner(cfg: Config, setup: TrialSetup, search_name: str, parent_run_id: str) -> tune.Tuner:
    points = cfg.initial_points()
    defaults = points[0] if points else None
    searcher = PruneAwareOptunaSearch(
        seed=cfg.seed,
        storage=optuna.storages.RDBStorage(cfg.optuna_uri),
        study_name=STUDY_NAME,
        points_to_evaluate=points or None,
    )
    scheduler = DefaultsRunToTheEnd(
        defaults,
        time_attr="training_iteration",
        max_t=cfg.space[EPOCHS].largest(),
        # A trial that runs its whole schedule ends on its own, its Train run shut down in
        # order. Stopped by Tune at its last report instead, the run is torn down while it shuts
        # down, and can leave its workers' placement group behind (search/placement.py).
        stop_last_trials=False,
        grace_period=min(cfg.search.grace_period, cfg.space[EPOCHS].largest()),
        reduction_factor=cfg.search.reduction_factor,
    )
    ranking = Ranking.of(cfg.search)
    pruner = CheckpointPruner(
        setup.checkpoint_storage, ranking, cfg.search.keep_top_trials, defaults=defaults
    )
    save_state_often(cfg)
    return tune.Tuner(
        trainable(setup),
        param_space=search_space(cfg.space),
        tune_config=tune.TuneConfig(
            # ASHA and Optuna see the metric alone; the tie-breaker orders only equal values.
            metric=metric_key(cfg.search.metric),
            mode=cfg.search.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=cfg.search.trials,
            max_concurrent_trials=cfg.search.max_concurrent,
            # A trial on a warm worker is a process that relays the worker's reports, waiting
            # in Tune's report between epochs; Tune ends that wait when it reuses the process
            # for the next trial, stopped early or not. A trial's own Train run would still
            # hold its process, and Tune could not reuse it.
            reuse_actors=cfg.resources.trials_on_warm_workers,
        ),
        run_config=tune.RunConfig(
            name=search_name,
            storage_path=cfg.storage_path,
            callbacks=[
                RestoreRecords(),
                mlflow_callback(cfg, search_name, parent_run_id),
                ProgressPrinter(cfg.search.trials, ranking),
                PlacementWatch(),
                pruner,
                *warm_worker_callbacks(cfg, search_name, pruner),
            ],
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=1 if cfg.verbose else 0,
        ),
    )
