"""What the search classifies, made explicit once the data is read: the labels, the positive
class of a two-class task, the metric trials are ranked by and the registered model's name.

The resolved config is what the search stores and every trial receives, so a resumed search
and each worker see the same labels in the same order.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from trainable.config import AUTO, EMBEDDED, Config
from trainable.errors import ConfigError, DataError
from trainable.metrics import BINARY_METRICS, METRIC_MODES, class_key

# Two-class label pairs whose positive class goes without saying (compared in lower case).
KNOWN_POSITIVE = {
    frozenset({"ham", "spam"}): "spam",
    frozenset({"0", "1"}): "1",
    frozenset({"false", "true"}): "true",
    frozenset({"no", "yes"}): "yes",
    frozenset({"neg", "pos"}): "pos",
    frozenset({"negative", "positive"}): "positive",
}


def resolve(cfg: Config, labels: list[str]) -> Config:
    """The config with the data's labels, positive class, metric, mode and model name filled
    in; raises ConfigError where the task and the config disagree."""
    keys = [class_key(label) for label in labels]
    if len(set(keys)) != len(keys):
        raise DataError(
            f"labels {labels} differ only in signs that metric names cannot hold: "
            "rename them in the label column"
        )
    search = cfg.search
    metric = search.metric or ("f1" if len(labels) == 2 else "macro_f1")
    needed_by = next((m for m in (metric, search.tie_breaker) if m in BINARY_METRICS), None)
    positive = positive_label(cfg, labels, needed_by)
    for key, name in (("metric", metric), ("tie_breaker", search.tie_breaker)):
        if len(labels) > 2 and name in BINARY_METRICS:
            raise ConfigError(
                f"search.{key} {name} scores one positive class, but the data has "
                f"{len(labels)} classes ({', '.join(labels)}): use macro_f1, weighted_f1, "
                "accuracy or mcc"
            )
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, labels=list(labels), positive_label=positive),
        search=dataclasses.replace(search, metric=metric, mode=search.mode or METRIC_MODES[metric]),
        tracking=dataclasses.replace(cfg.tracking, registered_model=model_name(cfg)),
    )


def positive_label(cfg: Config, labels: list[str], needed_by: str | None) -> str | None:
    """The class precision, recall and F1 are about: the configured one, or the obvious one
    of a known pair. None for more than two classes, and for two without an obvious one when
    no score needs it (`needed_by`: the metric that does, if any): the scores are then
    macro-averaged over both classes."""
    chosen = cfg.data.positive_label
    if chosen is not None and chosen not in labels:
        raise ConfigError(
            f"data.positive_label {chosen!r} is not a label; the labels are "
            f"{', '.join(labels)}: set it to one of them"
        )
    if len(labels) > 2:
        if chosen is not None:
            raise ConfigError(
                f"data.positive_label is for two classes, and the data has {len(labels)} "
                f"({', '.join(labels)}): drop it and rank by macro_f1, weighted_f1 or mcc"
            )
        return None
    if chosen is not None:
        return chosen
    known = KNOWN_POSITIVE.get(frozenset(label.lower() for label in labels))
    if known is None and needed_by is None:
        return None
    if known is None:
        raise ConfigError(
            f"the data has two classes, {labels[0]} and {labels[1]}, and {needed_by} is about "
            f"one of them: name it, e.g. --set data.positive_label={labels[1]}, or rank by a "
            "score of both, e.g. --metric accuracy (or macro_f1, mcc)"
        )
    return next(label for label in labels if label.lower() == known)


def model_name(cfg: Config) -> str | None:
    """The registered model's name: the configured one, or `<data>-classifier`."""
    if cfg.tracking.registered_model != AUTO:
        return cfg.tracking.registered_model
    source = cfg.data.source
    stem = "spam" if source == EMBEDDED else Path(source.rstrip("/")).stem
    return f"{re.sub(r'[^0-9A-Za-z_-]+', '-', stem).strip('-') or 'text'}-classifier"
