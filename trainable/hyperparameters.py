"""The hyperparameters a search samples. Each is one field of SpaceConfig, whose metadata says
how it is sampled and which `TrainingArguments` field it sets; everything else (validation, the
Tune space, the worker's arguments, tables and messages) follows from that field. Adding one,
weight decay say, is adding a field here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trainable.errors import ConfigError

LOG_UNIFORM = "log_uniform"  # [low, high], sampled log-uniformly
CHOICE = "choice"  # one of the listed values
EPOCHS = "epochs"  # the one hyperparameter the scheduler, refit and reports read by name


def _dimension(default: list, sampled: str, sets: str):
    return field(default_factory=lambda: list(default), metadata={"sampled": sampled, "sets": sets})


@dataclass
class SpaceConfig:
    learning_rate: list[float] = _dimension([1e-5, 3e-4], LOG_UNIFORM, "learning_rate")
    batch_size: list[int] = _dimension([8, 16, 32], CHOICE, "per_device_train_batch_size")
    epochs: list[int] = _dimension([2, 3, 4], CHOICE, "num_train_epochs")


def dimensions() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(SpaceConfig)


def hyperparameter_names() -> tuple[str, ...]:
    """What the search samples, in order: the one list every table, plot and record follows."""
    return tuple(dim.name for dim in dimensions())


def _whole(dim: dataclasses.Field) -> bool:
    return dim.type in ("list[int]", list[int])


def typed(params: dict[str, Any]) -> dict[str, Any]:
    """The sampled values with their declared types (YAML and Tune may give 8.0 for 8)."""
    return {
        dim.name: int(params[dim.name]) if _whole(dim) else float(params[dim.name])
        for dim in dimensions()
    }


def ran_point(config: dict[str, Any], point: dict[str, Any]) -> bool:
    """Whether a trial's config holds the point's values (the point as `typed` gives it)."""
    return all(config.get(name) == value for name, value in point.items())


def training_arguments(params: dict[str, Any]) -> dict[str, Any]:
    """The `TrainingArguments` fields the sampled values set."""
    values = typed(params)
    return {dim.metadata["sets"]: values[dim.name] for dim in dimensions()}


def describe(params: dict[str, Any]) -> str:
    """`learning_rate=5.00e-05 batch_size=8 epochs=3`, as every message writes them."""
    values = typed(params)
    return " ".join(
        f"{name}={value}" if isinstance(value, int) else f"{name}={value:.2e}"
        for name, value in values.items()
    )


def check_space(space: SpaceConfig) -> None:
    """Raises ConfigError naming the dimension that cannot be sampled, and the fix."""
    for dim in dimensions():
        values, key = getattr(space, dim.name), f"space.{dim.name}"
        if dim.metadata["sampled"] == LOG_UNIFORM:
            if len(values) != 2:
                raise ConfigError(f"{key} must be [low, high]; got {values}")
            low, high = values
            if low <= 0 or high <= 0:
                raise ConfigError(f"{key} {values} must be positive, e.g. [1e-5, 2e-4]")
            if low > high:
                raise ConfigError(
                    f"{key} [{low}, {high}] is inverted: give [low, high], e.g. [{high}, {low}]"
                )
        elif not values or any(v < 1 for v in values):
            raise ConfigError(f"{key} {values} must list whole numbers of at least 1, e.g. [1, 2]")


def check_point(point: dict[str, float], space: SpaceConfig, key: str) -> None:
    """Raises ConfigError unless `point` gives every hyperparameter a value the space holds."""
    names = hyperparameter_names()
    if sorted(point) != sorted(names):
        raise ConfigError(f"{key} {point} must give exactly {', '.join(names)}")
    for dim in dimensions():
        value, allowed = point[dim.name], getattr(space, dim.name)
        if dim.metadata["sampled"] == LOG_UNIFORM:
            inside, what = allowed[0] <= value <= allowed[1], "is outside"
        else:
            inside, what = value in allowed, "is not one of"
        if not inside:
            raise ConfigError(
                f"{key} {dim.name} {value:g} {what} space.{dim.name} {allowed}: "
                "pick a value there, or set search.initial_points to []"
            )
