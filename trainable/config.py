"""The one typed configuration: loaded from YAML plus overrides, validated once, passed whole.

The driver (`search/`) builds it; every trial receives the same object. Nothing downstream
re-reads files or environment variables to find a setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainable.errors import ConfigError
from trainable.hyperparameters import SpaceConfig, full_point
from trainable.metrics import METRIC_MODES
from trainable.space_checks import check_point, check_space

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
    # How long a trial's workers may wait to be placed (for the autoscaler to start a node)
    # before the trial fails with the reason; None: wait as long as it takes.
    placement_timeout_s: float | None = 1200.0

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

    def validate(self) -> Config:
        """Checks the values together; raises ConfigError naming the problem and the fix."""
        check_space(self.space)
        _at_least(self.search.trials, 1, "search.trials (--trials)")
        _at_least(self.search.max_concurrent, 1, "search.max_concurrent (--max-concurrent)")
        _at_least(self.search.grace_period, 1, "search.grace_period")
        _at_least(self.search.reduction_factor, 2, "search.reduction_factor")
        _at_least(self.search.keep_top_trials, 1, "search.keep_top_trials")
        _at_least(self.search.repeats, 1, "search.repeats")
        if self.search.repeats > 1 and self.resources.num_workers > 1:
            raise ConfigError(
                "search.repeats > 1 trains a configuration's seeds one after another on one "
                "worker: set resources.num_workers to 1, or search.repeats to 1"
            )
        _at_least(self.resources.num_workers, 1, "resources.num_workers")
        if self.resources.cpus_per_worker is not None:
            _at_least(self.resources.cpus_per_worker, 1, "resources.cpus_per_worker")
        _at_least(self.resources.max_failures, 0, "resources.max_failures")
        if (
            self.resources.placement_timeout_s is not None
            and self.resources.placement_timeout_s <= 0
        ):
            raise ConfigError(
                f"resources.placement_timeout_s is {self.resources.placement_timeout_s}: use a "
                "number of seconds, such as 1200, or null to wait as long as it takes"
            )
        if self.resources.trials_per_gpu != AUTO:
            if not isinstance(self.resources.trials_per_gpu, int):
                raise ConfigError(
                    f"resources.trials_per_gpu is {self.resources.trials_per_gpu!r}: use auto "
                    "or a whole number such as 4"
                )
            _at_least(self.resources.trials_per_gpu, 1, "resources.trials_per_gpu")
            if self.resources.trials_per_gpu > 1 and self.resources.num_workers > 1:
                raise ConfigError(
                    "resources.trials_per_gpu > 1 with resources.num_workers > 1 would put two "
                    "workers of one trial on one GPU: set trials_per_gpu to 1 or auto"
                )
        _at_least(self.train.eval_batch_size, 1, "train.eval_batch_size")
        if not 0 <= self.train.warmup_ratio < 1:
            raise ConfigError(
                f"train.warmup_ratio is {self.train.warmup_ratio}: use a fraction of the "
                "training steps, from 0 up to (not including) 1, e.g. 0.1"
            )
        _at_least(self.model.max_length, 8, "model.max_length")
        if self.data.max_rows is not None:
            _at_least(self.data.max_rows, 10, "data.max_rows")
        if self.search.mode not in (None, "min", "max"):
            raise ConfigError(f"search.mode is {self.search.mode!r}: use 'max' or 'min'")
        for key in ("metric", "tie_breaker"):
            name = getattr(self.search, key)
            if name is not None and name not in METRIC_MODES:
                raise ConfigError(f"search.{key} is {name!r}: use one of {', '.join(METRIC_MODES)}")
        if self.train.class_weights not in (None, "balanced"):
            raise ConfigError(
                f"train.class_weights is {self.train.class_weights!r}: use balanced, or null"
            )
        if self.train.precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(
                f"train.precision is {self.train.precision!r}: use fp32, fp16 or bf16"
            )
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self.data, name)
            if not 0 < value < 1:
                raise ConfigError(f"data.{name} is {value}: use a fraction between 0 and 1")
        unsampled = self.unsampled()
        for i, point in enumerate(self.search.initial_points):
            check_point(point, self.space, unsampled, f"search.initial_points[{i}]")
        if self.storage is not None and "?" in self.storage:
            raise ConfigError(
                f"storage {self.storage} has options after '?': set the endpoint of an "
                "S3-compatible store in AWS_ENDPOINT_URL instead (docs/storage.md)"
            )
        labels = self.data.labels
        if labels is not None and (len(labels) < 2 or len(set(labels)) != len(labels)):
            raise ConfigError(
                f"data.labels {labels} must name at least two distinct classes, e.g. [ham, spam],"
                " or be null to read them from the data"
            )
        return self

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


def _at_least(value: int, minimum: int, key: str) -> None:
    if value < minimum:
        raise ConfigError(f"{key} is {value}: it must be at least {minimum}")
