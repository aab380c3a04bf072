"""How many trials share one GPU: an estimate of a trial's peak GPU memory, and the choice.

Pure arithmetic: the caller reads the model's shape, the GPU's free memory and a GPU node's
CPUs.
The estimate is checked on a GPU by the GPU benchmark, where each trial reports the peak that
torch measured (`gpu_peak_gib`); BENCHMARKS.md records both.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
# Per parameter, in bytes: fp32 weights (4), gradients (4), AdamW's two moments (8). Mixed
# precision keeps fp32 weights and moments, so the figure holds for fp16 and bf16 too.
BYTES_PER_PARAMETER = 16
# The gradient buckets of the DDP wrapper around a data-parallel trial's model (a one-worker
# trial trains without one: trainable/trial.py).
DDP_BYTES_PER_PARAMETER = 4
# A trial of several seeds (search.repeats) builds the next seed's Trainer while the last one's
# weights and AdamW moments are still alive (its gradients are freed after each step).
KEPT_BYTES_PER_PARAMETER = 12
# A process's CUDA context, cuBLAS workspaces and the caching allocator's slack.
PROCESS_OVERHEAD_GIB = 0.75
MARGIN = 1.25  # on the whole estimate: fragmentation, the logits, what the formula leaves out
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


def trial_peak_gib(
    shape: ModelShape,
    batch_size: int,
    max_length: int,
    precision: str,
    *,
    eval_batch_size: int = 0,
    repeats: int = 1,
    num_workers: int = 1,
) -> float:
    """A trial's peak GPU memory, in GiB, at its largest batch: its training states plus the
    larger of a training step's activations and an evaluation step's.

    Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
    Transformer Models", eq. 1): per layer, s * b * h * (34 + 5 * a * s / h) bytes with 16-bit
    activations; fp32 doubles it. Training keeps every layer's for the backward pass;
    evaluation, without gradients, one layer's at a time."""
    s, h, a = max_length, shape.hidden, shape.heads
    per_layer_per_example = s * h * (34 + 5 * a * s / h) * (2 if precision == "fp32" else 1)
    training = shape.layers * batch_size * per_layer_per_example
    evaluation = eval_batch_size * per_layer_per_example
    per_parameter = BYTES_PER_PARAMETER
    if num_workers > 1:
        per_parameter += DDP_BYTES_PER_PARAMETER
    if repeats > 1:
        per_parameter += KEPT_BYTES_PER_PARAMETER
    states = shape.parameters * per_parameter
    return MARGIN * ((states + max(training, evaluation)) / GIB + PROCESS_OVERHEAD_GIB)


def choose(
    asked: int | str,
    num_workers: int,
    trial_gib: float,
    gpu_gib: float | None,
    cpus_per_gpu: float,
    cpus_per_worker: int | None,
) -> Share:
    """Trials per GPU: `asked` when a number, else as many as fit the GPU's free memory
    (`gpu_gib`) and the CPUs of a GPU node (each worker needs at least one CPU, or
    cpus_per_worker where set)."""
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
        f"a trial needs about {trial_gib:.1f} GiB of the GPU's {gpu_gib:.0f} free "
        f"({by_memory} fit) and the GPU node has {cpus_per_gpu:g} CPUs per GPU ({by_cpus} fit)",
    )
