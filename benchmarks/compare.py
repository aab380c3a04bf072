"""finetune-hpo, the in-process peer and the seed recipe, one after another, side by side.

The seed recipe runs twice: on train only (validation scores it, like every trial) and on
train + validation, as the notebook trains and as finetune-hpo's refit does.

    python -m benchmarks.compare --setting reduced   # about fifteen minutes
    python -m benchmarks.compare --setting full      # the record: about three hours on 2 cores

Writes benchmarks/results/<setting>.json and .md (the table BENCHMARKS.md quotes).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import SETTINGS, config_for, flops_per_token, tokenized_splits
from benchmarks.hpo import SEARCH_DIR, score_trials
from benchmarks.matmul_peak import matmul_peak_gflops
from search.layout import BEST_MODEL
from trainable import data

CONTENDERS = {
    "hpo": "finetune-hpo",
    "peer": "HF hyperparameter_search",
    "seed": "seed recipe",
    "seed_all": "seed recipe on train + validation",
}
# contender → its command line after `python -m`
COMMANDS = {
    "hpo": ["benchmarks.hpo"],
    "peer": ["benchmarks.peer"],
    "seed": ["benchmarks.seed_recipe"],
    "seed_all": ["benchmarks.seed_recipe", "--all-training-data"],
}
RESULTS = Path(__file__).parent / "results"


def run_contender(name: str, setting: str, out: Path) -> dict[str, Any]:
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", *COMMANDS[name], "--setting", setting, "--out", str(out)],
        check=True,
    )
    result = json.loads((out / f"{name}.json").read_text())
    result["started"] = started
    result["wall_s"] = time.time() - started - result.get("analysis_s", 0)
    return result


def time_to_target(result: dict[str, Any], target: float) -> float | None:
    hits = [e["time"] for e in result["evals"] if e["eval_f1"] >= target]
    return min(hits) - result["started"] if hits else None


def work_stats(work: list[dict[str, float]], examples: int, setting: str, peak: float) -> dict:
    train_s = sum(w["time_train_s"] for w in work)
    computed = sum(w["tokens_computed"] for w in work)
    flops = flops_per_token(setting, computed / examples) * computed
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
    return {
        "overhead_median_s": statistics.median(own) if own else None,
        "overhead_s": own,
        "overhead_parts_median_s": overhead_parts(ended),
        # Negative gaps mean trials overlapped (--max-concurrent above 1): no gap to speak of.
        "between_trials_median_s": statistics.median(gaps) if gaps and min(gaps) > 0 else None,
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


def summarize(
    setting: str, results: dict[str, dict], target: float, peaks: dict[int, float], machine: int
) -> dict:
    """`peaks`: the fp32 matmul peak by thread count; the machine's is at its `machine` threads,
    a trial's at the threads it trained with."""
    splits = tokenized_splits(config_for(setting))[1]
    n_train = len(splits["train"])
    peak = peaks[machine]
    summary = {
        "setting": setting,
        "target_f1": target,
        "matmul_peak_gflops": peak,
        "machine_threads": machine,
        "test_messages": len(splits["test"]),
        "test_spam": sum(splits["test"][data.LABEL]),
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
            row.update(work_stats([result["work"]], result["examples_trained"], setting, peak))
        if name == "hpo":
            trials = result["trials"]
            threads = result.get("threads", machine)
            examples = sum(n_train * t["epochs_run"] for t in trials)
            row.update(work_stats(trials, examples, setting, peaks[threads]))
            row["threads"], row["trial_peak_gflops"] = threads, peaks[threads]
            row["trainings_at_once"] = trainings_at_once(trials)
            row["machine_examples_per_s"] = row["examples_per_s"] * row["trainings_at_once"]
            small = [t for t in trials if t["batch_size"] == 8]
            if small:
                row["bs8"] = work_stats(
                    small, sum(n_train * t["epochs_run"] for t in small), setting, peaks[threads]
                )
            row.update(overheads(trials))
            row["trials_run"] = len(trials)
            row["epochs_run"] = sum(t["epochs_run"] for t in trials)
            row["refit"] = result.get("refit")
            row["selected_test_metrics"] = result.get("selected_test_metrics")
            row["selection"] = selection(trials, result["checkpoint"])
            row["wrong_messages"] = wrong_messages(results, trials)
        summary["rows"][name] = row
    return summary


def markdown(summary: dict) -> str:
    rows = summary["rows"]
    lines = [
        f"Setting `{summary['setting']}`; target validation F1 {summary['target_f1']}; "
        f"fp32 matmul peak {summary['matmul_peak_gflops']:.0f} GFLOP/s.",
        "",
        "| | wall time | best val F1 | test accuracy | test spam F1 | time to target F1 "
        "| best hyperparameters |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        hp = ", ".join(
            f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row["hyperparameters"].items()
        )
        reach = row["time_to_target_s"]
        lines.append(
            f"| {CONTENDERS[name]} | {row['wall_s'] / 60:.1f} min | {_score(row['best_val_f1'])} | "
            f"{row['test_accuracy']:.4f} | {row['test_f1']:.4f} | "
            f"{_reach(reach, row['best_val_f1'])} | {hp} |"
        )
    selected = (rows.get("hpo") or {}).get("selected_test_metrics")
    if selected:
        refit = rows["hpo"]["refit"]
        made = (
            f"refit for {refit['epochs']} epochs on train + validation "
            f"({refit['examples']} messages, {refit['time_s'] / 60:.1f} min of the wall time)"
            if refit
            else "the selected trial's checkpoint"
        )
        lines += [
            "",
            f"finetune-hpo's exported model: {made}. The selected trial's checkpoint itself "
            f"scores test accuracy {selected['test_accuracy']:.4f}, spam F1 "
            f"{selected['test_f1']:.4f}.",
        ]
    choice = (rows.get("hpo") or {}).get("selection")
    if choice:
        lines += ["", *selection_table(choice)]
    wrong = (rows.get("hpo") or {}).get("wrong_messages")
    if wrong:
        lines += ["", wrong_messages_text(wrong, summary)]
    if "hpo" in rows and "peer" in rows:
        lines += [
            "",
            f"Wall time finetune-hpo / peer: "
            f"{rows['hpo']['wall_s'] / rows['peer']['wall_s']:.2f}x.",
        ]
    hpo, seed = rows.get("hpo") or {}, rows.get("seed") or {}
    each = f"each training, {hpo.get('threads', '?')} thread(s)"
    lines += [
        "",
        "| training | tokens/s | examples/s | GFLOP/s | of matmul peak |",
        "|---|---|---|---|---|",
    ]
    for label, row in (
        (f"finetune-hpo, all trials ({each})", hpo),
        (f"finetune-hpo, batch-8 trials ({each})", hpo.get("bs8")),
        (f"seed recipe (batch 8, padded to 128, {summary['machine_threads']} threads)", seed),
    ):
        if row and "tokens_per_s" in row:
            lines.append(
                f"| {label} | {row['tokens_per_s']:.0f} | {row['examples_per_s']:.1f} | "
                f"{row['gflops']:.1f} | {row['peak_fraction']:.0%} |"
            )
    if "threads" in hpo:
        lines += [
            "",
            f"A trial's fraction is of the peak at its own {hpo['threads']} thread(s) "
            f"({hpo['trial_peak_gflops']:.0f} GFLOP/s). {hpo['trainings_at_once']:.2f} trials "
            f"trained at once on average while any did: the machine trained "
            f"{hpo['machine_examples_per_s']:.1f} examples/s.",
        ]
    if "examples_per_s" in hpo and "examples_per_s" in seed:
        ratios = [
            f"the machine {hpo['machine_examples_per_s'] / seed['examples_per_s']:.2f}x",
            f"each training {hpo['examples_per_s'] / seed['examples_per_s']:.2f}x",
        ]
        if "bs8" in hpo:
            bs8 = hpo["bs8"]["examples_per_s"] / seed["examples_per_s"]
            ratios.append(f"each batch-8 training {bs8:.2f}x")
        lines += [
            "",
            "Training throughput (examples/s) over the seed recipe's: " + ", ".join(ratios) + ".",
        ]
    if "hpo" in rows:
        hpo = rows["hpo"]
        lines += [
            "",
            f"finetune-hpo ran {hpo['trials_run']} trials, {hpo['epochs_run']} epochs; "
            f"per-trial orchestration overhead (trial wall time minus training and evaluation), "
            f"median {hpo['overhead_median_s']:.1f} s over {len(hpo['overhead_s'])} trials:",
        ]
        lines += [
            f"- {name}: {seconds:.1f} s" for name, seconds in hpo["overhead_parts_median_s"].items()
        ]
        if hpo["between_trials_median_s"] is not None:
            lines.append(
                f"- and between one trial's end and the next one's start (scheduling): "
                f"{hpo['between_trials_median_s']:.1f} s"
            )
    return "\n".join(lines) + "\n"


SELECTION_RULES = {
    "f1_then_loss": "validation F1, ties to the lower eval loss (finetune-hpo)",
    "f1_alone": "validation F1 alone, ties by luck (the peer's rule)",
    "loss_alone": "lowest validation loss",
    "any_trial": "a trial at random",
}


def selection_table(choice: dict[str, dict]) -> list[str]:
    lines = [
        "Selection: the test spam F1 of the trial checkpoint each rule picks among this run's "
        "trials (before any refit; several trials: their mean, and range):",
        "",
        "| rule | trials | test spam F1 | range |",
        "|---|---|---|---|",
    ]
    for rule, label in SELECTION_RULES.items():
        got = choice[rule]
        spread = f"{got['min']:.4f}-{got['max']:.4f}" if got["trials"] > 1 else "-"
        lines.append(f"| {label} | {got['trials']} | {got['mean']:.4f} | {spread} |")
    return lines


def wrong_messages_text(wrong: dict, summary: dict) -> str:
    hard = len(wrong["wrong_in_half_of_trials"])
    finals = ", ".join(
        f"{CONTENDERS[name]} {n['wrong']} ({n['hard']} of them among those {hard})"
        for name, n in wrong["finals"].items()
    )
    return (
        f"Message by message: the {wrong['trials']} trial checkpoints get "
        f"{wrong['trial_min']}-{wrong['trial_max']} of the {summary['test_messages']} test "
        f"messages wrong ({summary['test_spam']} spam: a missed spam costs about "
        f"{1 / summary['test_spam']:.3f} of spam F1, a false alarm about half that). Wrong in "
        f"every trial: {wrong['wrong_in_every_trial']}; in at least half of them: {hard} "
        f"(test rows {wrong['wrong_in_half_of_trials']}); in at least one: "
        f"{wrong['wrong_in_any_trial']}. The final models get wrong: {finals}."
    )


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _reach(seconds: float | None, val_f1: float | None) -> str:
    if val_f1 is None:
        return "- (no validation)"
    return "not reached" if seconds is None else f"{seconds / 60:.1f} min"


def measured_peaks(record: Path, threads: set[int], reuse: bool) -> dict[int, float]:
    """The fp32 matmul peak by thread count, measured once when the contenders have run and
    kept beside their results, so that redrawn tables quote the peak of the run's own time."""
    kept = {int(n): p for n, p in json.loads(record.read_text()).items()} if record.exists() else {}
    peaks = {n: kept[n] if reuse and n in kept else matmul_peak_gflops(n) for n in threads}
    record.write_text(json.dumps({**kept, **peaks}, indent=2) + "\n")
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="reduced")
    parser.add_argument(
        "--only",
        default="hpo,peer,seed,seed_all",
        help=f"contenders, comma-separated, of {','.join(CONTENDERS)}",
    )
    parser.add_argument("--target", type=float, default=0.97, help="validation F1 to reach")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("runs/benchmark"),
        help="scratch folder for the contenders' outputs",
    )
    parser.add_argument(
        "--add", action="store_true", help="keep the contenders already measured in the work folder"
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="redraw the tables from the contenders that finished, run nothing",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the finished finetune-hpo run's kept checkpoints on test again (what an "
        "older run did not record), then redraw the tables; trains nothing",
    )
    args = parser.parse_args()
    out = args.work / args.setting
    raw = out / "raw.json"
    redraw = args.tables_only or args.rescore
    results = json.loads(raw.read_text()) if args.add or redraw else {}
    if args.rescore:
        score_trials(results["hpo"], args.setting, out / SEARCH_DIR / BEST_MODEL)
        raw.write_text(json.dumps(results, indent=2))
    for name in [] if redraw else args.only.split(","):
        print(f"== {CONTENDERS[name]} ({args.setting})", flush=True)
        results[name] = run_contender(name, args.setting, out)
        raw.write_text(json.dumps(results, indent=2))
    machine = torch.get_num_threads()
    trial = results.get("hpo", {}).get("threads", machine)
    peaks = measured_peaks(out / "peaks.json", {machine, trial}, reuse=redraw)
    summary = summarize(args.setting, results, args.target, peaks, machine)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.setting}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / f"{args.setting}.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
