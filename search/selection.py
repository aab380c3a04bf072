"""Which trial and epoch is best: the metric first, in its mode; the tie-breaker only between
equal metric values. The one ranking that selection, checkpoint pruning and progress share.

ASHA and Optuna see the metric alone: a weighted sum such as `F1 - 1e-3 * loss` lets the
tie-breaker outrank a real difference in F1 (one message moves F1 by less than 1e-3 at
about 1,000 positives), and no weight is small enough for every metric and data size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ray.tune import ResultGrid
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

from trainable.config import Config, SearchConfig
from trainable.metrics import METRIC_MODES
from trainable.storage import exists, resolve


def metric_key(name: str) -> str:
    """The reported key of a metric (`macro_f1` → `eval_macro_f1`)."""
    return f"eval_{name}"


@dataclass(frozen=True)
class Ranking:
    """Orders evaluations (dicts of `eval_*` scores): larger keys are better."""

    metric: str
    mode: str
    tie_breaker: str | None = None

    @classmethod
    def of(cls, search: SearchConfig) -> Ranking:
        return cls(search.metric, search.mode, search.tie_breaker)

    @property
    def key_name(self) -> str:
        return metric_key(self.metric)

    @property
    def keys(self) -> tuple[str, ...]:
        """The scores an evaluation is ranked by."""
        breaker = () if self.tie_breaker is None else (metric_key(self.tie_breaker),)
        return (self.key_name, *breaker)

    def key(self, scores: dict[str, Any]) -> tuple[float, float] | None:
        """None when the evaluation has no finite metric value."""
        value = _finite(scores.get(self.key_name))
        if value is None:
            return None
        tie = 0.0
        if self.tie_breaker is not None:
            breaker = _finite(scores.get(metric_key(self.tie_breaker)))
            sign = 1 if METRIC_MODES[self.tie_breaker] == "max" else -1
            tie = -math.inf if breaker is None else sign * breaker
        return (value if self.mode == "max" else -value, tie)

    def better(self, scores: dict[str, Any], than: dict[str, Any] | None) -> bool:
        mine = self.key(scores)
        theirs = None if than is None else self.key(than)
        return mine is not None and (theirs is None or mine > theirs)


@dataclass
class BestTrial:
    trial_id: str
    hyperparameters: dict[str, Any]
    epoch: int
    validation: dict[str, float]
    checkpoint_path: str


def find_best(results: ResultGrid, cfg: Config) -> BestTrial | None:
    """The best epoch of any trial whose checkpoint still exists; None when no trial reported."""
    ranking = Ranking.of(cfg.search)
    fs, _ = resolve(cfg.storage_path)
    candidates = [
        (key, result, row)
        for result in results
        for key, row in _ranked_rows(result, ranking)
        if isinstance(row.get(CHECKPOINT_PATH_KEY), str)
    ]
    candidates.sort(key=lambda item: item[0], reverse=True)
    for _, result, row in candidates:
        if exists(fs, row[CHECKPOINT_PATH_KEY]):
            return BestTrial(
                trial_id=result.metrics.get("trial_id", ""),
                hyperparameters=cfg.space.typed(result.config),
                epoch=int(row["training_iteration"]),
                validation={k: v for k, v in row.items() if k.startswith("eval_")},
                checkpoint_path=row[CHECKPOINT_PATH_KEY],
            )
    return None


def best_per_trial(results: ResultGrid, ranking: Ranking) -> dict[str, tuple[Any, dict]]:
    """Each trial's best evaluation by the ranking: trial id → (its Result, that row)."""
    bests = {}
    for result in results:
        rows = sorted(_ranked_rows(result, ranking), key=lambda item: item[0])
        if rows:
            bests[result.metrics.get("trial_id", "")] = (result, rows[-1][1])
    return bests


def _ranked_rows(result, ranking: Ranking) -> list[tuple[tuple[float, float], dict]]:
    """A trial's evaluations that have a finite metric, with their ranking keys."""
    frame = result.metrics_dataframe
    if frame is None or frame.empty:
        return []
    rows = ((ranking.key(row), row) for row in frame.to_dict("records"))
    return [(key, row) for key, row in rows if key is not None]


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
