"""The report's plots, each written to a PNG file.

Optuna draws what its study holds: the learning curves (every epoch of every trial) and the
hyperparameter importance. The history and the hyperparameter plot stay our own: the study
keeps a final value for COMPLETE trials only, so the trials ASHA stopped, often most of them,
would be missing from Optuna's history and slice plots.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from search.confusion import shares  # noqa: E402

STATUS_MARKERS = {"finished": "o", "stopped early": "v", "errored": "x", "unfinished": "s"}


def plot_history(frame: pd.DataFrame, name: str, mode: str, path: Path) -> None:
    """Each trial's best validation `name` in start order, and the best so far in `mode`."""
    fig, ax = plt.subplots(figsize=(7, 4))
    order, best = np.arange(1, len(frame) + 1), frame[f"best_{name}"]
    for status, marker in STATUS_MARKERS.items():
        mask = (frame["status"] == status).to_numpy()
        if mask.any():
            ax.scatter(order[mask], best[mask], marker=marker, label=status)
    so_far = (best.cummax() if mode == "max" else best.cummin()).ffill()
    ax.plot(order, so_far, color="black", lw=1, label=f"best so far ({mode})")
    ax.set(
        xlabel="trial (in start order)",
        ylabel=f"best validation {name} of the trial",
        title=f"Optimisation history: validation {name}",
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best")
    _save(fig, path)


def plot_hyperparameters(frame: pd.DataFrame, names: tuple[str, ...], name: str, path: Path):
    """Each trial's best validation `name` against each hyperparameter in `names`, coloured by
    the epochs it ran, so that a stopped trial's score is not read as what its sampled epochs
    give."""
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.3 * len(names), 3.8), sharey=True, layout="constrained"
    )
    axes = np.atleast_1d(axes)
    for ax, param in zip(axes, names, strict=True):
        values = frame[param]
        points = ax.scatter(values, frame[f"best_{name}"], c=frame["epochs_run"], cmap="viridis")
        ax.set_xlabel(param.replace("_", " "))
        # A continuous dimension spanning a decade or more is sampled, and read, on a log scale.
        if values.dtype.kind == "f" and values.min() > 0 and values.max() >= 10 * values.min():
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # they overlap within a decade
        elif len(values):
            ax.set_xticks(sorted(values.unique()))
    axes[0].set_ylabel(f"best validation {name}")
    fig.colorbar(points, ax=axes, label="epochs run", ticks=sorted(frame["epochs_run"].unique()))
    fig.suptitle(f"Best validation {name} of each trial against its hyperparameters")
    _save(fig, path)


def plot_learning_curves(study: optuna.Study | None, target: str, path: Path) -> None:
    """Optuna's intermediate values: one line per trial, those ASHA stopped dashed."""
    if study is None:
        return _placeholder(path, "no Optuna study to draw learning curves from")
    pruned = {f"Trial{t.number}" for t in study.trials if t.state == TrialState.PRUNED}
    with _optuna_plot():
        ax = optuna.visualization.matplotlib.plot_intermediate_values(study)
        for line in ax.get_lines():
            line.set_linestyle("--" if line.get_label() in pruned else "-")
        title = "Learning curves, one line per trial (dashed: stopped early by ASHA)"
        ax.set(xlabel="epoch", ylabel=target, title=title)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.figure.set_size_inches(8, 4.5)
        _save(ax.figure, path)


def plot_importance(study: optuna.Study | None, target: str, path: Path) -> None:
    """Optuna's hyperparameter importance, from the trials that ran all their epochs."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if study else []
    if len(complete) < 2:
        return _placeholder(path, "too few trials ran all their epochs to rank hyperparameters")
    with _optuna_plot():
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(study, target_name=target)
        except (RuntimeError, ValueError) as exc:
            return _placeholder(path, f"hyperparameters could not be ranked: {exc}")
        if ax.get_legend():
            ax.get_legend().remove()  # one bar per hyperparameter: the axis names the target
        title = f"Hyperparameter importance ({len(complete)} trials that ran all epochs)"
        ax.set_title(title, loc="left")  # replaces Optuna's, which is on the left
        ax.set_xlabel(f"importance for {target}")
        ax.figure.set_size_inches(7, 3.5)
        _save(ax.figure, path)


TOP_TRIALS_DRAWN = 12


def plot_intervals(boot: dict[str, Any], path: Path) -> None:
    """The top trials' validation scores with their bootstrap intervals: the winner, the
    trials tied with it (their difference to it contains 0) and the rest."""
    winner = boot["winner"]
    rows = [(winner["trial_id"], winner, "winner")] + [
        (trial_id, scores, "tied" if trial_id in boot["tied_with_winner"] else "not tied")
        for trial_id, scores in boot["others"].items()
    ]
    rows = sorted(rows, key=lambda row: row[1]["value"], reverse=True)[:TOP_TRIALS_DRAWN]
    colors = {"winner": "C3", "tied": "C0", "not tied": "0.6"}
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5))
    for y, (_, scores, kind) in enumerate(rows):
        ax.errorbar(
            scores["value"], y,
            xerr=[[scores["value"] - scores["low"]], [scores["high"] - scores["value"]]],
            fmt="o", color=colors[kind], capsize=3,
            label=kind if kind not in ax.get_legend_handles_labels()[1] else None,
        )  # fmt: skip
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.invert_yaxis()
    ax.axvline(winner["value"], color=colors["winner"], lw=0.8, ls=":")
    ax.legend(loc="best", fontsize="small")
    ax.set(
        xlabel=f"validation {boot['metric']} ({boot['confidence']:.0%} bootstrap interval)",
        title=f"Top trials: tied = difference to the winner contains 0 ({boot['examples']} texts)",
    )
    _save(fig, path)


def plot_confusion_matrix(record: dict[str, Any], path: Path) -> None:
    """The exported model on test: rows the true class, columns the predicted one, each cell
    coloured by its share of the true class, its count written where it fits the cell."""
    labels = record["confusion_matrix"]["labels"]
    counts = np.asarray(record["confusion_matrix"]["matrix"], dtype=int)
    n, rates = len(labels), shares(counts)
    cell = min(0.8, max(0.24, 9 / n))  # inches: 12 inches of matrix at 50 classes
    font = min(10.0, cell * 72 * 0.45)  # points: a label fits its row
    margin = max(len(label) for label in labels) * font * 0.6 / 72 + 1.0
    side = cell * n + margin
    fig, ax = plt.subplots(figsize=(max(7.0, side + 1.5), side + 1.0), layout="constrained")
    # A square root stretches the small shares: one error in a hundred is visibly blue.
    image = ax.imshow(rates, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1))
    digits = len(str(counts.max()))
    count_font = min(font, cell * 72 * 0.85 / (0.62 * digits))
    if count_font >= 4.5:
        for (i, j), count in np.ndenumerate(counts):
            if count:
                color = "white" if rates[i, j] > 0.4 else "black"
                ax.text(j, i, count, ha="center", va="center", fontsize=count_font, color=color)
    ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    fig.colorbar(image, ax=ax, shrink=min(0.8, 6 / (cell * n)), label="share of the true class")
    trial = f" (trial {record['trial_id']})" if record.get("trial_id") else ""
    ax.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"Confusion matrix of the exported model{trial} on the test split\n"
        "colour: share of the true class (row); numbers: counts",
    )
    _save(fig, path)


@contextmanager
def _optuna_plot() -> Iterator[None]:
    """Optuna's plots switch matplotlib to its ggplot style for good and warn that they are
    experimental (and, for importance, when every trial scores the same): all of it stays
    inside the plot drawn, relabelled and saved here."""
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Importance over trials that all score the same: the plot shows equal bars already.
        warnings.filterwarnings("ignore", message="Target and region quantiles select the same")
        yield


def _placeholder(path: Path, text: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    if not fig.get_layout_engine():
        fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
