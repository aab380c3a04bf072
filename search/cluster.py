"""Fit the search to what the Ray cluster has: CPUs and GPUs per trial, trials at once."""

from __future__ import annotations

import dataclasses
import logging

import ray

from search.gpu_probe import no_node_can, probe_gpus
from search.gpu_share import ModelShape, Share, choose, trial_peak_gib
from trainable.config import AUTO, Config
from trainable.errors import ConfigError, SetupError
from trainable.hyperparameters import BATCH_SIZE

log = logging.getLogger(__name__)


def capacity() -> dict[str, float]:
    """What the cluster has now, or can grow to where an autoscaler config says so (GPU
    workers that scale from zero are not there yet when the search starts)."""
    total = dict(ray.cluster_resources())
    # Ray 2.60 has no public API for this: ray-project/ray#49501 asked for one, and the PR that
    # closed it (#49568) left the accessor in ray._private.state, where Ray Train's own worker
    # group reads it. ray.autoscaler.sdk reads a config file, not the running cluster, and the
    # autoscaler v2 ClusterStatus has no node group maxima. tests/test_ray_contracts.py pins it.
    try:
        from ray._private.state import state

        ceiling = state.get_max_resources_from_cluster_config() or {}
    except Exception:  # without it, plan for what is there now
        ceiling = {}
    for key, value in ceiling.items():
        total[key] = max(total.get(key, 0), value)
    return total


def alive_nodes() -> list[dict]:
    return [node for node in ray.nodes() if node.get("Alive")]


def fit_to_cluster(cfg: Config) -> Config:
    """Resolves use_gpu and cpus_per_worker, checks storage, and caps concurrency by what a
    trial's workers need.

    A trial whose workers can never be placed would wait forever without an error, so the
    request is checked here, before anything starts. cpus_per_worker null shares the CPUs
    among the trials running at once (on a single node: all of that node's).
    """
    nodes = alive_nodes()
    if len(nodes) > 1 and cfg.storage is None:
        raise SetupError(
            f"the Ray cluster has {len(nodes)} nodes but storage is a folder on this one, where "
            "workers on other nodes cannot write checkpoints: set storage to s3://BUCKET/PATH "
            "or a path every node mounts (--set storage=...)"
        )
    total = capacity()
    cpus, gpus = total.get("CPU", 0), total.get("GPU", 0)
    res = cfg.resources
    use_gpu = uses_gpu(res, total)
    at_least = res.cpus_per_worker or 1
    need_cpu = res.num_workers * at_least
    if need_cpu > cpus:
        raise SetupError(
            f"a trial needs {need_cpu:g} CPUs ({res.num_workers} workers x "
            f"{at_least}) but the cluster has {cpus:g}: lower "
            "resources.cpus_per_worker or resources.num_workers"
        )
    if use_gpu and res.num_workers > gpus:
        raise SetupError(
            f"a trial needs {res.num_workers} GPUs but the cluster has {gpus:g}: lower "
            "resources.num_workers or set resources.use_gpu=false"
        )
    fits = int(cpus // need_cpu)
    if use_gpu:
        fits = min(fits, int(gpus * res.trials_sharing_a_gpu // res.num_workers))
    concurrent = min(cfg.search.max_concurrent, fits, cfg.search.trials)
    if concurrent < min(cfg.search.max_concurrent, cfg.search.trials):
        log.warning(
            "running %d trials at once, not %d: the cluster has room for %d",
            concurrent,
            cfg.search.max_concurrent,
            fits,
        )
    per_worker = res.cpus_per_worker or shared_cpus(
        nodes, cpus, concurrent * res.num_workers, use_gpu
    )
    return dataclasses.replace(
        cfg,
        resources=dataclasses.replace(res, use_gpu=use_gpu, cpus_per_worker=per_worker),
        search=dataclasses.replace(cfg.search, max_concurrent=concurrent),
    )


def uses_gpu(res, total: dict[str, float]) -> bool:
    """resources.use_gpu as set; unset (null), whether the cluster has GPUs."""
    return total.get("GPU", 0) > 0 if res.use_gpu is None else res.use_gpu


def share_gpus(cfg: Config, shape: ModelShape) -> tuple[Config, Share | None]:
    """Resolves use_gpu and, with GPUs, how many trials share one (None without GPUs); a
    precision no GPU node can train in is a ConfigError."""
    res = cfg.resources
    if not uses_gpu(res, capacity()):
        return dataclasses.replace(cfg, resources=dataclasses.replace(res, use_gpu=False)), None
    gpu_nodes = [node for node in alive_nodes() if node["Resources"].get("GPU")]
    probes = probe_gpus([node["NodeID"] for node in gpu_nodes])
    refusal = no_node_can(cfg.train.precision, probes)
    if refusal:
        raise ConfigError(refusal)
    trial_gib = trial_peak_gib(
        shape,
        cfg.space[BATCH_SIZE].largest(),
        cfg.model.max_length,
        cfg.train.precision,
        eval_batch_size=cfg.train.eval_batch_size,
        repeats=cfg.search.repeats,
        num_workers=res.num_workers,
    )
    measure = res.trials_per_gpu == AUTO and res.num_workers == 1 and probes
    share = choose(
        res.trials_per_gpu,
        res.num_workers,
        trial_gib,
        # Clusters with GPUs of several sizes: set trials_per_gpu.
        min(probe.free_gib for probe in probes) if measure else None,
        min((n["Resources"].get("CPU", 0) / n["Resources"]["GPU"] for n in gpu_nodes), default=0),
        res.cpus_per_worker,
    )
    resources = dataclasses.replace(res, use_gpu=True, trials_per_gpu=share.trials_per_gpu)
    return dataclasses.replace(cfg, resources=resources), share


def shared_cpus(nodes: list[dict], cpus: float, workers: int, use_gpu: bool) -> int:
    """CPUs per worker when `workers` share `cpus`: a worker cannot span nodes, so no more
    than the largest node it can run on (one with a GPU, for GPU workers) has."""
    fitting = [node["Resources"] for node in nodes if not use_gpu or node["Resources"].get("GPU")]
    largest = max((resources.get("CPU", 0) for resources in fitting), default=0)
    return max(1, int(min(cpus // workers, largest)))


def running_alone(cfg: Config, free_cpus: float) -> Config:
    """The config for work that runs after the search, alone (the refit): its workers get the
    CPUs the concurrent trials' workers shared, as far as `free_cpus` (what the cluster has
    free now: another job may hold some) and the largest node have them."""
    res = cfg.resources
    nodes = alive_nodes()
    held = res.cpus_per_worker * cfg.search.max_concurrent
    alone = shared_cpus(nodes, min(held, free_cpus), 1, bool(res.use_gpu))
    return dataclasses.replace(cfg, resources=dataclasses.replace(res, cpus_per_worker=alone))
