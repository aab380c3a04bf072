"""The task resolved from the data: labels, positive class, metric, mode and model name."""

from __future__ import annotations

import pytest

from trainable.config import Config, DataConfig, SearchConfig, TrackingConfig
from trainable.config_checks import check_config
from trainable.errors import ConfigError
from trainable.metrics import ClassificationMetrics
from trainable.task import resolve


def _cfg(**sections) -> Config:
    return check_config(Config(**sections))


def test_two_classes_rank_by_f1_of_the_known_positive_class_whatever_its_id():
    cfg = resolve(_cfg(), ["spam", "ham"])
    assert cfg.data.positive_label == "spam"
    assert (cfg.search.metric, cfg.search.mode) == ("f1", "max")
    assert cfg.tracking.registered_model == "spam-classifier"
    assert resolve(_cfg(), ["0", "1"]).data.positive_label == "1"
    assert resolve(_cfg(), ["Negative", "Positive"]).data.positive_label == "Positive"


def test_more_classes_rank_by_macro_f1_and_the_model_is_named_after_the_data():
    cfg = resolve(_cfg(data=DataConfig(source="data/three.csv")), ["food", "sports", "tech"])
    assert cfg.data.labels == ["food", "sports", "tech"]
    assert cfg.data.positive_label is None
    assert (cfg.search.metric, cfg.search.mode) == ("macro_f1", "max")
    assert cfg.tracking.registered_model == "three-classifier"


def test_two_classes_without_an_obvious_positive_one_need_none_for_a_score_of_both():
    cfg = resolve(_cfg(search=SearchConfig(metric="accuracy")), ["fresh", "rotten"])
    assert (cfg.data.positive_label, cfg.search.metric) == (None, "accuracy")
    scores = ClassificationMetrics(cfg.data.labels).scores([0, 1, 1, 1], [0, 0, 1, 1])
    assert "f1" not in scores and scores["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    with pytest.raises(ConfigError, match="f1 is about one of them.*--metric accuracy"):
        resolve(_cfg(search=SearchConfig(metric="accuracy", tie_breaker="f1")), ["a", "b"])


def test_the_mode_follows_the_metric_unless_set():
    assert resolve(_cfg(search=SearchConfig(metric="loss")), ["a", "b", "c"]).search.mode == "min"
    explicit = _cfg(search=SearchConfig(metric="mcc", mode="min"))
    assert resolve(explicit, ["a", "b", "c"]).search.mode == "min"


def test_a_configured_positive_label_and_model_name_are_kept():
    cfg = _cfg(
        data=DataConfig(positive_label="bad"), tracking=TrackingConfig(registered_model=None)
    )
    resolved = resolve(cfg, ["bad", "good"])
    assert resolved.data.positive_label == "bad"
    assert resolved.tracking.registered_model is None


@pytest.mark.parametrize(
    ("cfg", "labels", "message"),
    [
        (_cfg(search=SearchConfig(metric="f1")), ["a", "b", "c"], "use macro_f1"),
        (_cfg(data=DataConfig(positive_label="x")), ["a", "b"], "not a label"),
        (_cfg(data=DataConfig(positive_label="a")), ["a", "b", "c"], "is for two classes"),
        (_cfg(), ["cat", "dog"], "data.positive_label=dog"),
        (_cfg(), ["a b", "a_b"], "differ only in signs"),
    ],
)
def test_a_task_the_config_does_not_fit_is_refused_with_the_fix(cfg, labels, message):
    from trainable.errors import UserError

    with pytest.raises(UserError, match=message):
        resolve(cfg, labels)


def test_unknown_metric_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="use one of f1, macro_f1"):
        _cfg(search=SearchConfig(metric="auc"))
