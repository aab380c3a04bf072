"""The GPU benchmark's numbers per contender, and its markdown with the verdicts of
`benchmarks.gpu.targets` (pure: plain records in, the same text out; no GPU, no Ray, no disk).

A contender's record (what `benchmarks.gpu.search` gathers): `started`, `ended` (Unix times),
`cut_at` (when the benchmark stopped it at its share of the time budget; None if it ended on
its own), `returncode`, `trials_asked`, `best_val_f1`, `test_f1`, `hyperparameters`, `problems`
and `trials`, one row per trial: `start` and `end` (Unix times), `time_train_s` and `time_eval_s`
(inside training steps and evaluation, trainable.callbacks.WorkCallback), `epochs_run`,
optionally `last_report`, `loop_started_at`, `training_started_at` and `gpu_peak_gib`.
GPU samples: (Unix time, busy percent, memory used in GiB), about one a second.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.gpu.targets import score_text, verdicts
from benchmarks.summary import overheads
from benchmarks.tables import overhead_lines

Sample = tuple[float, float, float]

SEARCHES = ("packed", "single")  # the contenders that are finetune-hpo searches


def in_window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s[0] <= end]


def busy_fraction(samples: list[Sample], start: float, end: float) -> float | None:
    """The share of the window in which the GPU ran a kernel: NVML's busy percent averaged over
    the samples taken then. None without samples: unknown, not idle."""
    taken = in_window(samples, start, end)
    return statistics.mean(s[1] for s in taken) / 100 if taken else None


def memory_used_max(samples: list[Sample], start: float, end: float) -> float | None:
    taken = in_window(samples, start, end)
    return max(s[2] for s in taken) if taken else None


def ended_trials(trials: list[dict], cut_at: float | None) -> list[dict]:
    """The trials that ended, by start: those with an end, before the cut where there was one
    (a trial running when its contender was stopped did not end, whatever its records say)."""
    ended = [t for t in trials if "end" in t and (cut_at is None or t["end"] <= cut_at)]
    return sorted(ended, key=lambda t: t["start"])


def trials_per_gpu_hour(ended: list[dict], gpus: int = 1) -> float | None:
    """Trials ended per GPU-hour over the trial phase, from the first trial's start to the last
    one's end: the same measure for a contender that ran its trials and one stopped midway.
    The one-off start (Ray, imports, data) and finish (export, report) are in the wall time."""
    if not ended:
        return None
    span = max(t["end"] for t in ended) - min(t["start"] for t in ended)
    return len(ended) / span * 3600 / gpus if span > 0 else None


def trial_peaks(trials: list[dict]) -> dict[str, float] | None:
    """Median and largest of the trials' peak GPU memory (torch.cuda.max_memory_reserved)."""
    peaks = [t["gpu_peak_gib"] for t in trials if t.get("gpu_peak_gib") is not None]
    return {"median": statistics.median(peaks), "max": max(peaks)} if peaks else None


def contender_row(record: dict[str, Any], samples: list[Sample]) -> dict[str, Any]:
    trials = record.get("trials") or []
    cut_at = record.get("cut_at")
    ended = ended_trials(trials, cut_at)
    end = cut_at if cut_at is not None else record["ended"]
    wall = end - record["started"]
    rate = trials_per_gpu_hour(ended)
    return {
        "wall_s": wall,
        "cut": cut_at is not None,
        "returncode": record.get("returncode"),
        "trials_asked": record["trials_asked"],
        "trials_started": len(trials),
        "trials_run": len(ended),
        "epochs_run": sum(t.get("epochs_run", 0) for t in ended),
        "trials_per_gpu_hour": rate,
        # At that rate, the time the trials asked for would take (a contender cut short).
        "projected_trials_s": record["trials_asked"] / rate * 3600 if rate else None,
        **overheads(ended),
        "gpu_busy": busy_fraction(samples, record["started"], end),
        "gpu_samples": len(in_window(samples, record["started"], end)),
        "gpu_memory_used_max_gib": memory_used_max(samples, record["started"], end),
        "trial_peak_gib": trial_peaks(ended or trials),
        "best_val_f1": record.get("best_val_f1"),
        "test_f1": record.get("test_f1"),
        "hyperparameters": record.get("hyperparameters"),
        "gpu_sharing": record.get("gpu_sharing"),
        "concurrency": record.get("concurrency"),
        "problems": list(record.get("problems") or []),
    }


def summarize(
    facts: dict[str, Any],
    records: dict[str, dict],
    samples: list[Sample],
) -> dict[str, Any]:
    """`facts`: what the run was (GPU, date, settings, labels, notes); `records`: by contender,
    in the order they ran."""
    rows = {name: contender_row(record, samples) for name, record in records.items()}
    return {**facts, "rows": rows, "verdicts": verdicts(rows)}


def markdown(summary: dict[str, Any]) -> str:
    rows, labels = summary["rows"], summary["labels"]
    lines = [
        f"{summary['gpu']}, {summary['date']}; {summary['setup']}.",
        "",
        "| contender | wall | trials ended | trials per GPU-hour | fixed cost per trial "
        "(median) | GPU busy | GPU memory in use, max | peak per trial (median / max) "
        "| best val F1 | test F1 | best hyperparameters |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row_line(labels[name], row) for name, row in rows.items()]
    lines += ["", f"Targets (issue 16), on {summary['gpu']}:", ""]
    lines += ["| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v['target']} | {v['measured']} | {v['verdict']} |" for v in summary["verdicts"]]
    lines += ["", _memory_text(summary)]
    for name in SEARCHES:
        row = rows.get(name)
        if row and row["overhead_median_s"] is not None:
            lines += ["", f"{labels[name]}:", *overhead_lines(row)]
    peer = rows.get("peer")
    if peer and peer["overhead_median_s"] is not None:
        between = peer["between_trials_median_s"]
        lines += [
            "",
            f"{labels['peer']}: per-trial fixed cost (model_init to the trial's end, less its "
            f"training steps and evaluation), median {peer['overhead_median_s']:.1f} s over "
            f"{peer['trials_run']} trials"
            + (
                f"; between one trial's end and the next one's start {between:.1f} s"
                if between is not None
                else ""
            )
            + ".",
        ]
    notes = [*summary.get("notes", []), *_row_notes(summary)]
    if notes:
        lines += ["", "Notes:", *(f"- {note}" for note in notes)]
    commands = summary.get("commands") or {}
    if commands:
        lines += ["", "Commands (each in its own process):", "", "```"]
        lines += [f"# {labels[name]}\n{command}" for name, command in commands.items()]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def _row_line(label: str, row: dict) -> str:
    wall = f"{row['wall_s'] / 60:.1f} min" + (" (stopped)" if row["cut"] else "")
    peaks = row["trial_peak_gib"]
    cells = [
        label,
        wall,
        f"{row['trials_run']}/{row['trials_asked']}",
        _num(row["trials_per_gpu_hour"], "{:.0f}"),
        _num(row["overhead_median_s"], "{:.1f} s"),
        _num(row["gpu_busy"], "{:.0%}"),
        _num(row["gpu_memory_used_max_gib"], "{:.1f} GiB"),
        f"{peaks['median']:.2f} / {peaks['max']:.2f} GiB" if peaks else "-",
        score_text(row["best_val_f1"]),
        score_text(row["test_f1"]),
        _hyperparameters(row["hyperparameters"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _memory_text(summary: dict) -> str:
    estimate = summary.get("estimate")
    if not estimate:
        return "Estimated peak GPU memory per trial: not computed."
    return (
        f"Estimated peak GPU memory per trial (search.gpu_share.trial_peak_gib, at the space's "
        f"largest batch {estimate['batch_size']}, {estimate['precision']}): "
        f"{estimate['gib']:.2f} GiB; the measured peaks per trial (torch.cuda."
        "max_memory_reserved in each trial's process; the peer's since each trial's start, in "
        "one process) are in the table."
    )


def _row_notes(summary: dict) -> list[str]:
    notes = []
    for name, row in summary["rows"].items():
        label = summary["labels"][name]
        if row["gpu_sharing"]:
            notes.append(f"{label}: `{row['gpu_sharing']}`; `{row['concurrency'] or '-'}`.")
        if row["cut"]:
            projected = row["projected_trials_s"]
            at_rate = (
                f"; at its rate, {row['trials_asked']} trials would take "
                f"{projected / 60:.1f} min of trials"
                if projected
                else ""
            )
            notes.append(
                f"{label} was stopped at its share of the time budget, after "
                f"{row['wall_s']:.0f} s, with {row['trials_run']} of {row['trials_asked']} "
                f"trials ended: its numbers are over those trials{at_rate}."
            )
        elif row["returncode"] not in (0, None):
            notes.append(f"{label} exited with code {row['returncode']}.")
        if row["gpu_busy"] is None and row["gpu_samples"] == 0 and summary.get("busy_measured"):
            notes.append(f"{label}: no GPU sample in its wall time, busy share unknown.")
        notes += [f"{label}: {problem}" for problem in row["problems"]]
    return notes


def _hyperparameters(values: dict | None) -> str:
    if not values:
        return "-"
    return ", ".join(
        f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
