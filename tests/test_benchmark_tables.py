"""The benchmark's numbers and tables from small hand-made result records, in the shapes
benchmarks.hpo, .peer and .seed_recipe write (no Ray, no training, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.summary import (
    SettingFacts,
    overheads,
    selection,
    summarize,
    time_to_target,
    trainings_at_once,
    work_stats,
    wrong_messages,
)
from benchmarks.tables import markdown, refit_text

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

# 100 training messages; the model costs 10,000 FLOPs per token per token of average length.
FACTS = SettingFacts("reduced", 100, 200, "spam", 25, lambda length: 1e4 * length)
PEAKS = {2: 20.0, 1: 12.0}  # GFLOP/s by thread count: the machine has 2, a trial trains with 1


def trial(name, batch_size, times, epochs, train_s, eval_s, tokens, best):
    """A trial as benchmarks.hpo collects it; `times`: start, worker loop, first step, last
    report, end (unix seconds); `tokens`: trained, computed."""
    start, loop, first_step, last_report, end = times
    return {
        "trial": name,
        "batch_size": batch_size,
        "start": start,
        "last_report": last_report,
        "epochs_run": epochs,
        "time_train_s": train_s,
        "time_eval_s": eval_s,
        "tokens_trained": tokens[0],
        "tokens_computed": tokens[1],
        "loop_started_at": loop,
        "training_started_at": first_step,
        "best": best,
        "end": end,
    }


def best(checkpoint, eval_f1, eval_loss, test_f1, wrong):
    return {
        "checkpoint": checkpoint,
        "epoch": 1,
        "eval_f1": eval_f1,
        "eval_loss": eval_loss,
        "test_f1": test_f1,
        "test_wrong": wrong,
    }


# Three trials one after another. Overheads (end - start - train - eval): 50, 65, 85 s.
TRIALS = [
    trial("a", 8, (1000, 1010, 1030, 1160, 1170), 2, 100, 20, (40000, 50000),
          best("ck/a", 0.97, 0.05, 0.95, [1, 2, 3])),
    trial("b", 16, (1180, 1195, 1220, 1470, 1475), 3, 200, 30, (90000, 120000),
          best("ck/b", 0.975, 0.08, 0.96, [2, 3])),
    trial("c", 8, (1500, 1520, 1550, 1790, 1810), 1, 200, 25, (70000, 70000),
          best("ck/c", 0.975, 0.12, 0.90, [3, 4, 5, 6])),
]  # fmt: skip


def records() -> dict[str, dict]:
    """The four contenders' records as benchmarks.compare keeps them in raw.json."""
    seed_hp = {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3}
    return {
        "hpo": {
            "hyperparameters": {"learning_rate": 1.21e-4, "batch_size": 16, "epochs": 3},
            "best_val_f1": 0.975,
            "test_metrics": {"test_accuracy": 0.99, "test_f1": 0.96, "test_wrong": [3, 7]},
            "checkpoint": "ck/b",
            "refit": {"epochs": 3, "examples": 125, "time_s": 90.0},
            "selected_test_metrics": {"test_accuracy": 0.985, "test_f1": 0.96},
            # As collected: trial by trial, so not in time order; 0.97 is first reached at 1420.
            "evals": [
                {"time": 1100, "eval_f1": 0.95},
                {"time": 1790, "eval_f1": 0.97},
                {"time": 1420, "eval_f1": 0.972},
                {"time": 1470, "eval_f1": 0.975},
            ],
            "trials": TRIALS,
            "threads": 1,
            "started": 1000.0,
            "wall_s": 4176.0,
        },
        "peer": {
            "hyperparameters": {
                "learning_rate": 6.31e-5,
                "per_device_train_batch_size": 32,
                "num_train_epochs": 3,
            },
            "objective": 0.98,
            "best_val_f1": 0.98,
            "test_metrics": {"test_accuracy": 0.98, "test_f1": 0.93, "test_wrong": [2, 3, 4]},
            "evals": [
                {"time": 2100, "eval_f1": 0.96, "trial": 1},
                {"time": 2400, "eval_f1": 0.97, "trial": 1},  # exactly the target: reached
                {"time": 2700, "eval_f1": 0.98, "trial": 2},
            ],
            "trials": 4,
            "started": 2000.0,
            "wall_s": 5800.0,
        },
        "seed": {
            "hyperparameters": seed_hp,
            "best_val_f1": 0.965,
            "test_metrics": {"test_accuracy": 0.975, "test_f1": 0.90},
            "evals": [{"time": 3100, "eval_f1": 0.95}, {"time": 3200, "eval_f1": 0.965}],
            "examples_trained": 300,
            # 300 examples padded to 128 tokens
            "work": {"time_train_s": 400.0, "tokens_trained": 38400, "tokens_computed": 38400},
            "started": 3000.0,
            "wall_s": 816.0,
        },
        "seed_all": {
            "hyperparameters": seed_hp,
            "best_val_f1": None,
            "test_metrics": {"test_accuracy": 0.97, "test_f1": 0.88},
            "evals": [],
            "examples_trained": 375,
            "started": 4000.0,
            "wall_s": 1050.0,
        },
    }


def test_time_to_target_is_the_earliest_evaluation_at_or_above_it():
    results = records()
    assert time_to_target(results["hpo"], 0.97) == 420
    assert time_to_target(results["peer"], 0.97) == 400
    assert time_to_target(results["peer"], 0.99) is None
    assert time_to_target(results["seed_all"], 0.97) is None


def test_work_stats_count_flops_on_the_tokens_computed():
    work = [
        {"time_train_s": 100, "tokens_trained": 30000, "tokens_computed": 40000},
        {"time_train_s": 300, "tokens_trained": 50000, "tokens_computed": 60000},
    ]
    # 100,000 tokens computed over 1,000 examples: 100 on average, 1e6 FLOPs per token.
    stats = work_stats(work, 1000, lambda length: 1e4 * length, peak=2.0)
    assert stats == pytest.approx(
        {"tokens_per_s": 200.0, "examples_per_s": 2.5, "gflops": 0.25, "peak_fraction": 0.125}
    )


def test_overheads_are_medians_of_each_trials_time_outside_training():
    got = overheads(TRIALS)
    assert got["overhead_s"] == [50, 65, 85]
    assert got["overhead_median_s"] == 65
    assert got["between_trials_median_s"] == 17.5  # gaps of 10 and 25 s
    assert got["report_to_next_loop_median_s"] == 42.5  # 35 and 50 s, as the workers timed them
    assert list(got["overhead_parts_median_s"].values()) == [15, 25, 15, 10]


def test_overlapping_trials_have_no_gap_between_them():
    overlapping = [{**TRIALS[0], "end": 1200}, TRIALS[1]]  # the second starts at 1180
    assert overheads(overlapping)["between_trials_median_s"] is None
    assert overheads([{k: v for k, v in TRIALS[0].items() if k != "end"}]) == {
        "overhead_median_s": None,
        "overhead_s": [],
        "overhead_parts_median_s": {},
        "between_trials_median_s": None,
        "report_to_next_loop_median_s": None,
    }


def test_the_gap_between_trials_is_their_median():
    spans = [(0, 100), (110, 200), (225, 300), (400, 500)]  # gaps of 10, 25 and 100 s
    trials = [{"start": a, "end": b, "time_train_s": 50, "time_eval_s": 10} for a, b in spans]
    got = overheads(trials)
    assert got["between_trials_median_s"] == 25
    assert got["overhead_s"] == [40, 30, 15, 40]
    assert got["overhead_median_s"] == 35
    assert got["overhead_parts_median_s"] == {}  # no worker-loop times recorded


def test_trainings_at_once_is_the_summed_windows_over_their_union():
    windows = [(0, 10), (5, 15), (20, 30)]  # 30 s of training over 25 s with any
    trials = [{"training_started_at": a, "last_report": b} for a, b in windows]
    assert trainings_at_once(trials) == pytest.approx(1.2)
    assert trainings_at_once([*trials, {"last_report": 99}]) == pytest.approx(1.2)
    assert trainings_at_once(TRIALS) == 1.0
    assert trainings_at_once([]) == 1.0


def test_selection_scores_each_rule_on_test():
    choice = selection(TRIALS, "ck/b")
    assert choice["f1_then_loss"] == {"trials": 1, "mean": 0.96, "min": 0.96, "max": 0.96}
    assert choice["f1_alone"] == pytest.approx({"trials": 2, "mean": 0.93, "min": 0.9, "max": 0.96})
    assert choice["loss_alone"]["mean"] == 0.95  # trial a: the lowest eval loss
    assert choice["any_trial"]["mean"] == pytest.approx(0.936667, abs=1e-6)
    assert selection(TRIALS, "ck/elsewhere") is None


def test_wrong_messages_count_rows_across_trials_and_finals():
    wrong = wrong_messages(records(), TRIALS)
    assert wrong == {
        "trials": 3,
        "trial_min": 2,
        "trial_max": 4,
        "wrong_in_every_trial": 1,  # row 3
        "wrong_in_half_of_trials": [2, 3],
        "wrong_in_any_trial": 6,
        "finals": {"hpo": {"wrong": 2, "hard": 1}, "peer": {"wrong": 3, "hard": 2}},
    }
    # With four trials, a row wrong in two of them is wrong in half.
    four = [{"best": {"test_wrong": rows}} for rows in ([1, 2], [1], [3], [])]
    assert wrong_messages({}, four)["wrong_in_half_of_trials"] == [1]
    unscored = [{**t, "best": {"checkpoint": "x"}} for t in TRIALS]
    assert wrong_messages(records(), unscored) is None


def test_summary_rows_carry_throughput_against_the_right_peak():
    summary = summarize(FACTS, records(), 0.97, PEAKS, machine=2)
    hpo, seed = summary["rows"]["hpo"], summary["rows"]["seed"]
    # 600 examples (100 x 6 epochs) in 500 s of training; 240,000 tokens computed: 400 each.
    assert hpo["examples_per_s"] == pytest.approx(1.2)
    assert hpo["tokens_per_s"] == pytest.approx(400)
    assert hpo["gflops"] == pytest.approx(1.92)
    assert hpo["peak_fraction"] == pytest.approx(0.16)  # of the 1-thread peak, 12
    assert hpo["bs8"]["examples_per_s"] == pytest.approx(1.0)  # trials a and c
    assert seed["examples_per_s"] == pytest.approx(0.75)
    assert seed["peak_fraction"] == pytest.approx(0.12288 / 20)  # of the machine's peak
    assert (hpo["trials_run"], hpo["epochs_run"]) == (3, 6)
    assert "tokens_per_s" not in summary["rows"]["seed_all"]
    assert (summary["positive_label"], summary["test_positives"]) == ("spam", 25) and summary[
        "matmul_peak_gflops"
    ] == 20.0


EXPECTED = """\
Setting `reduced`; target validation F1 0.97; fp32 matmul peak 20 GFLOP/s.

| | wall time | best val F1 | test accuracy | test spam F1 | time to target F1 | best hyperparameters |
|---|---|---|---|---|---|---|
| finetune-hpo | 69.6 min | 0.9750 | 0.9900 | 0.9600 | 7.0 min | learning_rate=1.21e-04, batch_size=16, epochs=3 |
| HF hyperparameter_search | 96.7 min | 0.9800 | 0.9800 | 0.9300 | 6.7 min | learning_rate=6.31e-05, per_device_train_batch_size=32, num_train_epochs=3 |
| seed recipe | 13.6 min | 0.9650 | 0.9750 | 0.9000 | not reached | learning_rate=5.00e-05, batch_size=8, epochs=3 |
| seed recipe on train + validation | 17.5 min | - | 0.9700 | 0.8800 | - (no validation) | learning_rate=5.00e-05, batch_size=8, epochs=3 |

finetune-hpo's exported model: refit for 3 epochs on train + validation (125 messages, 1.5 min of the wall time). The selected trial's checkpoint itself scores test accuracy 0.9850, spam F1 0.9600.

Selection: the test spam F1 of the trial checkpoint each rule picks among this run's trials (before any refit; several trials: their mean, and range):

| rule | trials | test spam F1 | range |
|---|---|---|---|
| validation F1, ties to the lower eval loss (finetune-hpo) | 1 | 0.9600 | - |
| validation F1 alone, ties by luck (the peer's rule) | 2 | 0.9300 | 0.9000-0.9600 |
| lowest validation loss | 1 | 0.9500 | - |
| a trial at random | 3 | 0.9367 | 0.9000-0.9600 |

Validation-test rank correlation (Spearman) of the 3 trials' best checkpoints: 0.00.

Message by message: the 3 trial checkpoints get 2-4 of the 200 test messages wrong (25 spam: a missed spam costs about 0.040 of spam F1, a false alarm about half that). Wrong in every trial: 1; in at least half of them: 2 (test rows [2, 3]); in at least one: 6. The final models get wrong: finetune-hpo 2 (1 of them among those 2), HF hyperparameter_search 3 (2 of them among those 2).

Wall time finetune-hpo / peer: 0.72x.

| training | tokens/s | examples/s | GFLOP/s | of matmul peak |
|---|---|---|---|---|
| finetune-hpo, all trials (each training, 1 thread(s)) | 400 | 1.2 | 1.9 | 16% |
| finetune-hpo, batch-8 trials (each training, 1 thread(s)) | 367 | 1.0 | 1.6 | 13% |
| seed recipe (batch 8, padded to 128, 2 threads) | 96 | 0.8 | 0.1 | 1% |

A trial's fraction is of the peak at its own 1 thread(s) (12 GFLOP/s). 1.00 trials trained at once on average while any did: the machine trained 1.2 examples/s.

Training throughput (examples/s) over the seed recipe's: the machine 1.60x, each training 1.60x, each batch-8 training 1.33x.

finetune-hpo ran 3 trials, 6 epochs; per-trial orchestration overhead (trial wall time minus training and evaluation), median 65.0 s over 3 trials:
- trial start to worker loop (Train controller, worker group, imports): 15.0 s
- worker loop to first step (data from object store, model load, Trainer): 25.0 s
- in the Trainer, outside steps and evaluation (checkpoints, reports): 15.0 s
- last report to trial end (worker group teardown): 10.0 s
- and between one trial's end and the next one's start (scheduling): 17.5 s
"""  # noqa: E501


def test_the_tables_from_the_records():
    assert markdown(summarize(FACTS, records(), 0.97, PEAKS, machine=2)) == EXPECTED


def test_the_search_s_payoff_lines_are_drawn_as_it_printed_them():
    results = records()
    results["hpo"]["payoff"] = {
        "validation_bootstrap": {
            "metric": "f1", "confidence": 0.95, "resamples": 2000, "examples": 60,
            "winner": {"trial_id": "b", "value": 0.975, "low": 0.93, "high": 1.0},
            "difference_to_winner": {"a": {}, "c": {}}, "tied_with_winner": ["a", "c"],
        },
        "search_over_defaults": {
            "metric": "f1", "defaults_trial": "a", "value": 0.01, "low": -0.02, "high": 0.04,
            "distinguishable": False, "pick_is_defaults": False,
            "defaults_hyperparameters": {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3},
            "defaults_epochs_run": 3, "defaults_epochs": 3,
        },
        "refit_over_pick": None,
    }  # fmt: skip
    text = markdown(summarize(FACTS, results, 0.97, PEAKS, machine=2))
    drawn = text.split("finetune-hpo's summary of its payoff:\n\n```\n")[1].split("```")[0]
    assert drawn.splitlines()[1] == "  winner b: validation f1 0.9750 [0.9300, 1.0000]"
    assert drawn.splitlines()[3].startswith("  the search's pick over the defaults (learning_")
    assert "\n\nValidation-test rank correlation (Spearman) of the 3 trials'" in text


def test_machine_throughput_counts_the_trials_training_at_once():
    summary = summarize(FACTS, records(), 0.97, PEAKS, machine=2)
    hpo = summary["rows"]["hpo"]
    hpo.update(trainings_at_once=2.0, machine_examples_per_s=2.4, refit=None)
    text = markdown(summary)
    assert "2.00 trials trained at once on average while any did: the machine trained 2.4" in text
    assert "the machine 3.20x, each training 1.60x, each batch-8 training 1.33x." in text
    assert "finetune-hpo's exported model: the selected trial's checkpoint. " in text


def test_a_refit_started_before_the_trials_ended_counts_only_what_came_after():
    refit = {"epochs": 3, "examples": 125, "time_s": 300.0, "after_trials_s": 60.0}
    assert refit_text({**refit, "started_early": True}) == (
        "refit for 3 epochs on train + validation (125 messages, on a warm worker, started "
        "while the last trials trained: 5.0 min, 1.0 of them after the trials)"
    )
    assert "started after the trials: 5.0 min" in refit_text({**refit, "started_early": False})
    assert refit_text(None) == "the selected trial's checkpoint"


def test_without_finetune_hpo_only_the_shared_tables_are_drawn():
    results = {k: v for k, v in records().items() if k in ("seed", "seed_all")}
    lines = markdown(summarize(FACTS, results, 0.97, PEAKS, machine=2)).splitlines()
    assert lines[4].startswith("| seed recipe | 13.6 min |")
    assert lines[-3:] == [
        "| training | tokens/s | examples/s | GFLOP/s | of matmul peak |",
        "|---|---|---|---|---|",
        "| seed recipe (batch 8, padded to 128, 2 threads) | 96 | 0.8 | 0.1 | 1% |",
    ]
    assert not any(line.startswith(("finetune-hpo", "Wall time", "Selection")) for line in lines)


@pytest.mark.parametrize("setting", ["reduced", "full"])
def test_the_committed_tables_are_redrawn_from_the_committed_numbers(setting):
    """What --tables-only relies on: a summary draws the table BENCHMARKS.md quotes."""
    numbers, table = RESULTS / f"{setting}.json", RESULTS / f"{setting}.md"
    if not numbers.exists() or not table.exists():
        pytest.skip(f"no committed {setting} results")
    assert markdown(json.loads(numbers.read_text())) == table.read_text()


def test_the_startup_table_sets_each_tree_beside_the_other():
    from benchmarks.startup import table

    before = {"commit": "aaa", "wall_s": 600.0, "trials": 3, **overheads(TRIALS)}
    faster = [{**t, "end": t["end"] - 20} for t in TRIALS]  # each trial ends 20 s sooner
    after = {"commit": "bbb", "wall_s": 540.0, "trials": 3, **overheads(faster)}
    lines = table({"before": before, "this tree": after})
    assert lines[0] == "| part (median) | before (aaa) | this tree (bbb) |"
    assert "| last report to trial end (worker group teardown) | 10.0 s | -10.0 s |" in lines
    assert "| per trial, outside training and evaluation | 65.0 s | 45.0 s |" in lines
    assert "| one trial's end to the next one's start | 17.5 s | 37.5 s |" in lines
    assert "| one trial's last report to the next one's worker loop | 42.5 s | 42.5 s |" in lines
    assert lines[-1] == "| search wall time | 600 s for 3 trials | 540 s for 3 trials |"
