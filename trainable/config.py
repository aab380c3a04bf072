"""The one typed configuration: loaded from YAML plus overrides, validated once, passed whole.

The driver (`search/`) builds it; every trial receives the same object. Nothing downstream
re-reads files or environment variables to find a setting.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainable.errors import ConfigError
from trainable.metrics import METRIC_MODES

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
class SpaceConfig:
    learning_rate: list[float] = field(default_factory=lambda: [1e-5, 3e-4])
    batch_size: list[int] = field(default_factory=lambda: [8, 16, 32])
    epochs: list[int] = field(default_factory=lambda: [2, 3, 4])


def hyperparameter_names() -> tuple[str, ...]:
    """What the search samples, in order: the one list every table, plot and record follows."""
    return tuple(f.name for f in dataclasses.fields(SpaceConfig))


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
    initial_points: list[dict[str, float]] = field(
        default_factory=lambda: [{"learning_rate": 5e-5, "batch_size": 8, "epochs": 3}]
    )


@dataclass
class ResourcesConfig:
    num_workers: int = 1
    cpus_per_worker: int | None = None  # None: share the CPUs among the running trials
    use_gpu: bool | None = None
    max_failures: int = 1


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
        low, high = _pair(self.space.learning_rate, "space.learning_rate")
        if low <= 0 or high <= 0:
            raise ConfigError(
                f"space.learning_rate {self.space.learning_rate} must be positive, "
                "e.g. [1e-5, 2e-4]"
            )
        if low > high:
            raise ConfigError(
                f"space.learning_rate [{low}, {high}] is inverted: give [low, high], "
                f"e.g. [{high}, {low}]"
            )
        for name in ("batch_size", "epochs"):
            values = getattr(self.space, name)
            if not values or any(v < 1 for v in values):
                raise ConfigError(
                    f"space.{name} {values} must list whole numbers of at least 1, e.g. [1, 2, 3]"
                )
        _at_least(self.search.trials, 1, "search.trials (--trials)")
        _at_least(self.search.max_concurrent, 1, "search.max_concurrent (--max-concurrent)")
        _at_least(self.search.grace_period, 1, "search.grace_period")
        _at_least(self.search.reduction_factor, 2, "search.reduction_factor")
        _at_least(self.search.keep_top_trials, 1, "search.keep_top_trials")
        _at_least(self.resources.num_workers, 1, "resources.num_workers")
        if self.resources.cpus_per_worker is not None:
            _at_least(self.resources.cpus_per_worker, 1, "resources.cpus_per_worker")
        _at_least(self.resources.max_failures, 0, "resources.max_failures")
        _at_least(self.train.eval_batch_size, 1, "train.eval_batch_size")
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
        for i, point in enumerate(self.search.initial_points):
            _check_point(point, self.space, f"search.initial_points[{i}]")
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
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Reads a YAML config (or the defaults), applies dotted-key overrides, validates."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist: pass --config with a YAML file, "
                "e.g. configs/default.yaml"
            )
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(
                f"config file {path} is not valid YAML{where}: fix its syntax"
            ) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        raw = loaded or {}
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict[str, Any], overrides: dict[str, Any] | None = None) -> Config:
    """A config saved with Config.to_dict(), with dotted-key overrides, validated."""
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    return _build(Config, raw, "").validate()


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` → (key.sub, YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {text!r} must look like key.sub=value, e.g. train.weight_decay=0.01"
        )
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r} has a value that is not valid YAML") from None


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key} goes inside {part}, which is not a section")
    node[leaf] = value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in raw if key not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
        hint = f"did you mean {prefix}{close[0]}?" if close else f"valid keys: {', '.join(names)}"
        raise ConfigError(f"unknown config key {prefix}{key}: {hint}")
    values = {}
    for name in names:
        if name not in raw:
            continue
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, raw[name] or {}, f"{prefix}{name}.")
        else:
            values[name] = _coerce(raw[name], kind, f"{prefix}{name}")
    return cls(**values)


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(option for option in options if option is not type(None))
        origin = typing.get_origin(kind)
    if origin is dict:
        _, item = typing.get_args(kind)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, e.g. {{a: 1}}; got {value!r}")
        return {k: _coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, e.g. [1, 2]; got {value!r}")
        return [_coerce(v, item, key) for v in value]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-5 as a string
        except ValueError:
            pass
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {kind.__name__}; got {value!r}")
    return value


def _pair(values: list[float], key: str) -> tuple[float, float]:
    if len(values) != 2:
        raise ConfigError(f"{key} must be [low, high]; got {values}")
    return values[0], values[1]


def _check_point(point: dict[str, float], space: SpaceConfig, key: str) -> None:
    names = [f.name for f in dataclasses.fields(SpaceConfig)]
    if sorted(point) != sorted(names):
        raise ConfigError(f"{key} {point} must give exactly {', '.join(names)}")
    low, high = space.learning_rate
    if not low <= point["learning_rate"] <= high:
        raise ConfigError(
            f"{key} learning_rate {point['learning_rate']} is outside space.learning_rate "
            f"[{low}, {high}]: move it inside, or set search.initial_points to []"
        )
    for name in ("batch_size", "epochs"):
        if point[name] not in getattr(space, name):
            raise ConfigError(
                f"{key} {name} {point[name]:g} is not one of space.{name} "
                f"{getattr(space, name)}: pick one, or set search.initial_points to []"
            )
        point[name] = int(point[name])


def _at_least(value: int, minimum: int, key: str) -> None:
    if value < minimum:
        raise ConfigError(f"{key} is {value}: it must be at least {minimum}")
