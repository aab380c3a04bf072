"""Which failed Train runs are tried again (trainable/failures.py): not one out of memory, nor
one refused for a user error, either of which would only recur."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import ray
from ray import train
from ray.train.backend import BackendConfig
from ray.train.v2._internal.execution.failure_handling import FailureDecision
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from ray.train.v2.api.exceptions import WorkerGroupError

from trainable.device import precision_refusal
from trainable.errors import SetupError
from trainable.failures import RecurringFailsOnce, one_try_for_recurring

REASON = "out of GPU memory with 4 trial(s) per GPU: lower resources.trials_per_gpu"


def test_out_of_memory_ends_the_run_while_other_worker_errors_are_retried():
    policy = RecurringFailsOnce(train.FailureConfig(max_failures=3))
    memory = WorkerGroupError(REASON, {0: RuntimeError("peer gone"), 1: MemoryError(REASON)})
    assert policy.make_decision(memory) is FailureDecision.RAISE
    refused = WorkerGroupError("bf16", {0: SetupError(precision_refusal("bf16", (7, 5)))})
    assert policy.make_decision(refused) is FailureDecision.RAISE
    crash = WorkerGroupError("boom", {0: RuntimeError("boom")})
    assert [policy.make_decision(crash) for _ in range(4)] == [FailureDecision.RETRY] * 3 + [
        FailureDecision.RAISE
    ]


def test_ray_train_still_hands_its_controller_the_policy_where_the_trial_swaps_it():
    """Ray 2.60 builds the policy in fit() and passes it, by name, to
    _initialize_and_run_controller: one_try_for_recurring's override depends on both."""
    import inspect

    source = inspect.getsource(DataParallelTrainer.fit)
    assert "self._initialize_and_run_controller(" in source, (
        "DataParallelTrainer.fit no longer calls _initialize_and_run_controller: find where "
        "Ray Train now builds its failure policy for trainable/failures.py"
    )
    assert "failure_policy=create_failure_policy(" in source


def _runs_out_of_memory(config: dict) -> None:
    import torch

    tries = Path(config["tries"])
    tries.write_text(tries.read_text() + "x")
    try:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    except torch.OutOfMemoryError:
        raise MemoryError(REASON) from None  # as trainable/train_loop.py does


@pytest.fixture
def local_ray(ray_tmpdir):
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_a_worker_out_of_memory_fails_its_run_on_the_first_try(local_ray, tmp_path):
    tries = tmp_path / "tries"
    tries.write_text("")
    trainer = one_try_for_recurring(DataParallelTrainer)(
        _runs_out_of_memory,
        backend_config=BackendConfig(),
        train_loop_config={"tries": str(tries)},
        scaling_config=train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=train.RunConfig(
            name="oom", storage_path=str(tmp_path), failure_config=train.FailureConfig(2)
        ),
    )
    with pytest.raises(WorkerGroupError, match=re.escape(REASON)) as failed:
        trainer.fit()
    assert isinstance(failed.value.worker_failures[0], MemoryError)
    assert tries.read_text() == "x"  # max_failures=2 would have tried it three times
