"""One Tune trial: a Ray Train run of the worker loop with its hyperparameters, or a trial
handed to a warm worker (`resources.warm_workers`).

Ray Train V2 (Ray 2.60's default): the Tune trial function builds the trainer and calls fit();
`EpochReport` forwards each epoch's metrics and checkpoint path to Tune. With warm workers the
trial function submits its work to the search's dispatcher and reports what the worker sends
back (trainable/dispatcher.py).
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ray
from ray import train, tune
from ray.train import ControllerError
from ray.train.backend import BackendConfig

# Ray 2.60 exports no name for it; tests/test_two_node_cluster.py fails if it moves.
from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

# Train V2's own (ray.train.data_parallel_trainer is V1's); TorchTrainer is this class with a
# torch process group.
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from trainable.config import Config
from trainable.dispatcher import FAILED, REPORT
from trainable.failures import one_try_for_recurring
from trainable.tune_record import EpochReport, continue_record, epoch_of, numbered
from trainable.work import Mode, SlotWork, Work
from trainable.worker import train_loop_per_worker


@dataclass
class TrialSetup:
    """What every trial shares: the config, the tokenized splits and where checkpoints go."""

    config: Config
    splits_ref: ray.ObjectRef
    checkpoint_storage: str
    dispatcher: str | None = None  # the dispatcher actor's name, with warm workers


def scaling_config(cfg: Config) -> train.ScalingConfig:
    resources = {"CPU": cfg.resources.cpus_per_worker}
    if cfg.resources.use_gpu:
        # A fraction below 1 puts several trials' workers on one GPU; each sees it as cuda:0.
        resources["GPU"] = 1 / cfg.resources.trials_sharing_a_gpu
    return train.ScalingConfig(
        num_workers=cfg.resources.num_workers,
        use_gpu=bool(cfg.resources.use_gpu),
        resources_per_worker=resources,
    )


def run_trial(hyperparameters: dict[str, Any], setup: TrialSetup) -> None:
    # Named after the trial id, without a timestamp, so a restored trial finds its checkpoints.
    trial_id = tune.get_context().get_trial_id()
    recorded = continue_record(setup.checkpoint_storage, trial_id)
    work = Work(Mode.TRIAL, setup.config, hyperparameters, setup.splits_ref)
    if setup.dispatcher is not None:
        relay(ray.get_actor(setup.dispatcher), trial_id, work, recorded)
        return
    trainer = train_run(
        setup,
        work,
        name=trial_id,
        callbacks=[EpochReport(recorded)],
        # Ray Train would rank checkpoints by the metric alone, and keep the later of two
        # equal ones; the search's CheckpointPruner keeps the best by metric, then tie-breaker.
        checkpoint_config=train.CheckpointConfig(num_to_keep=None),
    )
    fit(trainer, setup.config)
    _let_tune_take_the_last_report()


def relay(dispatcher, trial_id: str, work: Work, recorded: int) -> None:
    """Hands the trial to a warm worker and reports its epochs to Tune, each numbered by its
    epoch as `EpochReport` numbers them; a report returns when Tune wants the next epoch (Tune
    ends the process of a trial it stops, and search/slots.py tells the worker)."""
    ray.get(dispatcher.submit.remote(trial_id, work))
    for metrics in reports_of(dispatcher, trial_id):
        epoch = epoch_of(metrics)
        if epoch is None:
            tune.report(metrics)
        elif epoch > recorded:  # not one continue_record already reported
            tune.report(numbered(metrics, epoch))
            recorded = epoch


def reports_of(dispatcher, trial_id: str) -> Iterator[dict]:
    """What the worker of `trial_id` (a trial or a refit) reports, until it is done; each
    report is answered "go on" once the caller asks for the next. TrialFailed with the
    worker's reason when it failed."""
    while (event := ray.get(dispatcher.next_event.remote(trial_id))).kind == REPORT:
        yield event.metrics
        ray.get(dispatcher.go_on.remote(trial_id))
    if event.kind == FAILED:
        raise TrialFailed(event.reason)


class TrialFailed(RuntimeError):
    """A trial (or refit) failed on a warm worker; the message is the worker's error."""


def fit(trainer: DataParallelTrainer, cfg: Config):
    """trainer.fit(), with a placement that timed out told in one line that names the knobs.

    On a process's main thread (the driver's refit, a slot's Ray task) Ray 2.60's fit()
    registers a SIGINT handler that holds the run's Train controller, which then outlives the
    run as long as the process does (a pooled worker's: the whole search), and the sweep for
    placement groups left behind waits for it (search/placement.py). The handler that was
    there before comes back when fit() returns."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        return trainer.fit()
    except ControllerError as exc:
        if not isinstance(exc.controller_failure, WorkerGroupStartupTimeoutError):
            raise
        res, each = cfg.resources, scaling_config(cfg).resources_per_worker
        raise TimeoutError(
            f"the trial's {res.num_workers} worker(s) could not be placed within "
            f"{res.placement_timeout_s:g} s, each asking for {each}: "
            "add nodes that have them (or let the autoscaler start one), lower resources.*, or "
            "wait longer with resources.placement_timeout_s"
        ) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


# How long Tune's trial thread may take from picking a report off the queue to handing it on.
TUNE_REPORT_GRACE_S = 1.0


def _let_tune_take_the_last_report(timeout_s: float = 60.0) -> None:
    """Returns once Tune has taken the Train run's last report, so the trial function ends
    after it, not during it.

    Ray 2.60 (no upstream issue found): `TuneReportCallback` passes Train's reports through a
    one-slot queue to the trial actor's main thread, which takes each one and puts it on a
    one-slot result queue that only it reads. When the trial function returns, Tune's function
    runner puts its own closing result on that queue. If that lands between the main thread
    taking the last report and queueing it, the main thread blocks on a full queue it alone
    empties, and the trial hangs forever (seen here with trials finishing on an overloaded
    2-core machine). `_inter_actor_queue` is the session's private attribute for that queue.
    """
    from ray.train._internal.session import get_session

    session = get_session()
    if not hasattr(session, "_inter_actor_queue"):
        raise RuntimeError(
            "Ray Train's session no longer has _inter_actor_queue (ray/train/_internal/session.py)"
            ": find where TuneReportCallback now hands reports to Tune and wait for it to drain "
            "in trainable/trial.py, _let_tune_take_the_last_report"
        )
    queue = session._inter_actor_queue  # None until a TuneReportCallback asks for it
    deadline = time.monotonic() + timeout_s
    while queue is not None and not queue.empty() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(TUNE_REPORT_GRACE_S)


def train_run(
    setup: TrialSetup,
    work: Work | SlotWork,
    name: str,
    loop=train_loop_per_worker,
    storage_path: str | None = None,
    max_failures: int | None = None,
    **run,
) -> DataParallelTrainer:
    """A Train run of `work`, named `name` under `storage_path` (the search's checkpoint
    storage unless given), tried again after `max_failures` failures (resources.max_failures
    unless given; -1: without end).

    One worker trains alone: Ray Train runs it without TorchTrainer's process group. That
    spares the trial, its Train controller and its worker a torch import each and the group's
    set-up (BENCHMARKS.md, "Per-trial start-up"), and Ray then sets no
    LOCAL_RANK, so the HF Trainer does not believe it is distributed (an all-gather and a GPU
    sync every step, an NCCL communicator on the first). Several workers get TorchTrainer's
    process group (gloo on CPU, NCCL on GPU), which the Trainer's DDP needs.
    """
    cfg = setup.config
    if cfg.resources.num_workers == 1:
        trainer_class = functools.partial(
            one_try_for_recurring(DataParallelTrainer), backend_config=BackendConfig()
        )
    else:
        from ray.train.torch import TorchTrainer

        trainer_class = one_try_for_recurring(TorchTrainer)
    return trainer_class(
        loop,
        train_loop_config=work.as_loop_config(),
        scaling_config=scaling_config(cfg),
        run_config=train.RunConfig(
            name=name,
            storage_path=storage_path or setup.checkpoint_storage,
            failure_config=train.FailureConfig(
                max_failures=cfg.resources.max_failures if max_failures is None else max_failures,
                # Ray Train would retry a placement that timed out without end.
                controller_failure_limit=-1 if cfg.resources.placement_timeout_s is None else 0,
            ),
            **run,
        ),
    )
