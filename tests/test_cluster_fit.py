"""The search fits itself to a real local Ray instance: concurrency capped by free CPUs."""

from __future__ import annotations

import dataclasses

import pytest
import ray

from search.cluster import fit_to_cluster, running_alone
from trainable.config_file import load_config
from trainable.errors import SetupError


@pytest.fixture(scope="module")
def two_cpu_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _config(max_concurrent: int, cpus_per_worker: int | None, num_workers: int = 1):
    return load_config(
        None,
        {
            "search.max_concurrent": max_concurrent,
            "resources.cpus_per_worker": cpus_per_worker,
            "resources.num_workers": num_workers,
        },
    )


@pytest.mark.parametrize(
    ("asked", "cpus_per_worker", "num_workers", "runs"),
    [(4, 1, 1, 2), (4, 2, 1, 1), (1, 1, 1, 1), (3, 1, 2, 1)],
)
def test_concurrency_is_capped_by_what_trial_workers_need(
    two_cpu_ray, asked, cpus_per_worker, num_workers, runs
):
    fitted = fit_to_cluster(_config(asked, cpus_per_worker, num_workers))
    assert fitted.search.max_concurrent == runs
    assert fitted.resources.use_gpu is False


def test_a_trial_larger_than_the_cluster_is_refused_before_it_starts(two_cpu_ray):
    with pytest.raises(SetupError, match="needs 3 CPUs .* has 2"):
        fit_to_cluster(_config(1, 3))
    with pytest.raises(SetupError, match="needs 1 GPUs"):
        cfg = _config(1, 1)
        fit_to_cluster(
            dataclasses.replace(cfg, resources=dataclasses.replace(cfg.resources, use_gpu=True))
        )


@pytest.mark.parametrize(
    ("asked", "num_workers", "runs", "threads", "refit_threads"),
    [(2, 1, 2, 1, 2), (1, 1, 1, 2, 2), (4, 1, 2, 1, 2), (2, 2, 1, 1, 1)],
)
def test_unset_cpus_per_worker_shares_the_cpus_among_the_trials_running_at_once(
    two_cpu_ray, asked, num_workers, runs, threads, refit_threads
):
    fitted = fit_to_cluster(_config(asked, None, num_workers))
    assert fitted.search.max_concurrent == runs
    assert fitted.resources.cpus_per_worker == threads
    # The refit runs alone, after the search: its worker gets what the trials shared.
    assert running_alone(fitted, free_cpus=2).resources.cpus_per_worker == refit_threads
    # Another job holding a CPU leaves the refit the one that is free.
    assert running_alone(fitted, free_cpus=1).resources.cpus_per_worker == 1
