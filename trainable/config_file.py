"""A config from a commented YAML file plus `key.sub=value` overrides, typed and validated.

Unknown keys and wrong types are refused with the key's name and a fix, before anything runs.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from trainable.config import Config
from trainable.config_checks import check_config
from trainable.errors import ConfigError
from trainable.hyperparameters import SpaceConfig


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
    return check_config(_build(Config, raw, ""))


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
        if kind is SpaceConfig:  # keyed by hyperparameter, each a list or {sampler: [...]}
            values[name] = SpaceConfig.from_declared(raw[name] or {})
        elif dataclasses.is_dataclass(kind):
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
        kinds = [option for option in options if option is not type(None)]
        if len(kinds) > 1:  # e.g. int | str: the first that takes the value
            for option in kinds:
                try:
                    return _coerce(value, option, key)
                except ConfigError:
                    pass
            names = " or ".join(option.__name__ for option in kinds)
            raise ConfigError(f"{key} must be {names}; got {value!r}")
        kind = kinds[0]
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
