"""The one typed configuration: loaded from YAML plus overrides, checked once
(`trainable.config_checks`), passed whole.

The driver (`search/`) builds it; every trial receives the same object. Nothing downstream
re-reads files or environment variables to find a setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainable.hyperparameters import SpaceConfig, full_point

EMBEDDED = "embedded"
AUTO = "auto"


@dataclass
class ModelConfig:
    name: str = EMBEDDED
    tiny: bool = False
    max_length: int = 128
    trust_remote_code: bool = False


@dataclass
class DataConfig:
    source: str = EMBEDDED
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] | None = None  # None: read from the data, sorted
    positive_label: str | None = None  # two classes: the one precision, recall and F1 are about
    hub_split: str = "train"
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    max_rows: int | None = None


@dataclass
class TrainConfig:
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    eval_batch_size: int = 64
    group_by_length: bool = True
    precision: str = "fp32"
    save_optimizer_state: bool = False
    class_weights: str | None = None  # "balanced": loss weighted by inverse class frequency


@dataclass
class SearchConfig:
    name: str | None = None
    trials: int = 20
    max_concurrent: int = 2
    metric: str | None = None  # None: f1 for two classes, macro_f1 for more
    mode: str | None = None  # None: the metric's own direction (min for loss)
    tie_breaker: str | None = "loss"
    grace_period: int = 2
    reduction_factor: int = 2
    keep_top_trials: int = 3
    refit: bool = True
    repeats: int = 1  # seeds per configuration; ASHA and Optuna see their mean per epoch
    # A point gives the built-ins, and may give other dimensions (full_point fills them in).
    initial_points: list[dict[str, bool | int | float | str]] = field(
        default_factory=lambda: [{"learning_rate": 5e-5, "batch_size": 8, "epochs": 3}]
    )


@dataclass
class ResourcesConfig:
    num_workers: int = 1
    cpus_per_worker: int | None = None  # None: share the CPUs among the running trials
    use_gpu: bool | None = None
    # Trials sharing one GPU (each worker asks for 1/n of it); AUTO: as many as the GPU's
    # memory and the GPU node's CPUs fit, at the space's largest batch (search/gpu_share.py).
    trials_per_gpu: int | str = AUTO
    max_failures: int = 1
    # One long-lived Train worker per trial slot, training one trial after another: torch and
    # transformers imported once per slot, not once per trial (search/slots.py).
    warm_workers: bool = True
    # How long a trial's workers may wait to be placed (for the autoscaler to start a node)
    # before the trial fails with the reason; None: wait as long as it takes.
    placement_timeout_s: float | None = 1200.0

    @property
    def trials_on_warm_workers(self) -> bool:
        """One-worker trials go to warm workers; several workers train under the torch process
        group Ray Train sets up for each run."""
        return self.warm_workers and self.num_workers == 1

    @property
    def trials_sharing_a_gpu(self) -> int:
        """trials_per_gpu once the search resolved it; a whole GPU per worker until then."""
        return self.trials_per_gpu if isinstance(self.trials_per_gpu, int) else 1


@dataclass
class TrackingConfig:
    uri: str | None = None
    experiment: str = "finetune-hpo"
    registered_model: str | None = AUTO  # AUTO: named after the data; None: not registered


@dataclass
class Config:
    seed: int = 42
    output: str = "runs/spam"
    storage: str | None = None
    address: str | None = None
    verbose: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def output_dir(self) -> Path:
        return Path(self.output).expanduser().resolve()

    @property
    def storage_path(self) -> str:
        """Where Tune results and checkpoints go: a local folder, or a URI such as s3://..."""
        return self.storage or str(self.output_dir / "ray_results")

    @property
    def tracking_uri(self) -> str:
        return self.tracking.uri or f"sqlite:///{self.output_dir / 'mlflow.db'}"

    @property
    def optuna_uri(self) -> str:
        """The Optuna study's storage (the study is named `search.layout.STUDY_NAME`)."""
        return f"sqlite:///{self.output_dir / 'optuna.db'}"

    def experiment_path(self, search_name: str) -> str:
        """Tune's experiment folder (or URI) of the search named `search_name`."""
        return f"{self.storage_path.rstrip('/')}/{search_name}"

    def to_dict(self) -> dict[str, Any]:
        """As `config_from_dict` reads it back: the space as the YAML declares it."""
        return {**dataclasses.asdict(self), "space": self.space.declared()}

    def initial_points(self) -> list[dict[str, Any]]:
        """search.initial_points with every dimension of the space, typed."""
        unsampled = self.unsampled()
        return [full_point(point, self.space, unsampled) for point in self.search.initial_points]

    @property
    def defaults_point(self) -> dict[str, Any] | None:
        """The first initial point, the defaults' trial: the HF Trainer's defaults in the
        shipped configs."""
        return next(iter(self.initial_points()), None)

    def unsampled(self) -> dict[str, Any]:
        """What a trial's TrainingArguments hold for each extra dimension were it not sampled:
        the train section's weight decay and warm-up, TrainingArguments' default otherwise."""
        if not self.space.extra:
            return {}
        from transformers import TrainingArguments

        defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
        fixed = self.train_section_arguments()
        return {dim.name: fixed.get(dim.sets, defaults[dim.sets]) for dim in self.space.extra}

    def train_section_arguments(self) -> dict[str, float]:
        """The TrainingArguments fields the train section sets, unless the space samples them.
        A float warm-up below 1 is a fraction of all steps (an int 0 would make Trainer's
        hyperparameter_search cast a sampled 0.1 to 0)."""
        return {
            "weight_decay": self.train.weight_decay,
            "warmup_steps": float(self.train.warmup_ratio),
        }
