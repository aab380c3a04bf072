"""The lines a person reads while a search runs and when it ends, without a search: the
callbacks and formatters are driven with the trial objects Tune would hand them."""

from __future__ import annotations

import io
from types import SimpleNamespace

from search.progress import ProgressPrinter
from search.selection import Ranking
from search.summary import describe_task, headline, payoff_lines, per_class_lines
from trainable.config import Config, DataConfig
from trainable.config_checks import check_config
from trainable.task import resolve


def _trial(trial_id, epochs, last_epoch=None, status="RUNNING"):
    last = {"training_iteration": last_epoch} if last_epoch else None
    config = {"learning_rate": 1e-4, "batch_size": 16, "epochs": epochs}
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=last, status=status)


def test_progress_names_the_metric_counts_outcomes_and_keeps_the_best_by_the_ranking():
    out = io.StringIO()
    printer = ProgressPrinter(3, Ranking("macro_f1", "max", "loss"), stream=out)
    a, b = _trial("a", 2, last_epoch=2), _trial("b", 3, last_epoch=1)
    for trial in (a, b):
        printer.on_trial_start(0, [], trial)
    printer.on_trial_result(0, [], a, {"training_iteration": 1, "eval_macro_f1": 0.8,
                                       "eval_loss": 0.5})  # fmt: skip
    printer.on_trial_result(0, [], b, {"training_iteration": 1, "eval_macro_f1": 0.8,
                                       "eval_loss": 0.3})  # fmt: skip
    printer.on_trial_complete(0, [], a)
    printer.on_trial_complete(0, [], b)
    text = out.getvalue()
    assert "trial 1/3 (a) started: learning_rate=1.00e-04 batch_size=16 epochs=2" in text
    assert "trial 2/3 (b) epoch 1/3: eval_macro_f1=0.8000 loss=0.3000" in text
    assert "trial 2/3 (b) stopped early after 1 epochs" in text
    # equal macro-F1: the lower loss (b) is the best so far
    last = text.strip().splitlines()[-1]
    assert "2/3 done | 0 running | 1 finished | 1 stopped early | 0 errored" in last
    assert "best eval_macro_f1=0.8000 (b)" in last


def test_a_resumed_search_counts_the_trials_that_ended_before_it_stopped():
    out = io.StringIO()
    printer = ProgressPrinter(4, Ranking("f1", "max", "loss"), stream=out)
    restored = [
        _trial("a", 2, last_epoch=2, status="TERMINATED"),
        _trial("b", 3, last_epoch=1, status="TERMINATED"),
        _trial("c", 2, status="ERROR"),
        _trial("d", 2, status="PENDING"),
    ]
    printer.on_trial_start(0, restored, restored[3])
    restored[3].last_result = {"training_iteration": 2}
    printer.on_trial_complete(0, restored, restored[3])
    text = out.getvalue()
    assert "trial 4/4 (d) started" in text
    assert "4/4 done | 0 running | 2 finished | 1 stopped early | 1 errored" in text


def test_the_task_line_says_where_the_labels_came_from_and_what_ranks():
    cfg = resolve(check_config(Config(data=DataConfig(source="topics.csv"))), ["a", "b", "c"])
    text = describe_task(cfg, {"train": 10, "validation": 3, "test": 4}, labels_given=False)
    assert text.splitlines() == [
        "data: 10 train, 3 validation, 4 test texts",
        "labels: a, b, c (3 classes, read from the data)",
        "ranking: validation macro_f1 (max), ties to the better loss",
    ]
    binary = resolve(check_config(Config()), ["ham", "spam"])
    assert "ranking: validation f1 of spam (max)" in describe_task(binary, {}, True)


def test_headline_and_per_class_table():
    scores = {"test_loss": 0.25, "test_accuracy": 0.5, "test_macro_f1": 0.4, "test_f1_a": 1.0}
    assert headline(scores, "test") == "loss=0.2500 accuracy=0.5000 macro_f1=0.4000"
    record = {
        "labels": ["a", "bb"],
        "test_per_class": {
            "a": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2},
            "bb": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1},
        },
        "confusion_matrix": {"labels": ["a", "bb"], "matrix": [[1, 1], [0, 1]]},
    }
    lines = per_class_lines(record)
    assert lines[2].split() == ["a", "1.0000", "0.5000", "0.6667", "2"]
    assert lines[-2].split() == ["a", "1", "1"] and lines[-1].split() == ["bb", "0", "1"]


def test_the_payoff_lines_say_when_a_gain_is_not_distinguishable_from_zero():
    interval = {"value": 0.95, "low": 0.9, "high": 0.99}
    record = {
        "validation_bootstrap": {
            "metric": "f1", "confidence": 0.95, "resamples": 2000, "examples": 778,
            "winner": {"trial_id": "w", **interval},
            "difference_to_winner": {"a": {}, "b": {}, "c": {}},
            "tied_with_winner": ["a", "c"],
        },
        "search_over_defaults": {
            "metric": "f1", "defaults_trial": "d", "value": 0.004, "low": -0.01, "high": 0.02,
            "distinguishable": False, "pick_is_defaults": False,
            "defaults_hyperparameters": {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3},
            "defaults_epochs_run": 3, "defaults_epochs": 3,
        },
    }  # fmt: skip
    lines = payoff_lines(record)
    assert "winner w: validation f1 0.9500 [0.9000, 0.9900]" in lines[1]
    assert "2 of 3 other trials: a, c" in lines[2]
    assert "test f1 +0.0040 [-0.0100, +0.0200]: not distinguishable from zero" in lines[3]
    assert "learning_rate=5.00e-05" in lines[3]
    record["search_over_defaults"].update(low=0.001, distinguishable=True)
    assert payoff_lines(record)[3].endswith("a real gain")
