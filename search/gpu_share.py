"""How many trials share one GPU: an estimate of a trial's peak GPU memory, and the choice.

Pure arithmetic: the caller reads the model's shape, the GPU's memory and a GPU node's CPUs.
The estimate is checked on a GPU by the GPU benchmark, where each trial reports the peak that
torch measured (`gpu_peak_gib`); BENCHMARKS.md records both.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
# Per parameter, in bytes: fp32 weights (4), gradients (4), AdamW's two moments (8), and the
# gradient buckets of the DDP wrapper Ray Train puts around even a single worker's model (4).
# Mixed precision keeps fp32 weights and moments, so the figure holds for fp16 and bf16 too.
BYTES_PER_PARAMETER = 20
# A process's CUDA context, cuBLAS workspaces and the caching allocator's slack.
PROCESS_OVERHEAD_GIB = 0.75
MARGIN = 1.25  # on the whole estimate: activations of padding, fragmentation, eval batches
USABLE = 0.9  # of the GPU's memory: the rest stays free for the driver, NCCL and other tenants


@dataclass(frozen=True)
class ModelShape:
    """What a trial's memory depends on, read from the model's config."""

    parameters: int
    layers: int
    hidden: int
    heads: int

    @classmethod
    def of(cls, config, parameters: int) -> ModelShape:
        """From a transformers config (its standard attribute names)."""
        return cls(
            parameters, config.num_hidden_layers, config.hidden_size, config.num_attention_heads
        )


@dataclass(frozen=True)
class Share:
    trials_per_gpu: int
    reason: str

    @property
    def gpu_per_worker(self) -> float:
        return 1 / self.trials_per_gpu


def trial_peak_gib(shape: ModelShape, batch_size: int, max_length: int, precision: str) -> float:
    """A training trial's peak GPU memory, in GiB, at its largest batch.

    Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
    Transformer Models", eq. 1): per layer, s * b * h * (34 + 5 * a * s / h) bytes with 16-bit
    activations; fp32 doubles it."""
    s, b, h, a = max_length, batch_size, shape.hidden, shape.heads
    activation_bytes = shape.layers * s * b * h * (34 + 5 * a * s / h)
    if precision == "fp32":
        activation_bytes *= 2
    states = shape.parameters * BYTES_PER_PARAMETER
    return MARGIN * ((states + activation_bytes) / GIB + PROCESS_OVERHEAD_GIB)


def choose(
    asked: int | str,
    num_workers: int,
    trial_gib: float,
    gpu_gib: float | None,
    cpus_per_gpu: float,
    cpus_per_worker: int | None,
) -> Share:
    """Trials per GPU: `asked` when a number, else as many as fit the GPU's memory and the CPUs
    of a GPU node (each worker needs at least one CPU, or cpus_per_worker where set)."""
    if asked != "auto":
        return Share(int(asked), f"resources.trials_per_gpu={asked}")
    if num_workers > 1:
        # Two workers of one trial on one GPU would be two NCCL ranks on one device.
        return Share(1, "data-parallel trials (num_workers > 1) take whole GPUs")
    if gpu_gib is None:
        return Share(
            1,
            "no GPU's memory could be read (no GPU node up yet, or no CUDA there): set "
            "resources.trials_per_gpu to pack trials",
        )
    by_memory = int(gpu_gib * USABLE // trial_gib)
    by_cpus = int(cpus_per_gpu // (cpus_per_worker or 1))
    count = max(1, min(by_memory, by_cpus))
    return Share(
        count,
        f"a trial needs about {trial_gib:.1f} GiB of the GPU's {gpu_gib:.0f} "
        f"({by_memory} fit) and the GPU node has {cpus_per_gpu:g} CPUs per GPU ({by_cpus} fit)",
    )
