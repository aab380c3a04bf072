"""`python -m search.report DIR`: the table and plots of a finished or interrupted search.

Writes `<output>/report/` from Tune's experiment and the Optuna study: trials.csv, trials.md and
the plots of `search.report_plots`; once a model is exported, also its scores on the test split
per class, worst first (per_class.csv, per_class.md), its most frequent confusions
(top_confusions.csv, .md) and its confusion matrix as shares of each true class
(confusion_matrix.png).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from search import report_plots as plots
from search.cli import exit_with
from search.confusion import top_confusions, worst_first
from search.layout import BEST_MODEL, REPORT_DIR, RESULT_FILE, SEARCH_FILE, STUDY_NAME
from search.optuna_search import stopped_early
from trainable.config import Config
from trainable.config_file import config_from_dict
from trainable.errors import SetupError, UserError

PER_CLASS_COLUMNS = ["label", "precision", "recall", "f1", "support"]
PER_CLASS_FILES = (
    *("per_class.csv", "per_class.md", "top_confusions.csv", "top_confusions.md"),
    *("confusion_matrix.png", "intervals.png"),
)


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]
    status: str
    curve: pd.DataFrame = field(repr=False)  # one row per epoch: training_iteration, eval_*


def best_value(values: pd.Series, mode: str) -> float:
    """The best finite value in the search's direction ("max" or "min"); NaN when none."""
    values = values.replace([np.inf, -np.inf], np.nan).dropna()
    if values.empty:
        return np.nan
    return float(values.max() if mode == "max" else values.min())


def trial_status(tune_status: str, params: dict[str, Any], curve: pd.DataFrame) -> str:
    if tune_status == "TERMINATED":
        last = curve.iloc[-1].to_dict() if len(curve) else None
        return "stopped early" if stopped_early(params, last) else "finished"
    if tune_status == "ERROR":
        return "errored"
    # A running trial is saved as PENDING: read mid-search it is running, after a crash it
    # waits for --resume.
    return "unfinished" if len(curve) else "not started"


def trials_table(
    trials: list[TrialRecord], names: tuple[str, ...], metric: str, mode: str
) -> pd.DataFrame:
    """One row per trial, in start order, a column per hyperparameter in `names`. `metric`
    ("macro_f1"; "eval_macro_f1" is read the same) names the final_ and best_ columns; its best
    is taken in the direction `mode`."""
    name = metric.removeprefix("eval_")
    final, best = f"final_{name}", f"best_{name}"
    columns = ["trial", *names, "epochs_run", "status", final, best]
    columns = list(dict.fromkeys([*columns, "best_loss", "wall_time_s"]))  # metric "loss"
    rows, none = [], pd.Series(dtype=float)
    for t in trials:
        scores = t.curve.get(f"eval_{name}", none).dropna()
        wall = t.curve.get("time_total_s", none).dropna()
        row = {"trial": t.trial_id, **t.params, "epochs_run": len(t.curve), "status": t.status}
        row["best_loss"] = best_value(t.curve.get("eval_loss", none), "min")
        row[final] = float(scores.iloc[-1]) if len(scores) else np.nan
        row[best] = best_value(scores, mode)  # after best_loss: a loss-ranked search's mode wins
        row["wall_time_s"] = float(wall.iloc[-1]) if len(wall) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def with_intervals(frame: pd.DataFrame, boot: dict[str, Any]) -> pd.DataFrame:
    """The trials table with each trial's validation interval (at its best epoch), its
    difference to the winner, and whether it ties with the winner."""
    scores = {boot["winner"]["trial_id"]: boot["winner"], **boot["others"]}
    differences = boot["difference_to_winner"]

    def bounds(trial_id: str, table: dict) -> str:
        s = table.get(trial_id)
        return f"[{s['low']:.4f}, {s['high']:.4f}]" if s else "-"

    def tie(trial_id: str) -> str:
        if trial_id == boot["winner"]["trial_id"]:
            return "winner"
        return "" if trial_id not in differences else (
            "tied" if trial_id in boot["tied_with_winner"] else "no")  # fmt: skip

    frame = frame.copy()
    frame["interval"] = [bounds(t, scores) for t in frame["trial"]]
    frame["vs_winner"] = [bounds(t, differences) for t in frame["trial"]]
    frame["tied_with_winner"] = [tie(t) for t in frame["trial"]]
    return frame


def per_class_table(record: dict[str, Any]) -> pd.DataFrame:
    """The exported model's precision, recall, f1 and support on test, one row per label,
    the lowest F1 first."""
    scores = record["test_per_class"]
    rows = [
        [label, *(scores[label][k] for k in PER_CLASS_COLUMNS[1:])] for label in worst_first(scores)
    ]
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def confusions_table(record: dict[str, Any]) -> pd.DataFrame:
    """The exported model's most frequent errors on test: true, predicted, count, share."""
    matrix = record["confusion_matrix"]
    rows = top_confusions(matrix["matrix"], matrix["labels"])
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share_of_true"])


def markdown(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    """A Markdown table; `formats` maps a column to a format string, the rest print as is."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = [
            str(v) if c not in formats else "-" if pd.isna(v) else formats[c].format(v)
            for c, v in zip(frame.columns, row, strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(cfg: Config, search_name: str, record: dict[str, Any] | None) -> Path:
    """Writes `<output>/report/` from the search's trials and Optuna study, and from the
    exported model's record (None when no model was exported); returns the folder."""
    return render(cfg, load_trials(cfg, search_name), load_study(cfg), record)


def render(
    cfg: Config,
    trials: list[TrialRecord],
    study: optuna.Study | None,
    record: dict[str, Any] | None,
) -> Path:
    """`write_report` once the trials and the study are read."""
    name, mode = cfg.search.metric.removeprefix("eval_"), cfg.search.mode
    report = cfg.output_dir / REPORT_DIR
    report.mkdir(parents=True, exist_ok=True)
    frame = trials_table(trials, cfg.space.names, name, mode)
    boot = (record or {}).get("validation_bootstrap")
    if boot:
        frame = with_intervals(frame, boot)
    frame.to_csv(report / "trials.csv", index=False)
    formats = {c: "{:.4f}" for c in frame.columns if c.startswith(("final_", "best_"))}
    formats |= {
        n: d.table_format for n, d in cfg.space.dimensions.items() if frame[n].dtype.kind == "f"
    }
    (report / "trials.md").write_text(markdown(frame, formats | {"wall_time_s": "{:.0f}"}) + "\n")
    plots.plot_history(frame, name, mode, report / "history.png")
    plots.plot_hyperparameters(frame, cfg.space.names, name, report / "hyperparameters.png")
    # The study holds the metric alone, as Tune ranked it (search.tuner).
    plots.plot_learning_curves(study, f"validation {name}", report / "learning_curves.png")
    plots.plot_importance(study, f"validation {name}", report / "importance.png")
    for stale in PER_CLASS_FILES:  # from an earlier report of this folder
        (report / stale).unlink(missing_ok=True)
    if record and record.get("test_per_class"):
        table = per_class_table(record)
        table.to_csv(report / "per_class.csv", index=False)
        scores = {c: "{:.4f}" for c in ("precision", "recall", "f1")}
        (report / "per_class.md").write_text(markdown(table, scores) + "\n")
    if record and record.get("confusion_matrix"):
        plots.plot_confusion_matrix(record, report / "confusion_matrix.png")
        confusions = confusions_table(record)
        confusions.to_csv(report / "top_confusions.csv", index=False)
        (report / "top_confusions.md").write_text(
            markdown(confusions, {"share_of_true": "{:.4f}"}) + "\n"
        )
    if boot:
        plots.plot_intervals(boot, report / "intervals.png")
    return report


def load_trials(cfg: Config, search_name: str) -> list[TrialRecord]:
    """The search's trials, in the order they started."""
    from ray.tune import ExperimentAnalysis

    path = cfg.experiment_path(search_name)
    try:
        analysis = ExperimentAnalysis(path)
    except ValueError:
        raise SetupError(f"{path} holds no Tune experiment: was the search started?") from None
    frames = analysis.trial_dataframes
    trials = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id, pd.DataFrame())
        keep = ("training_iteration", "time_total_s")
        curve = frame[[c for c in frame.columns if c in keep or c.startswith("eval_")]]
        params = {k: trial.config.get(k) for k in cfg.space.names}
        status = trial_status(trial.status, params, curve)
        trials.append(TrialRecord(trial.trial_id, params, status, curve))
    return trials


def load_study(cfg: Config) -> optuna.Study | None:
    """The search's Optuna study; None when the search stopped before creating it."""
    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=cfg.optuna_uri)
    except KeyError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.report", description="Redraw the report of a search."
    )
    parser.add_argument("output", help="the search's --output folder")
    output = Path(parser.parse_args(argv).output).expanduser().resolve()
    try:
        if not (output / SEARCH_FILE).is_file():
            raise SetupError(
                f"{output} holds no search (no {SEARCH_FILE}): pass a search's --output"
            )
        search = json.loads((output / SEARCH_FILE).read_text())
        # The folder may have moved since the search: it, not the saved path, is the output.
        cfg = config_from_dict(search["config"], {"output": str(output)})
        result = output / BEST_MODEL / RESULT_FILE
        record = json.loads(result.read_text()) if result.is_file() else None
        report = write_report(cfg, search["name"], record)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    exit_with(main())
