"""What the GPU a trial trains on can do, decided from its compute capability: pure, so that
the driver (for every GPU node, before anything runs) and the worker (for its own GPU) apply
the same rule."""

from __future__ import annotations

from trainable.config import Config
from trainable.errors import SetupError

# bf16 arithmetic in hardware from Ampere (8.0) on; older GPUs (T4 7.5, V100 7.0) report bf16
# as supported but emulate it, many times slower than fp16.
NATIVE_BF16 = (8, 0)


def precision_refusal(precision: str, capability: tuple[int, int]) -> str | None:
    """Why a GPU of compute capability `capability` should not train in `precision`; None if
    it can."""
    if precision == "bf16" and tuple(capability) < NATIVE_BF16:
        major, minor = capability
        return (
            f"train.precision is bf16 but the GPU (compute capability {major}.{minor}) has no "
            "bf16 arithmetic and would emulate it, slowly: use fp16 (--set train.precision=fp16) "
            "or a GPU of compute capability 8.0 or more"
        )
    return None


def check_precision(cfg: Config) -> None:
    """On the worker, before the model loads: its own GPU can train in the config's precision."""
    if not cfg.resources.use_gpu or cfg.train.precision == "fp32":
        return
    import torch

    refusal = precision_refusal(cfg.train.precision, torch.cuda.get_device_capability())
    if refusal:
        raise SetupError(refusal)


def cpu_plan(use_gpu: bool, cpus: int) -> tuple[int, int]:
    """(torch threads, data-loading worker processes) for a worker that holds `cpus` CPUs.

    A CPU trial computes on its CPUs, so its threads take them all and its batches are collated
    in-process, between steps, at little cost. A GPU trial's process mostly waits on the GPU, so
    collating the next batch in a loader process while the GPU works costs no step time, even
    where that loader shares the one CPU the trial holds; up to 2 loaders, the rest threads."""
    if not use_gpu:
        return cpus, 0
    loaders = min(2, max(1, cpus // 2))
    return max(1, cpus - loaders), loaders
