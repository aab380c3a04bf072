"""What each GPU node's GPU has free and can do, read on the node by a task holding a sliver of
one (the driver's machine may have no GPU), and what the driver decides from it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from trainable.device import precision_refusal
from trainable.errors import first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuProbe:
    free_gib: float
    total_gib: float
    capability: tuple[int, int]


def _read_gpu() -> GpuProbe:
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return GpuProbe(free / 2**30, total / 2**30, tuple(torch.cuda.get_device_capability(0)))


def probe_gpus(node_ids: list[str]) -> list[GpuProbe]:
    """One probe per node; none where CUDA cannot be read (then decide nothing from it).

    max_calls=1: the task's worker process exits after it, so the CUDA context it opened does
    not stay on the GPU the trials are about to share."""
    task = ray.remote(num_cpus=0, num_gpus=0.0001, max_calls=1)(_read_gpu)
    refs = [
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
        for node in node_ids
    ]
    try:
        return ray.get(refs, timeout=300)
    except Exception as exc:
        log.warning("could not read the GPUs (%s): one trial per GPU", first_line(exc))
        return []


def no_node_can(precision: str, probes: list[GpuProbe]) -> str | None:
    """Why no probed GPU node can train in `precision`; None if one can, or none was probed
    (a GPU node the autoscaler has yet to start is checked by its trials' workers)."""
    refusals = [precision_refusal(precision, probe.capability) for probe in probes]
    if refusals and all(refusals):
        return f"{refusals[0]} (no GPU node of the cluster can)"
    return None
