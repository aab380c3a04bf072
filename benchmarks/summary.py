"""The comparison's numbers, computed from the contenders' result records (pure: no disk, no
processes; what the data and the model are is handed in as `SettingFacts`).

A record is what a contender wrote (`benchmarks.hpo`, `.peer`, `.seed_recipe`) plus the
`started` and `wall_s` that `benchmarks.contenders.run_contender` adds.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SettingFacts:
    """What the numbers need to know of a setting's data and model."""

    name: str
    train_messages: int
    test_messages: int
    positive_label: str  # the class F1 is about
    test_positives: int
    flops_per_token: Callable[[float], float]  # average tokens per example → FLOPs per token


def time_to_target(result: dict[str, Any], target: float) -> float | None:
    """Seconds from the contender's start to its first evaluation at or above `target`."""
    hits = [e["time"] for e in result["evals"] if e["eval_f1"] >= target]
    return min(hits) - result["started"] if hits else None


def work_stats(
    work: list[dict[str, float]],
    examples: int,
    flops_per_token: Callable[[float], float],
    peak: float,
) -> dict:
    train_s = sum(w["time_train_s"] for w in work)
    computed = sum(w["tokens_computed"] for w in work)
    flops = flops_per_token(computed / examples) * computed
    return {
        "tokens_per_s": sum(w["tokens_trained"] for w in work) / train_s,
        "examples_per_s": examples / train_s,
        "gflops": flops / train_s / 1e9,
        "peak_fraction": flops / train_s / 1e9 / peak,
    }


def overhead_parts(ended: list[dict]) -> dict[str, float]:
    """Where an ended trial's time outside training and evaluation goes (medians, seconds)."""
    parts = {
        "trial start to worker loop (Train controller, worker group, imports)": lambda t: (
            t["loop_started_at"] - t["start"]
        ),
        "worker loop to first step (data from object store, model load, Trainer)": lambda t: (
            t["training_started_at"] - t["loop_started_at"]
        ),
        "in the Trainer, outside steps and evaluation (checkpoints, reports)": lambda t: (
            t["last_report"] - t["training_started_at"] - t["time_train_s"] - t["time_eval_s"]
        ),
        "last report to trial end (worker group teardown)": lambda t: t["end"] - t["last_report"],
    }
    timed = [t for t in ended if "loop_started_at" in t]
    return (
        {name: statistics.median(map(part, timed)) for name, part in parts.items()} if timed else {}
    )


def overheads(trials: list[dict]) -> dict[str, Any]:
    """Per trial: its wall time (start to end) minus its training and evaluation. With trials
    one at a time, also the gap from one trial's end to the next one's start."""
    ended = [t for t in trials if "end" in t]
    own = [t["end"] - t["start"] - t["time_train_s"] - t["time_eval_s"] for t in ended]
    gaps = [b["start"] - a["end"] for a, b in zip(ended, ended[1:], strict=False)]
    # The same gap as the workers timed it: Tune may start a reused trial process on the next
    # trial before its callbacks have closed the last one's run, which makes `gaps` negative.
    handovers = [
        b["loop_started_at"] - a["last_report"]
        for a, b in zip(ended, ended[1:], strict=False)
        if "loop_started_at" in b
    ]
    return {
        "overhead_median_s": statistics.median(own) if own else None,
        "overhead_s": own,
        "overhead_parts_median_s": overhead_parts(ended),
        # Negative gaps mean trials overlapped (--max-concurrent above 1): no gap to speak of.
        "between_trials_median_s": statistics.median(gaps) if gaps and min(gaps) > 0 else None,
        "report_to_next_loop_median_s": (
            statistics.median(handovers) if handovers and min(handovers) > 0 else None
        ),
    }


def selection(trials: list[dict], chosen: str) -> dict[str, Any] | None:
    """Test scores of the trial each selection rule picks, from every trial's best checkpoint.

    Validation F1 ties often (it moves in steps of one message), so the rule that looks at F1
    alone, as the peer does, picks among the tied trials by luck: its expected test score is
    their mean. finetune-hpo breaks the tie on eval loss."""
    scored = [t["best"] for t in trials if t.get("best") and "test_f1" in t["best"]]
    picked = [b for b in scored if b["checkpoint"] == chosen]
    if not scored or not picked:
        return None
    top = max(b["eval_f1"] for b in scored)
    tied = [b for b in scored if math.isclose(b["eval_f1"], top)]
    lowest_loss = min(scored, key=lambda b: b["eval_loss"])

    def test_f1(group: list[dict]) -> dict[str, float]:
        values = [b["test_f1"] for b in group]
        return {
            "trials": len(values),
            "mean": statistics.mean(values),
            "min": min(values),
            "max": max(values),
        }

    return {
        "f1_then_loss": test_f1(picked),
        "f1_alone": test_f1(tied),
        "loss_alone": test_f1([lowest_loss]),
        "any_trial": test_f1(scored),
    }


def wrong_messages(results: dict[str, dict], trials: list[dict]) -> dict[str, Any] | None:
    """Which test messages the models get wrong: every trial's best checkpoint, and each
    contender's final model that recorded them. Messages most trials get wrong are hard for this
    model whatever the hyperparameters; choosing among trials can only avoid the others."""
    by_trial = [set(t["best"]["test_wrong"]) for t in trials if "test_wrong" in (t["best"] or {})]
    if not by_trial:
        return None
    counts = Counter(row for wrong in by_trial for row in wrong)
    hard = {row for row, n in counts.items() if n >= len(by_trial) / 2}
    finals = {
        name: set(r["test_metrics"]["test_wrong"])
        for name, r in results.items()
        if "test_wrong" in r["test_metrics"]
    }
    return {
        "trials": len(by_trial),
        "trial_min": min(map(len, by_trial)),
        "trial_max": max(map(len, by_trial)),
        "wrong_in_every_trial": sum(n == len(by_trial) for n in counts.values()),
        "wrong_in_half_of_trials": sorted(hard),
        "wrong_in_any_trial": len(counts),
        "finals": {name: {"wrong": len(w), "hard": len(w & hard)} for name, w in finals.items()},
    }


def trainings_at_once(trials: list[dict]) -> float:
    """How many trials trained at once, on average, while any did: the summed training windows
    (first step to last report) over their union."""
    windows = sorted(
        (t["training_started_at"], t["last_report"]) for t in trials if "training_started_at" in t
    )
    if not windows:
        return 1.0
    busy = sum(end - start for start, end in windows)
    union, reach = 0.0, windows[0][0]
    for start, end in windows:
        union += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return busy / union


def hpo_row(result: dict, facts: SettingFacts, peaks: dict[int, float], machine: int) -> dict:
    """finetune-hpo's numbers beyond the shared ones: per trial, from its Tune records."""
    trials = result["trials"]
    threads = result.get("threads", machine)

    def examples(group: list[dict]) -> int:
        return sum(facts.train_messages * t["epochs_run"] for t in group)

    row = work_stats(trials, examples(trials), facts.flops_per_token, peaks[threads])
    row["threads"], row["trial_peak_gflops"] = threads, peaks[threads]
    row["trainings_at_once"] = trainings_at_once(trials)
    row["machine_examples_per_s"] = row["examples_per_s"] * row["trainings_at_once"]
    small = [t for t in trials if t["batch_size"] == 8]
    if small:
        row["bs8"] = work_stats(small, examples(small), facts.flops_per_token, peaks[threads])
    row.update(overheads(trials))
    row["trials_run"] = len(trials)
    row["epochs_run"] = sum(t["epochs_run"] for t in trials)
    row["refit"] = result.get("refit")
    row["selected_test_metrics"] = result.get("selected_test_metrics")
    row["selection"] = selection(trials, result["checkpoint"])
    row["rank_correlation"] = rank_correlation(trials)
    if result.get("payoff"):
        row["payoff"] = result["payoff"]
    return row


def rank_correlation(trials: list[dict]) -> dict[str, float] | None:
    """Spearman's correlation of the trials' best validation F1 with their checkpoints' test F1:
    how far validation's order of the trials holds on test."""
    from scipy.stats import spearmanr

    scored = [t["best"] for t in trials if t.get("best") and "test_f1" in t["best"]]
    if len(scored) < 3:
        return None
    found = spearmanr([b["eval_f1"] for b in scored], [b["test_f1"] for b in scored])
    return {"trials": len(scored), "spearman": float(found.statistic)}


def summarize(
    facts: SettingFacts,
    results: dict[str, dict],
    target: float,
    peaks: dict[int, float],
    machine: int,
) -> dict:
    """`peaks`: the fp32 matmul peak by thread count; the machine's is at its `machine` threads,
    a trial's at the threads it trained with."""
    peak = peaks[machine]
    summary = {
        "setting": facts.name,
        "target_f1": target,
        "matmul_peak_gflops": peak,
        "machine_threads": machine,
        "test_messages": facts.test_messages,
        "positive_label": facts.positive_label,
        "test_positives": facts.test_positives,
        "rows": {},
    }
    for name, result in results.items():
        row = {
            "wall_s": result["wall_s"],
            "best_val_f1": result["best_val_f1"],
            "test_accuracy": result["test_metrics"]["test_accuracy"],
            "test_f1": result["test_metrics"]["test_f1"],
            "time_to_target_s": time_to_target(result, target),
            "hyperparameters": result["hyperparameters"],
        }
        if name == "seed" and "work" in result:
            work = [result["work"]]
            row.update(work_stats(work, result["examples_trained"], facts.flops_per_token, peak))
        if name == "hpo":
            row.update(hpo_row(result, facts, peaks, machine))
            row["wrong_messages"] = wrong_messages(results, result["trials"])
        summary["rows"][name] = row
    return summary
