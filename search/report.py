"""`python -m search.report DIR`: the table and plots of a finished or interrupted search.

Reads what the search left in its output folder (Tune's experiment and the Optuna study) and
writes `<DIR>/report/`: trials.csv, trials.md and four PNG plots.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from search.layout import REPORT_DIR, SEARCH_FILE  # noqa: E402
from trainable.errors import SetupError, UserError  # noqa: E402

COLUMNS = [
    "trial", "learning_rate", "batch_size", "epochs", "epochs_run", "status",
    "final_f1", "best_f1", "best_loss", "wall_time_s",
]  # fmt: skip


@dataclass
class TrialRecord:
    trial_id: str
    params: dict
    status: str
    curve: pd.DataFrame = field(repr=False)  # one row per epoch: training_iteration, eval_*

    @property
    def epochs_run(self) -> int:
        return len(self.curve)


def load_trials(output: Path) -> tuple[list[TrialRecord], dict]:
    """The search's trials, in the order they started, and its search.json."""
    from ray.tune import ExperimentAnalysis

    marker = output / SEARCH_FILE
    if not marker.is_file():
        raise SetupError(f"{output} holds no search (no search.json): pass a search's --output")
    search = json.loads(marker.read_text())
    config = search["config"]
    storage = config.get("storage") or str(output / "ray_results")
    analysis = ExperimentAnalysis(f"{storage.rstrip('/')}/{search['name']}")
    frames = analysis.trial_dataframes
    trials = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id, pd.DataFrame())
        keep = ("training_iteration", "time_total_s")
        curve = frame[[c for c in frame.columns if c in keep or c.startswith("eval_")]]
        params = {k: trial.config[k] for k in ("learning_rate", "batch_size", "epochs")}
        trials.append(
            TrialRecord(trial.trial_id, params, _status(trial.status, params, curve), curve)
        )
    return trials, search


def _status(tune_status: str, params: dict, curve: pd.DataFrame) -> str:
    if tune_status == "TERMINATED":
        return "stopped early" if len(curve) < params["epochs"] else "finished"
    if tune_status == "ERROR":
        return "errored"
    # A running trial is saved as PENDING: read mid-search it is running, after a crash it
    # waits for --resume.
    return "unfinished" if len(curve) else "not started"


def table(trials: list[TrialRecord], metric: str = "eval_f1") -> pd.DataFrame:
    rows = []
    for t in trials:
        scores = t.curve.get(metric, pd.Series(dtype=float))
        losses = t.curve.get("eval_loss", pd.Series(dtype=float))
        wall = t.curve.get("time_total_s")
        rows.append(
            {
                "trial": t.trial_id,
                **t.params,
                "epochs_run": t.epochs_run,
                "status": t.status,
                "final_f1": scores.iloc[-1] if len(scores) else math.nan,
                "best_f1": scores.max() if len(scores) else math.nan,
                "best_loss": losses.min() if len(losses) else math.nan,
                "wall_time_s": wall.iloc[-1] if wall is not None and len(wall) else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def write_report(output: Path) -> Path:
    trials, search = load_trials(output)
    metric = search["config"]["search"]["metric"]
    report = output / REPORT_DIR
    report.mkdir(parents=True, exist_ok=True)
    frame = table(trials, metric)
    frame.to_csv(report / "trials.csv", index=False)
    (report / "trials.md").write_text(_markdown(frame) + "\n")
    plot_history(frame, report / "history.png")
    plot_hyperparameters(frame, report / "hyperparameters.png")
    plot_learning_curves(trials, metric, report / "learning_curves.png")
    plot_importance(output / "optuna.db", report / "importance.png")
    return report


def _markdown(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    shown["learning_rate"] = shown["learning_rate"].map("{:.2e}".format)
    for column in ("final_f1", "best_f1", "best_loss"):
        shown[column] = shown[column].map("{:.4f}".format)
    shown["wall_time_s"] = shown["wall_time_s"].map("{:.0f}".format)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += [
        "| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    return "\n".join(lines)


def plot_history(frame: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    order = range(1, len(frame) + 1)
    for status, marker in (("finished", "o"), ("stopped early", "v"), ("errored", "x")):
        mask = frame["status"] == status
        ax.scatter([o for o, m in zip(order, mask, strict=True) if m], frame["best_f1"][mask],
                   marker=marker, label=status)  # fmt: skip
    ax.plot(list(order), frame["best_f1"].cummax(), color="black", lw=1, label="best so far")
    ax.set(xlabel="trial (in start order)", ylabel="best validation F1 of the trial",
           title="Optimisation history")  # fmt: skip
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_hyperparameters(frame: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True, layout="constrained")
    for ax, name in zip(axes, ("learning_rate", "batch_size", "epochs"), strict=True):
        points = ax.scatter(frame[name], frame["best_f1"], c=frame["epochs_run"], cmap="viridis")
        ax.set_xlabel(name.replace("_", " "))
        if name == "learning_rate":
            ax.set_xscale("log")
        else:
            ax.set_xticks(sorted(frame[name].unique()))
    axes[0].set_ylabel("best validation F1")
    fig.colorbar(points, ax=axes, label="epochs run", ticks=sorted(frame["epochs_run"].unique()))
    fig.suptitle("Best validation F1 of each trial against its hyperparameters")
    _save(fig, path)


def plot_learning_curves(trials: list[TrialRecord], metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for t in trials:
        if metric not in t.curve or t.curve.empty:
            continue
        style = "--" if t.status == "stopped early" else "-"
        ax.plot(t.curve["training_iteration"], t.curve[metric], style, marker=".", alpha=0.8)
    ax.plot([], [], "k-", label="ran all its epochs")
    ax.plot([], [], "k--", label="stopped early (ASHA)")
    ax.set(xlabel="epoch", ylabel=f"validation {metric.removeprefix('eval_')}",
           title="Learning curves, one line per trial")  # fmt: skip
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_importance(storage: Path, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    importances = {}
    if storage.is_file():
        study = optuna.load_study(study_name="search", storage=f"sqlite:///{storage}")
        finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(finished) >= 2:
            try:
                importances = optuna.importance.get_param_importances(study)
            except (RuntimeError, ValueError):
                importances = {}
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names])
        ax.set(
            xlabel=f"importance (fANOVA on the {len(finished)} trials that ran all their epochs)",
            title="Hyperparameter importance",
        )
    else:
        ax.text(0.5, 0.5, "too few finished trials to rank hyperparameters", ha="center")
        ax.set_axis_off()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    if not fig.get_layout_engine():
        fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.report", description="Redraw the report of a search."
    )
    parser.add_argument("output", help="the search's --output folder")
    args = parser.parse_args(argv)
    try:
        report = write_report(Path(args.output).expanduser().resolve())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
