"""The comparison's markdown, drawn from the summary `benchmarks.summary.summarize` computes
(pure: the same summary always draws the same text)."""

from __future__ import annotations

from benchmarks.contenders import CONTENDERS

SELECTION_RULES = {
    "f1_then_loss": "validation F1, ties to the lower eval loss (finetune-hpo)",
    "f1_alone": "validation F1 alone, ties by luck (the peer's rule)",
    "loss_alone": "lowest validation loss",
    "any_trial": "a trial at random",
}


def markdown(summary: dict) -> str:
    rows = summary["rows"]
    hpo = rows.get("hpo") or {}
    positive = summary["positive_label"]
    lines = contenders_table(summary)
    if hpo.get("selected_test_metrics"):
        lines += ["", exported_model_text(hpo, positive)]
    if hpo.get("selection"):
        lines += ["", *selection_table(hpo["selection"], positive)]
    if hpo.get("payoff") or hpo.get("rank_correlation"):
        lines += ["", *payoff_text(hpo)]
    if hpo.get("wrong_messages"):
        lines += ["", wrong_messages_text(hpo["wrong_messages"], summary)]
    if "hpo" in rows and "peer" in rows:
        lines += [
            "",
            f"Wall time finetune-hpo / peer: "
            f"{rows['hpo']['wall_s'] / rows['peer']['wall_s']:.2f}x.",
        ]
    lines += ["", *throughput_table(summary)]
    if "hpo" in rows:
        lines += ["", *overhead_lines(rows["hpo"])]
    return "\n".join(lines) + "\n"


def contenders_table(summary: dict) -> list[str]:
    lines = [
        f"Setting `{summary['setting']}`; target validation F1 {summary['target_f1']}; "
        f"fp32 matmul peak {summary['matmul_peak_gflops']:.0f} GFLOP/s.",
        "",
        f"| | wall time | best val F1 | test accuracy | test {summary['positive_label']} F1 "
        "| time to target F1 "
        "| best hyperparameters |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["rows"].items():
        hp = ", ".join(
            f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row["hyperparameters"].items()
        )
        reach = row["time_to_target_s"]
        lines.append(
            f"| {CONTENDERS[name].label} | {row['wall_s'] / 60:.1f} min | "
            f"{_score(row['best_val_f1'])} | {row['test_accuracy']:.4f} | {row['test_f1']:.4f} | "
            f"{_reach(reach, row['best_val_f1'])} | {hp} |"
        )
    return lines


def exported_model_text(hpo: dict, positive: str) -> str:
    selected = hpo["selected_test_metrics"]
    return (
        f"finetune-hpo's exported model: {refit_text(hpo['refit'])}. The selected trial's "
        "checkpoint itself "
        f"scores test accuracy {selected['test_accuracy']:.4f}, {positive} F1 "
        f"{selected['test_f1']:.4f}."
    )


def refit_text(refit: dict | None) -> str:
    """How the exported model was made, and what its refit cost; a refit on a warm worker
    (search/warm_refit.py) may have started before the trials ended."""
    if not refit:
        return "the selected trial's checkpoint"
    made = f"refit for {refit['epochs']} epochs on train + validation ({refit['examples']} messages"
    after = refit.get("after_trials_s")
    if after is None:  # a refit in a Train run of its own, after the trials
        return f"{made}, {refit['time_s'] / 60:.1f} min of the wall time)"
    began = "while the last trials trained" if refit["started_early"] else "after the trials"
    return (
        f"{made}, on a warm worker, started {began}: {refit['time_s'] / 60:.1f} min, "
        f"{after / 60:.1f} of them after the trials)"
    )


def selection_table(choice: dict[str, dict], positive: str) -> list[str]:
    lines = [
        f"Selection: the test {positive} F1 of the trial checkpoint each rule picks among this "
        "run's trials (before any refit; several trials: their mean, and range):",
        "",
        f"| rule | trials | test {positive} F1 | range |",
        "|---|---|---|---|",
    ]
    for rule, label in SELECTION_RULES.items():
        got = choice[rule]
        spread = f"{got['min']:.4f}-{got['max']:.4f}" if got["trials"] > 1 else "-"
        lines.append(f"| {label} | {got['trials']} | {got['mean']:.4f} | {spread} |")
    return lines


def payoff_text(hpo: dict) -> list[str]:
    """The search's own payoff lines, and how far validation's order of the trials held."""
    from search.summary import payoff_lines

    lines = []
    if hpo.get("payoff"):
        lines += ["finetune-hpo's summary of its payoff:", "", "```"]
        lines += [*payoff_lines(hpo["payoff"]), "```", ""]
    ranks = hpo.get("rank_correlation")
    if ranks:
        lines.append(
            f"Validation-test rank correlation (Spearman) of the {ranks['trials']} trials' best "
            f"checkpoints: {ranks['spearman']:.2f}."
        )
    return lines[:-1] if lines[-1] == "" else lines


def wrong_messages_text(wrong: dict, summary: dict) -> str:
    hard = len(wrong["wrong_in_half_of_trials"])
    positive, positives = summary["positive_label"], summary["test_positives"]
    finals = ", ".join(
        f"{CONTENDERS[name].label} {n['wrong']} ({n['hard']} of them among those {hard})"
        for name, n in wrong["finals"].items()
    )
    return (
        f"Message by message: the {wrong['trials']} trial checkpoints get "
        f"{wrong['trial_min']}-{wrong['trial_max']} of the {summary['test_messages']} test "
        f"messages wrong ({positives} {positive}: a missed {positive} costs about "
        f"{1 / positives:.3f} of {positive} F1, a false alarm about half that). Wrong in "
        f"every trial: {wrong['wrong_in_every_trial']}; in at least half of them: {hard} "
        f"(test rows {wrong['wrong_in_half_of_trials']}); in at least one: "
        f"{wrong['wrong_in_any_trial']}. The final models get wrong: {finals}."
    )


def throughput_table(summary: dict) -> list[str]:
    """Training throughput and efficiency: finetune-hpo's trials beside the seed recipe."""
    hpo, seed = summary["rows"].get("hpo") or {}, summary["rows"].get("seed") or {}
    each = f"each training, {hpo.get('threads', '?')} thread(s)"
    lines = [
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
    return lines


def overhead_lines(hpo: dict) -> list[str]:
    lines = [
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
    return lines


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _reach(seconds: float | None, val_f1: float | None) -> str:
    if val_f1 is None:
        return "- (no validation)"
    return "not reached" if seconds is None else f"{seconds / 60:.1f} min"
