"""The search space as Tune distributions, one per dimension the config declares."""

from __future__ import annotations

from typing import Any

from ray import tune

from trainable.hyperparameters import CHOICE, SpaceConfig


def search_space(space: SpaceConfig) -> dict[str, Any]:
    """Each dimension as Ray Tune's sampler of the same name (tune.uniform, tune.choice, ...)."""
    return {
        name: tune.choice(list(dim.values))
        if dim.sampler == CHOICE
        else getattr(tune, dim.sampler)(*dim.values)
        for name, dim in space.dimensions.items()
    }
