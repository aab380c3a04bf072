"""The dispatcher's refit (trainable/refit_dispatcher.py), on a real local Ray: it waits behind the
trials, is dropped when the search wants another trial's, is tried once, and takes the CPUs
of the slots on its node once the trials are over. Whole searches prove the rest
(tests/test_run.py, tests/test_warm_workers.py)."""

from __future__ import annotations

import pytest
import ray

from tests.conftest import TINY
from trainable.config_file import load_config
from trainable.dispatcher import DONE, FAILED, REPORT
from trainable.refit_dispatcher import RefitDispatcher
from trainable.work import Mode, Work, refit_id

NODE = "a node id"
EPOCHS = 2


@ray.remote(num_cpus=0)
class Worker:
    """A slot's worker as the dispatcher sees it: an actor it asks whether it lives."""


@pytest.fixture(scope="module")
def local_ray(ray_tmpdir):
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def dispatcher(local_ray):
    template = Work(Mode.REFIT, load_config(TINY), {}, None)
    actor = ray.remote(RefitDispatcher).options(max_concurrency=100).remote(2, 1, template)
    yield actor
    ray.kill(actor)


def _trial() -> Work:
    return Work(Mode.TRIAL, load_config(TINY), {"learning_rate": 1e-3}, None)


def _take(dispatcher, slot: int, worker) -> tuple[str, Work] | None:
    return ray.get(dispatcher.take.remote(slot, worker, NODE), timeout=30)


def test_a_refit_waits_behind_the_trials_and_takes_every_slot_once_they_are_over(dispatcher):
    workers = [Worker.remote(), Worker.remote()]
    ray.get(dispatcher.submit.remote("a", _trial()))
    assert ray.get(dispatcher.refit.remote("b", {"learning_rate": 3e-4}, EPOCHS))
    plan = ray.get(dispatcher.planned_refit.remote())
    assert (plan.refit_id, plan.trial_id, plan.epoch, plan.taken_at) == (
        refit_id("b", EPOCHS), "b", EPOCHS, None,
    )  # fmt: skip
    assert _take(dispatcher, 0, workers[0])[0] == "a"
    taken, work = _take(dispatcher, 1, workers[1])
    assert taken == plan.refit_id and work.mode is Mode.REFIT
    assert (work.hyperparameters, work.stop_after_epochs) == ({"learning_rate": 3e-4}, EPOCHS)
    assert ray.get(dispatcher.planned_refit.remote()).taken_at is not None
    # While trial a trains, the refit has its own slot's CPUs; after, both slots'.
    assert ray.get(dispatcher.refit_control.remote(plan.refit_id, 1)) == (True, 1)
    ray.get(dispatcher.done.remote(0, "a"))
    ray.get(dispatcher.end_trials.remote())
    assert ray.get(dispatcher.refit_control.remote(plan.refit_id, 1)) == (True, 2)
    # The refit reports past the trials' end; a trial no longer can.
    reported = dispatcher.report.remote(plan.refit_id, {"steps": 4})
    event = ray.get(dispatcher.next_event.remote(plan.refit_id), timeout=30)
    assert (event.kind, event.metrics) == (REPORT, {"steps": 4})
    ray.get(dispatcher.go_on.remote(plan.refit_id))
    assert ray.get(reported, timeout=30) is True
    ray.get(dispatcher.done.remote(1, plan.refit_id))
    assert ray.get(dispatcher.next_event.remote(plan.refit_id), timeout=30).kind == DONE
    ray.get(dispatcher.submit.remote("c", _trial()))
    assert ray.get(dispatcher.report.remote("c", {"steps": 1}), timeout=30) is False


def test_a_refit_of_another_trial_drops_the_one_training(dispatcher):
    worker = Worker.remote()
    assert ray.get(dispatcher.refit.remote("a", {}, EPOCHS))
    first = ray.get(dispatcher.planned_refit.remote())
    assert _take(dispatcher, 0, worker)[0] == first.refit_id
    assert ray.get(dispatcher.refit.remote("a", {}, EPOCHS))  # the same: it goes on
    assert ray.get(dispatcher.refit_control.remote(first.refit_id, 0))[0] is True
    assert ray.get(dispatcher.refit.remote("b", {}, EPOCHS))
    assert ray.get(dispatcher.refit_control.remote(first.refit_id, 0))[0] is False
    second = ray.get(dispatcher.planned_refit.remote())
    assert (second.trial_id, second.taken_at) == ("b", None)
    ray.get(dispatcher.close.remote())
    assert ray.get(dispatcher.refit_control.remote(second.refit_id, 0))[0] is False


def test_a_refit_that_fails_is_not_tried_again(dispatcher):
    worker = Worker.remote()
    assert ray.get(dispatcher.refit.remote("a", {}, EPOCHS))
    plan = ray.get(dispatcher.planned_refit.remote())
    assert _take(dispatcher, 0, worker)[0] == plan.refit_id
    # max_failures is 1: a trial would wait to be tried again, the refit fails at once.
    ray.get(dispatcher.failed.remote(0, plan.refit_id, "RuntimeError: boom", False))
    event = ray.get(dispatcher.next_event.remote(plan.refit_id), timeout=30)
    assert (event.kind, event.reason) == (FAILED, "RuntimeError: boom")
    ray.get(dispatcher.close.remote())
    assert _take(dispatcher, 0, worker) is None
