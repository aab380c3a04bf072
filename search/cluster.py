"""Ray: join a cluster or start a local one, and fit the search to what the cluster has."""

from __future__ import annotations

import dataclasses
import logging

import ray

from trainable.config import Config
from trainable.errors import SetupError

log = logging.getLogger(__name__)


def connect(cfg: Config) -> None:
    """Joins cfg.address, or starts a local Ray instance when there is none."""
    try:
        ray.init(address=cfg.address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SetupError(
            f"could not reach Ray at {cfg.address!r} ({str(exc).splitlines()[0]}): "
            "start the cluster (`ray start --head`) or fix --address"
        ) from None


def fit_to_cluster(cfg: Config) -> Config:
    """Resolves use_gpu and caps concurrency by what a trial's workers need.

    A trial whose workers can never be placed would wait forever without an error, so the
    request is checked here, before anything starts.
    """
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    res = cfg.resources
    use_gpu = gpus > 0 if res.use_gpu is None else res.use_gpu
    need_cpu = res.num_workers * res.cpus_per_worker
    if need_cpu > cpus:
        raise SetupError(
            f"a trial needs {need_cpu:g} CPUs ({res.num_workers} workers x "
            f"{res.cpus_per_worker}) but the cluster has {cpus:g}: lower "
            "resources.cpus_per_worker or resources.num_workers"
        )
    if use_gpu and res.num_workers > gpus:
        raise SetupError(
            f"a trial needs {res.num_workers} GPUs but the cluster has {gpus:g}: lower "
            "resources.num_workers or set resources.use_gpu=false"
        )
    fits = int(cpus // need_cpu)
    if use_gpu:
        fits = min(fits, int(gpus // res.num_workers))
    concurrent = min(cfg.search.max_concurrent, fits, cfg.search.trials)
    if concurrent < cfg.search.max_concurrent:
        log.warning(
            "running %d trials at once, not %d: the cluster has room for %d",
            concurrent,
            cfg.search.max_concurrent,
            fits,
        )
    return dataclasses.replace(
        cfg,
        resources=dataclasses.replace(res, use_gpu=use_gpu),
        search=dataclasses.replace(cfg.search, max_concurrent=concurrent),
    )
