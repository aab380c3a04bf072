"""The report from trial records, an exported model's record and a small Optuna study: no Ray."""

from __future__ import annotations

import warnings

import matplotlib
import optuna
import pandas as pd
import pytest

from search import report
from search.layout import REPORT_DIR, SEARCH_FILE, STUDY_NAME
from search.report import TrialRecord, best_value, per_class_table, trial_status, trials_table
from search.report_plots import plot_confusion_matrix, plot_importance, plot_learning_curves
from trainable.config_file import config_from_dict
from trainable.hyperparameters import SpaceConfig

LABELS = ["food", "sports", "tech"]
RECORD = {
    "trial_id": "abc_00001",
    "metric": "eval_macro_f1",
    "mode": "max",
    "labels": LABELS,
    "positive_label": None,
    "test_metrics": {"test_loss": 0.41, "test_accuracy": 0.921, "test_macro_f1": 0.918},
    "test_per_class": {
        "food": {"precision": 0.9032, "recall": 0.9333, "f1": 0.918, "support": 30},
        "sports": {"precision": 0.9677, "recall": 0.9375, "f1": 0.9524, "support": 32},
        "tech": {"precision": 0.8929, "recall": 0.8929, "f1": 0.8929, "support": 28},
    },
    "confusion_matrix": {"labels": LABELS, "matrix": [[28, 1, 1], [0, 30, 2], [3, 0, 25]]},
}


NAMES = SpaceConfig().names


def curve(scores: list[float], losses: list[float] | None = None) -> pd.DataFrame:
    """A trial's per-epoch results as Tune records them."""
    epochs = range(1, len(scores) + 1)
    return pd.DataFrame(
        {
            "training_iteration": list(epochs),
            "time_total_s": [10.0 * e for e in epochs],
            "eval_macro_f1": scores,
            "eval_loss": losses or [1.0 / e for e in epochs],
        }
    )


def trial(trial_id: str, scores: list[float], epochs: int, **kwargs) -> TrialRecord:
    params = {"learning_rate": 5e-5, "batch_size": 8, "epochs": epochs}
    frame = curve(scores, **kwargs)
    return TrialRecord(trial_id, params, trial_status("TERMINATED", params, frame), frame)


def png(path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000, path
    return data


def test_the_table_names_its_columns_after_the_metric():
    frame = trials_table([trial("a", [0.5, 0.7], 2)], NAMES, "macro_f1", "max")
    assert list(frame.columns) == ["trial", *NAMES, "epochs_run", "status", "final_macro_f1",
                                   "best_macro_f1", "best_loss", "wall_time_s"]  # fmt: skip
    assert frame.equals(trials_table([trial("a", [0.5, 0.7], 2)], NAMES, "eval_macro_f1", "max"))
    assert not any("f1" in c for c in trials_table([], NAMES, "mcc", "max").columns)


def test_the_best_of_a_trial_follows_the_mode():
    trials = [trial("a", [0.5, 0.8, 0.6], 3), trial("b", [0.4, 0.3], 2)]
    high, low = (
        trials_table(trials, NAMES, "macro_f1", "max"),
        trials_table(trials, NAMES, "macro_f1", "min"),
    )
    assert list(high["best_macro_f1"]) == [0.8, 0.4]
    assert list(low["best_macro_f1"]) == [0.5, 0.3]
    assert list(high["final_macro_f1"]) == list(low["final_macro_f1"]) == [0.6, 0.3]


def test_a_loss_ranked_search_takes_the_lowest_loss_once():
    trials = [trial("a", [0.5, 0.6, 0.7], 3, losses=[0.9, 0.2, 0.4])]
    frame = trials_table(trials, NAMES, "loss", "min")
    assert list(frame.columns).count("best_loss") == 1
    assert frame.loc[0, "best_loss"] == 0.2 and frame.loc[0, "final_loss"] == 0.4


def test_best_value_skips_what_is_not_a_score():
    values = pd.Series([float("nan"), 0.3, float("inf"), 0.1])
    assert best_value(values, "max") == 0.3 and best_value(values, "min") == 0.1
    assert pd.isna(best_value(pd.Series(dtype=float), "max"))


def test_status_follows_the_epochs_the_trial_ran():
    params = {"learning_rate": 1e-4, "batch_size": 8, "epochs": 3}
    assert trial_status("TERMINATED", params, curve([0.5, 0.6])) == "stopped early"
    assert trial_status("TERMINATED", params, curve([0.5, 0.6, 0.7])) == "finished"
    assert trial_status("ERROR", params, curve([0.5])) == "errored"
    assert trial_status("PENDING", params, curve([0.5])) == "unfinished"
    assert trial_status("PENDING", params, curve([])) == "not started"


def test_per_class_table_holds_the_records_scores_worst_first():
    table = per_class_table(RECORD)
    assert list(table["label"]) == ["tech", "food", "sports"]
    for row in table.to_dict("records"):
        assert {k: row[k] for k in ("precision", "recall", "f1", "support")} == (
            RECORD["test_per_class"][row["label"]]
        )


def small_study(cfg, direction: str = "maximize") -> optuna.Study:
    """Four trials as the search records them: two COMPLETE, two PRUNED after one epoch."""
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=cfg.optuna_uri,
        direction=direction,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    space = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 3e-4, log=True),
        "batch_size": optuna.distributions.CategoricalDistribution([8, 16, 32]),
        "epochs": optuna.distributions.CategoricalDistribution([2, 3]),
    }
    for number, scores in enumerate([[0.6, 0.8], [0.5], [0.7, 0.75], [0.4]]):
        t = study.ask(space)
        for step, score in enumerate(scores, start=1):
            t.report(score + number / 100, step)
        if len(scores) > 1:
            study.tell(t, scores[-1] + number / 100)
        else:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
    return study


@pytest.fixture
def cfg(tmp_path):
    overrides = {"output": str(tmp_path), "data.labels": LABELS}
    return config_from_dict({}, overrides | {"search.metric": "macro_f1", "search.mode": "max"})


def test_the_study_plots_stay_quiet_and_leave_the_style_alone(cfg, tmp_path):
    study = small_study(cfg)
    style = dict(matplotlib.rcParams)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_learning_curves(study, "validation macro_f1", tmp_path / "curves.png")
        plot_importance(study, "validation macro_f1", tmp_path / "importance.png")
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    assert dict(matplotlib.rcParams) == style  # Optuna's ggplot style did not leak
    png(tmp_path / "curves.png")
    png(tmp_path / "importance.png")


@pytest.mark.parametrize("labels", [LABELS, ["ham", "spam"], [f"topic {i}" for i in range(8)]])
def test_the_confusion_matrix_is_drawn_for_any_number_of_classes(labels, tmp_path):
    matrix = [[10 if i == j else i + j for j in range(len(labels))] for i in range(len(labels))]
    record = {"trial_id": "t", "confusion_matrix": {"labels": labels, "matrix": matrix}}
    plot_confusion_matrix(record, tmp_path / "matrix.png")
    png(tmp_path / "matrix.png")


def test_the_report_adds_the_exported_models_scores(cfg):
    trials = [trial("a_00000", [0.6, 0.8], 2), trial("a_00001", [0.5], 3)]
    small_study(cfg)
    folder = report.render(cfg, trials, report.load_study(cfg), RECORD)
    assert folder == cfg.output_dir / REPORT_DIR
    frame = pd.read_csv(folder / "trials.csv")
    assert list(frame["status"]) == ["finished", "stopped early"]
    assert list(frame["best_macro_f1"]) == [0.8, 0.5]
    assert len((folder / "trials.md").read_text().splitlines()) == 2 + len(trials)
    for name in ("history", "hyperparameters", "learning_curves", "importance"):
        png(folder / f"{name}.png")
    per_class = pd.read_csv(folder / "per_class.csv").set_index("label")
    assert list(per_class.index) == ["tech", "food", "sports"]  # lowest F1 first
    for label, scores in RECORD["test_per_class"].items():
        assert per_class.loc[label].to_dict() == pytest.approx(scores)
    assert "| sports | 0.9677 | 0.9375 | 0.9524 | 32 |" in (folder / "per_class.md").read_text()
    png(folder / "confusion_matrix.png")
    confusions = pd.read_csv(folder / "top_confusions.csv")
    assert confusions.to_dict("records")[:2] == [
        {"true": "tech", "predicted": "food", "count": 3, "share_of_true": pytest.approx(0.1071)},
        {"true": "sports", "predicted": "tech", "count": 2, "share_of_true": 0.0625},
    ]
    assert len(confusions) == 4  # every cell off the diagonal that holds an error
    assert "| tech | food | 3 | 0.1071 |" in (folder / "top_confusions.md").read_text()

    report.render(cfg, trials, None, None)  # no model exported: no stale model scores
    assert not (folder / "per_class.csv").exists()
    assert not (folder / "top_confusions.csv").exists()
    assert not (folder / "confusion_matrix.png").exists()


def test_the_command_refuses_a_folder_without_a_search(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and SEARCH_FILE in err and err.count("\n") == 1
