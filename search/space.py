"""The search space as Tune distributions, one per SpaceConfig field."""

from __future__ import annotations

from typing import Any

from ray import tune

from trainable.hyperparameters import LOG_UNIFORM, SpaceConfig, dimensions


def search_space(cfg: SpaceConfig) -> dict[str, Any]:
    space = {}
    for dim in dimensions():
        values = getattr(cfg, dim.name)
        if dim.metadata["sampled"] == LOG_UNIFORM:
            space[dim.name] = tune.loguniform(*values)
        else:
            space[dim.name] = tune.choice(values)
    return space
