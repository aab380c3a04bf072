"""The configuration's checks: each value against its range, and the values together.

Each refusal is one line naming the key, the value and the fix (a ConfigError).
"""

from __future__ import annotations

from trainable.config import AUTO, Config
from trainable.errors import ConfigError
from trainable.metrics import METRIC_MODES
from trainable.space_checks import check_point, check_space


def check_config(config: Config) -> Config:
    """`config` when its values hold together; else raises ConfigError naming the first
    problem and its fix."""
    check_space(config.space)
    _at_least(config.search.trials, 1, "search.trials (--trials)")
    _at_least(config.search.max_concurrent, 1, "search.max_concurrent (--max-concurrent)")
    _at_least(config.search.grace_period, 1, "search.grace_period")
    _at_least(config.search.reduction_factor, 2, "search.reduction_factor")
    _at_least(config.search.keep_top_trials, 1, "search.keep_top_trials")
    _at_least(config.search.repeats, 1, "search.repeats")
    if config.search.repeats > 1 and config.resources.num_workers > 1:
        raise ConfigError(
            "search.repeats > 1 trains a configuration's seeds one after another on one "
            "worker: set resources.num_workers to 1, or search.repeats to 1"
        )
    _at_least(config.resources.num_workers, 1, "resources.num_workers")
    if config.resources.cpus_per_worker is not None:
        _at_least(config.resources.cpus_per_worker, 1, "resources.cpus_per_worker")
    _at_least(config.resources.max_failures, 0, "resources.max_failures")
    if (
        config.resources.placement_timeout_s is not None
        and config.resources.placement_timeout_s <= 0
    ):
        raise ConfigError(
            f"resources.placement_timeout_s is {config.resources.placement_timeout_s}: use a "
            "number of seconds, such as 1200, or null to wait as long as it takes"
        )
    if config.resources.trials_per_gpu != AUTO:
        if not isinstance(config.resources.trials_per_gpu, int):
            raise ConfigError(
                f"resources.trials_per_gpu is {config.resources.trials_per_gpu!r}: use auto "
                "or a whole number such as 4"
            )
        _at_least(config.resources.trials_per_gpu, 1, "resources.trials_per_gpu")
        if config.resources.trials_per_gpu > 1 and config.resources.num_workers > 1:
            raise ConfigError(
                "resources.trials_per_gpu > 1 with resources.num_workers > 1 would put two "
                "workers of one trial on one GPU: set trials_per_gpu to 1 or auto"
            )
    _at_least(config.train.eval_batch_size, 1, "train.eval_batch_size")
    if not 0 <= config.train.warmup_ratio < 1:
        raise ConfigError(
            f"train.warmup_ratio is {config.train.warmup_ratio}: use a fraction of the "
            "training steps, from 0 up to (not including) 1, e.g. 0.1"
        )
    _at_least(config.model.max_length, 8, "model.max_length")
    if config.data.max_rows is not None:
        _at_least(config.data.max_rows, 10, "data.max_rows")
    if config.search.mode not in (None, "min", "max"):
        raise ConfigError(f"search.mode is {config.search.mode!r}: use 'max' or 'min'")
    for key in ("metric", "tie_breaker"):
        name = getattr(config.search, key)
        if name is not None and name not in METRIC_MODES:
            raise ConfigError(f"search.{key} is {name!r}: use one of {', '.join(METRIC_MODES)}")
    if config.train.class_weights not in (None, "balanced"):
        raise ConfigError(
            f"train.class_weights is {config.train.class_weights!r}: use balanced, or null"
        )
    if config.train.precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"train.precision is {config.train.precision!r}: use fp32, fp16 or bf16")
    for name in ("test_fraction", "validation_fraction"):
        value = getattr(config.data, name)
        if not 0 < value < 1:
            raise ConfigError(f"data.{name} is {value}: use a fraction between 0 and 1")
    unsampled = config.unsampled()
    for i, point in enumerate(config.search.initial_points):
        check_point(point, config.space, unsampled, f"search.initial_points[{i}]")
    if config.storage is not None and "?" in config.storage:
        raise ConfigError(
            f"storage {config.storage} has options after '?': set the endpoint of an "
            "S3-compatible store in AWS_ENDPOINT_URL instead (docs/storage.md)"
        )
    labels = config.data.labels
    if labels is not None and (len(labels) < 2 or len(set(labels)) != len(labels)):
        raise ConfigError(
            f"data.labels {labels} must name at least two distinct classes, e.g. [ham, spam],"
            " or be null to read them from the data"
        )
    return config


def _at_least(value: int, minimum: int, key: str) -> None:
    if value < minimum:
        raise ConfigError(f"{key} is {value}: it must be at least {minimum}")
