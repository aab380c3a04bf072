"""Refusals of a declared search space, and of the points a search starts from, before
anything runs: each names the dimension and the fix."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from trainable.errors import ConfigError
from trainable.hyperparameters import (
    ALIASES,
    BATCH_SIZE,
    BUILT_INS,
    CHOICE,
    EPOCHS,
    MANAGED,
    RANGES,
    SpaceConfig,
    is_int,
    is_number,
    shown,
)


def check_space(space: SpaceConfig) -> None:
    """Raises ConfigError naming the dimension that cannot be sampled, and the fix."""
    for dim in space.dimensions.values():
        key, values = f"space.{dim.name}", list(dim.values)
        if dim.sampler == CHOICE:
            if not values:
                raise ConfigError(f"{key} must list at least 1 value, e.g. [1, 2]")
        else:
            arity = RANGES[dim.sampler]
            shape = "[low, high, q]" if arity == 3 else "[low, high]"
            if len(values) != arity or not all(map(is_number, values)):
                raise ConfigError(f"{key} {dim.sampler} takes {shape}; got {values}")
            low, high = values[:2]
            if dim.sampler == "loguniform" and (low <= 0 or high <= 0):
                raise ConfigError(f"{key} {values} must be positive, e.g. [1e-5, 2e-4]")
            if dim.sampler == "randint" and not (is_int(low) and is_int(high)):
                raise ConfigError(f"{key} randint takes whole numbers; got {values}")
            if low > high or (dim.sampler == "randint" and low == high):
                raise ConfigError(
                    f"{key} {values} is inverted or empty: give [low, high] with low below "
                    "high (randint excludes high)"
                )
        if dim.name in (BATCH_SIZE, EPOCHS) and not (
            dim.whole and all(v >= 1 for v in values[: 2 if dim.sampler != CHOICE else None])
        ):
            raise ConfigError(f"{key} {values} must be whole numbers of at least 1, e.g. [1, 2]")
    if space.extra:
        _check_training_arguments(space)


def _check_training_arguments(space: SpaceConfig) -> None:
    """Each extra dimension names a TrainingArguments field the search leaves free, of a type
    its sampler gives, and TrainingArguments takes each of its values (a choice's every one,
    a range's ends)."""
    from transformers import TrainingArguments

    fields = {f.name: f for f in dataclasses.fields(TrainingArguments) if f.init}
    hints = typing.get_type_hints(TrainingArguments)
    for dim in space.extra:
        key = f"space.{dim.name}"
        if dim.sets in MANAGED and dim.name not in ALIASES:
            alias = next((name for name, sets in ALIASES.items() if sets == dim.name), None)
            raise ConfigError(
                f"{key}: sample it as space.{alias}"
                if alias
                else f"{key}: the search sets "
                f"{dim.name} itself; sample another TrainingArguments field"
            )
        if dim.sets not in fields:
            raise ConfigError(
                f"{key} is not a TrainingArguments field: name one, e.g. warmup_ratio, "
                "weight_decay or lr_scheduler_type"
            )
        kinds = _kinds(hints[dim.sets])
        if dim.sampler in RANGES and float not in kinds and int not in kinds:
            raise ConfigError(f"{key} takes {_names(kinds)}: sample it with choice")
        if dim.sampler != "randint" and dim.sampler in RANGES and float not in kinds:
            raise ConfigError(f"{key} takes whole numbers: sample it with randint or choice")
        samples = dim.values if dim.sampler == CHOICE else (dim.values[0], dim.largest())
        if dim.name == "warmup_ratio" and not all(is_number(v) and 0 <= v < 1 for v in samples):
            raise ConfigError(f"{key} {dim.declared()} must lie in [0, 1), e.g. [0.0, 0.1]")
        for value in samples:
            try:
                TrainingArguments(output_dir="unused", report_to="none", **{dim.sets: value})
            except (ValueError, TypeError) as exc:
                reason = str(exc).split("\n")[0][:200]
                raise ConfigError(
                    f"{key} value {value!r} is refused by TrainingArguments: {reason}"
                ) from None


def _kinds(hint: Any) -> set[type]:
    """The plain types a TrainingArguments field takes (an enum counts as str)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    kinds = set()
    for option in options:
        if isinstance(option, type) and issubclass(option, enum.Enum):
            kinds.add(str)
        elif isinstance(option, type):
            kinds.add(option)
    return kinds


def _names(kinds: set[type]) -> str:
    return " or ".join(sorted(kind.__name__ for kind in kinds if kind is not type(None)))


def check_point(
    point: dict[str, Any], space: SpaceConfig, unsampled: dict[str, Any], key: str
) -> None:
    """Raises ConfigError unless `point` gives each built-in a value the space holds, and any
    other dimension it names one too. A dimension it omits takes `unsampled`'s value (what a
    trial gets without the dimension), which the space must hold too: Optuna records every
    trial's values in the dimensions' own distributions."""
    missing = [name for name in BUILT_INS if name not in point]
    unknown = [name for name in point if name not in space.dimensions]
    if missing or unknown:
        raise ConfigError(
            f"{key} {point} must give {', '.join(BUILT_INS)}"
            + (f", and may give {', '.join(d.name for d in space.extra)}" if space.extra else "")
        )
    for name, value in point.items():
        dim = space[name]
        if not dim.holds(value):
            what = "is not one of" if dim.sampler == CHOICE else "is outside"
            raise ConfigError(
                f"{key} {name} {shown(value)} {what} space.{name} {dim.declared()}: "
                "pick a value there, or set search.initial_points to []"
            )
    for dim in space.extra:
        value = unsampled[dim.name]
        if dim.name not in point and not dim.holds(value):
            raise ConfigError(
                f"{key} omits {dim.name}, so its trial takes {shown(value)}, outside "
                f"space.{dim.name} {dim.declared()}: give the point a {dim.name} there, or "
                f"declare a range that holds {shown(value)}"
            )
