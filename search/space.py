"""The search space: learning rate (log-uniform), per-device batch size and epochs (choices)."""

from __future__ import annotations

from typing import Any

from ray import tune

from trainable.config import SpaceConfig


def search_space(cfg: SpaceConfig) -> dict[str, Any]:
    low, high = cfg.learning_rate
    return {
        "learning_rate": tune.loguniform(low, high),
        "batch_size": tune.choice(list(cfg.batch_size)),
        "epochs": tune.choice(list(cfg.epochs)),
    }
