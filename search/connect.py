"""Ray: join a cluster or start a local one, with the settings every trial's processes need."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import ray

import trainable
from search.credentials import keep_aws_keys_on_the_driver
from trainable.config import Config
from trainable.errors import SetupError, first_line

PLACEMENT_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
# Each Train controller polls its workers this often (Ray's default is 2 s), and learns only at
# a poll that the worker loop returned: a trial ended on average 1 s after its last report.
# Polling one or a few workers is an actor call each, cheap beside a trial's seconds.
STATE_API_ENV = "RAY_API_SERVER_ADDRESS"
TRAIN_POLL_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}
# Ray Train starts a preemption watcher actor beside every Train run: on a cluster it hears
# that the autoscaler drains a node (a spot machine reclaimed) and lets the run restart its
# workers elsewhere in order. A Ray the search starts is this one machine, which nothing
# drains: there the watcher is a process (and 4 s of CPU) at every slot's start for nothing.
NO_PREEMPTION_WATCHER_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


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
        # work, would yield to anything else; `ray job submit` drivers run at 0 for the same
        # reason. Ray also starts a worker process per CPU for the driver's job as it connects,
        # ready for its tasks: in a tiny search none of them ran anything, and each cost about
        # 2 s of CPU while the driver and the slots' processes started.
        system = {"worker_niceness": 0, "prestart_worker_first_driver": False}
        local = {"dashboard_port": port, "_system_config": system}
        # Ray's runtime env agent logs each runtime env whole at INFO: the Ray started here
        # logs warnings and errors only.
        os.environ.setdefault("RAY_LOGGER_LEVEL", "warning")
        runtime_env = {
            "env_vars": {STATE_API_ENV: f"http://127.0.0.1:{port}", **NO_PREEMPTION_WATCHER_ENV}
        }
    else:
        runtime_env = {"py_modules": [str(Path(trainable.__file__).parent)], "env_vars": {}}
    runtime_env["env_vars"].update(TRAIN_POLL_ENV)
    keep_aws_keys_on_the_driver()
    # The address of an S3-compatible store (docs/storage.md) is no secret: the workers of every
    # node get it here, to write their checkpoints there.
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
        # The driver's state API calls (here and search/placement.py) ask this cluster, not
        # whichever one Ray's address discovery finds first on a machine that runs several, nor
        # one this variable named before (Ray prefers it to the address a call passes).
        if context.dashboard_url:
            os.environ[STATE_API_ENV] = f"http://{context.dashboard_url}"
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
