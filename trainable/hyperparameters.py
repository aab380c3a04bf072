"""The hyperparameters a search samples, as the config's `space:` declares them.

Three are built in and keep their list shorthand: `learning_rate: [low, high]` (log-uniform),
`batch_size: [8, 16]` and `epochs: [2, 3]` (one of the values). Any other `TrainingArguments`
field can join them with one of Ray Tune's samplers:

    space:
      warmup_ratio: {uniform: [0.0, 0.1]}
      weight_decay: {uniform: [0.0, 0.1]}
      lr_scheduler_type: {choice: [linear, cosine]}

Everything else (the Tune space, the worker's arguments, validation, tables and messages)
follows from the `Dimension`s of `SpaceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainable.errors import ConfigError

EPOCHS = "epochs"  # the one hyperparameter the scheduler, refit and reports read by name
BATCH_SIZE = "batch_size"

# Samplers by Ray Tune's names, with the arguments each takes. randint's upper bound is
# excluded, as in Tune.
RANGES = {"loguniform": 2, "uniform": 2, "quniform": 3, "randint": 2}
CHOICE = "choice"
SAMPLERS = (*RANGES, CHOICE)

# A name the space knows by another than its TrainingArguments field: the field it sets. In
# transformers 5 a warm-up ratio is a warmup_steps below 1.
ALIASES = {
    "batch_size": "per_device_train_batch_size",
    "epochs": "num_train_epochs",
    "warmup_ratio": "warmup_steps",
}
# The built-ins: their shorthand's sampler and their default values.
BUILT_INS = {
    "learning_rate": ("loguniform", (1e-5, 3e-4)),
    BATCH_SIZE: (CHOICE, (8, 16, 32)),
    EPOCHS: (CHOICE, (2, 3, 4)),
}
# TrainingArguments fields the search sets from the rest of the config, or needs as it sets
# them: a dimension may not sample them.
MANAGED = frozenset(
    {
        *ALIASES.values(),
        *("output_dir", "eval_strategy", "save_strategy", "logging_strategy", "save_steps"),
        *("eval_steps", "logging_steps", "save_total_limit", "save_only_model", "seed"),
        *("data_seed", "per_device_eval_batch_size", "train_sampling_strategy", "use_cpu"),
        *("fp16", "bf16", "report_to", "disable_tqdm", "log_level", "logging_nan_inf_filter"),
        *("include_num_input_tokens_seen", "ddp_find_unused_parameters", "max_steps"),
        *("dataloader_num_workers", "dataloader_persistent_workers", "load_best_model_at_end"),
        *("metric_for_best_model", "greater_is_better", "resume_from_checkpoint", "do_train"),
        *("do_eval", "do_predict", "push_to_hub", "hub_model_id", "hub_token", "run_name"),
    }
)


@dataclass(frozen=True)
class Dimension:
    """One sampled hyperparameter: `sampler` one of SAMPLERS, `values` its arguments
    ([low, high], [low, high, q]) or, for a choice, the values."""

    name: str
    sampler: str
    values: tuple

    @property
    def sets(self) -> str:
        """The TrainingArguments field it sets."""
        return ALIASES.get(self.name, self.name)

    @property
    def whole(self) -> bool:
        """Whether it takes whole numbers only (randint, or a choice of whole numbers)."""
        if self.sampler == "randint":
            return True
        return self.sampler == CHOICE and all(is_int(v) for v in self.values)

    def cast(self, value: Any) -> Any:
        """A value with the type the space declares (YAML and Tune may give 8.0 for 8)."""
        if self.whole:
            return int(value)
        return float(value) if self.sampler in RANGES else value

    def holds(self, value: Any) -> bool:
        if self.sampler == CHOICE:
            return value in self.values
        low, high = self.values[:2]
        if not is_number(value):
            return False
        return low <= value < high if self.sampler == "randint" else low <= value <= high

    def largest(self) -> Any:
        if self.sampler == CHOICE:
            return max(self.values)
        return self.values[1] - 1 if self.sampler == "randint" else self.values[1]

    @property
    def table_format(self) -> str:
        """How a table writes a real-valued sample: log-uniform in scientific notation."""
        return "{:.2e}" if self.sampler == "loguniform" else "{:.3g}"

    def declared(self) -> Any:
        """As the YAML writes it: a built-in's list shorthand, else `{sampler: [...]}`."""
        if BUILT_INS.get(self.name, (None,))[0] == self.sampler:
            return list(self.values)
        return {self.sampler: list(self.values)}


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse(name: str, declared: Any) -> Dimension:
    key = f"space.{name}"
    if isinstance(declared, list) and name in BUILT_INS:
        sampler = BUILT_INS[name][0]
        return Dimension(name, sampler, _numbers(sampler, declared))
    example = "e.g. {uniform: [0.0, 0.1]} or {choice: [linear, cosine]}"
    if not isinstance(declared, dict) or len(declared) != 1:
        shorthand = f" or a list, e.g. {list(BUILT_INS[name][1])}" if name in BUILT_INS else ""
        raise ConfigError(f"{key} must be a sampler with its values, {example}{shorthand}")
    ((sampler, values),) = declared.items()
    if sampler not in SAMPLERS:
        raise ConfigError(f"{key} sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
    if not isinstance(values, list):
        raise ConfigError(f"{key} {sampler} takes a list, {example}")
    return Dimension(name, sampler, _numbers(sampler, values))


def _numbers(sampler: str, values: list) -> tuple:
    """A range's ends as numbers: YAML reads 1e-5 (no dot) as a string."""
    if sampler not in RANGES:
        return tuple(values)
    return tuple(_number(v) if isinstance(v, str) else v for v in values)


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class SpaceConfig:
    """The space as declared: the built-ins first (their defaults unless declared), then any
    other dimensions in the order the YAML gives them."""

    dimensions: dict[str, Dimension] = field(
        default_factory=lambda: {
            name: Dimension(name, sampler, values) for name, (sampler, values) in BUILT_INS.items()
        }
    )

    @classmethod
    def from_declared(cls, declared: dict[str, Any]) -> SpaceConfig:
        """From the YAML's `space:` mapping (with overrides applied); shapes are checked here,
        values by `space_checks.check_space`."""
        if not isinstance(declared, dict):
            raise ConfigError("space must be a mapping of hyperparameters to values")
        space = cls()
        for name, values in declared.items():
            space.dimensions[str(name)] = _parse(str(name), values)
        return space

    def declared(self) -> dict[str, Any]:
        return {name: dim.declared() for name, dim in self.dimensions.items()}

    @property
    def names(self) -> tuple[str, ...]:
        """What the search samples, in order: the one list every table, plot and record follows."""
        return tuple(self.dimensions)

    @property
    def extra(self) -> tuple[Dimension, ...]:
        """The dimensions beside the built-ins."""
        return tuple(d for name, d in self.dimensions.items() if name not in BUILT_INS)

    def __getitem__(self, name: str) -> Dimension:
        return self.dimensions[name]

    def typed(self, params: dict[str, Any]) -> dict[str, Any]:
        """The sampled values of every dimension, with their declared types."""
        return {name: dim.cast(params[name]) for name, dim in self.dimensions.items()}

    def training_arguments(self, params: dict[str, Any]) -> dict[str, Any]:
        """The `TrainingArguments` fields the sampled values set."""
        values = self.typed(params)
        return {dim.sets: values[name] for name, dim in self.dimensions.items()}


def ran_point(config: dict[str, Any], point: dict[str, Any]) -> bool:
    """Whether a trial's config holds the point's values (the point as `full_point` gives it)."""
    return all(config.get(name) == value for name, value in point.items())


def describe(params: dict[str, Any]) -> str:
    """`learning_rate=5.00e-05 batch_size=8 epochs=3`, as every message writes them."""
    return " ".join(f"{name}={shown(value)}" for name, value in params.items())


def shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2e}" if value and abs(value) < 1e-2 else f"{value:g}"
    return str(value)


def full_point(point: dict[str, Any], space: SpaceConfig, unsampled: dict[str, Any]) -> dict:
    """A point of search.initial_points with every dimension: one it omits takes the value a
    trial gets without that dimension (`unsampled`: by name, see `Config.unsampled`)."""
    return space.typed({**{d.name: unsampled[d.name] for d in space.extra}, **point})
