"""Ray: join a cluster or start a local one, and fit the search to what the cluster has."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from pathlib import Path

import ray

import trainable
from search.gpu_share import GIB, ModelShape, Share, choose, trial_peak_gib
from trainable.config import AUTO, Config
from trainable.errors import SetupError, first_line

log = logging.getLogger(__name__)
PLACEMENT_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
# Each Train controller polls its workers this often (Ray's default is 2 s), and learns only at
# a poll that the worker loop returned: a trial ended on average 1 s after its last report.
# Polling one or a few workers is an actor call each, cheap beside a trial's seconds.
TRAIN_POLL_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


def connect(cfg: Config) -> None:
    """Joins cfg.address, or starts a local Ray instance when there is none.

    Workers get this run's `trainable` package shipped with the job, so every node runs the
    driver's code whether or not the project is installed there.
    """
    if cfg.address not in (None, "auto"):
        _check_reachable(cfg.address)
    local = {}
    if cfg.address is None:
        # Ray Train's placement-group cleaner finds its cluster through the state API, which
        # cannot choose when several Ray instances run on this machine (another search, a
        # notebook): it dies, and an early-stopped trial's CPUs are never freed, so the next
        # trial waits forever. Naming the dashboard for every worker removes the guess.
        (port,) = free_ports(1)
        # Ray starts workers at nice 15, so on a shared workstation the trials, which are the
        # work, would yield to anything else; `ray job submit` drivers run at 0 for the same reason.
        local = {"dashboard_port": port, "_system_config": {"worker_niceness": 0}}
        # Tune hands the driver's AWS keys to every trial in its runtime env
        # (ray/tune/execution/class_cache.py), and Ray's runtime env agent logs each runtime env
        # whole at INFO: the Ray started here, which inherits this environment, logs warnings
        # and errors only. A cluster started by `ray start` keeps the level it was started with.
        os.environ.setdefault("RAY_LOGGER_LEVEL", "warning")
        runtime_env = {"env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}}
    else:
        runtime_env = {"py_modules": [str(Path(trainable.__file__).parent)], "env_vars": {}}
    runtime_env["env_vars"].update(TRAIN_POLL_ENV)
    # Tune sends the driver's AWS keys to the trials, not the endpoint of an S3-compatible store
    # (docs/storage.md), where the workers of every node write checkpoints.
    endpoint = {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")}
    runtime_env["env_vars"].update(endpoint)
    if cfg.resources.placement_timeout_s is not None:
        # Each Train controller waits this long for its workers' place (trainable/trial.py).
        runtime_env["env_vars"][PLACEMENT_TIMEOUT_ENV] = str(cfg.resources.placement_timeout_s)
    try:
        context = ray.init(
            address=cfg.address,
            runtime_env=runtime_env,
            **local,
            # Worker logs stay in Ray's session folder unless asked for: trial errors reach
            # the driver anyway, as results.
            log_to_driver=cfg.verbose,
            logging_level=logging.WARNING if cfg.verbose else logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SetupError(
            f"could not reach Ray at {cfg.address!r} ({first_line(exc)}): "
            "start the cluster (`ray start --head`) or fix --address"
        ) from None
    if not str(cfg.address).startswith("ray://"):  # a Ray Client driver cannot ask; its cluster can
        _check_state_api(context.dashboard_url)


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (held open together so none repeats)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _check_state_api(dashboard: str | None) -> None:
    """Ray Train frees the CPUs and GPUs of a trial that Tune stops early through a cleaner that
    watches the trial through Ray's state API, which the dashboard serves. Without it (Ray
    installed without its [default] extra, or started with --include-dashboard=false) the first
    trial stopped early holds its resources forever and the next one waits with no error."""
    from ray.util.state import list_actors
    from ray.util.state.exception import RayStateApiException

    problem = "Ray runs without its dashboard"
    if dashboard:
        try:
            list_actors(f"http://{dashboard}", limit=1, timeout=10, raise_on_missing_output=False)
            return
        except (RayStateApiException, OSError, RuntimeError, ValueError) as exc:
            problem = f"Ray's state API does not answer ({first_line(exc)})"
    raise SetupError(
        f"{problem}: install ray[default] where Ray runs and keep its dashboard on, or a trial "
        "stopped early never frees its CPUs and GPUs and the search waits forever"
    )


def _check_reachable(address: str) -> None:
    """Fails in seconds where ray.init would retry an unreachable address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            return
    except (OSError, ValueError):
        raise SetupError(
            f"could not reach Ray at {address!r}: start the cluster (`ray start --head`) "
            "or fix --address (HOST:6379, ray://HOST:10001 or auto)"
        ) from None


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
    """Resolves use_gpu and, with GPUs, how many trials share one (None without GPUs)."""
    res = cfg.resources
    if not uses_gpu(res, capacity()):
        return dataclasses.replace(cfg, resources=dataclasses.replace(res, use_gpu=False)), None
    gpu_nodes = [node["Resources"] for node in alive_nodes() if node["Resources"].get("GPU")]
    trial_gib = trial_peak_gib(
        shape, max(cfg.space.batch_size), cfg.model.max_length, cfg.train.precision
    )
    measure = res.trials_per_gpu == AUTO and res.num_workers == 1 and gpu_nodes
    share = choose(
        res.trials_per_gpu,
        res.num_workers,
        trial_gib,
        gpu_memory_gib() if measure else None,
        min((node.get("CPU", 0) / node["GPU"] for node in gpu_nodes), default=0),
        res.cpus_per_worker,
    )
    resources = dataclasses.replace(res, use_gpu=True, trials_per_gpu=share.trials_per_gpu)
    return dataclasses.replace(cfg, resources=resources), share


def gpu_memory_gib() -> float | None:
    """A GPU's memory, read on a GPU node (the driver's may have none) by a task holding a
    sliver of one. Clusters with GPUs of several sizes: set trials_per_gpu."""

    @ray.remote(num_cpus=0, num_gpus=0.0001)
    def total_memory() -> float:
        import torch

        return torch.cuda.get_device_properties(0).total_memory / GIB

    try:
        return ray.get(total_memory.remote(), timeout=300)
    except Exception as exc:  # no CUDA there after all: share nothing rather than guess
        log.warning("could not read a GPU's memory (%s): one trial per GPU", first_line(exc))
        return None


def shared_cpus(nodes: list[dict], cpus: float, workers: int, use_gpu: bool) -> int:
    """CPUs per worker when `workers` share `cpus`: a worker cannot span nodes, so no more
    than the largest node it can run on (one with a GPU, for GPU workers) has."""
    fitting = [node["Resources"] for node in nodes if not use_gpu or node["Resources"].get("GPU")]
    largest = max((resources.get("CPU", 0) for resources in fitting), default=0)
    return max(1, int(min(cpus // workers, largest)))


def running_alone(cfg: Config) -> Config:
    """The config for work that runs after the search, alone (the refit): its workers get the
    CPUs the concurrent trials' workers shared, up to what the largest node has."""
    res = cfg.resources
    nodes = alive_nodes()
    held = res.cpus_per_worker * cfg.search.max_concurrent
    alone = shared_cpus(nodes, held, 1, bool(res.use_gpu))
    return dataclasses.replace(cfg, resources=dataclasses.replace(res, cpus_per_worker=alone))
