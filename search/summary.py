"""What the CLI prints: the task at the start, the outcome at the end."""

from __future__ import annotations

from typing import Any

from search.confusion import top_confusions, worst_first
from search.layout import BEST_MODEL, REPORT_DIR
from trainable.config import Config
from trainable.hyperparameters import describe

# Headline scores, in this order, where an evaluation has them (f1 and its kin: two classes).
HEADLINE = ("loss", "accuracy", "f1", "precision", "recall", "macro_f1", "weighted_f1", "mcc")
MATRIX_PRINTED_UP_TO = 10  # classes; beyond, the confusion matrix is only drawn
PER_CLASS_PRINTED = 10  # beyond MATRIX_PRINTED_UP_TO classes, the worst; the report has all


def describe_task(cfg: Config, counts: dict[str, int], labels_given: bool) -> str:
    labels, search = cfg.data.labels, cfg.search
    origin = "as configured" if labels_given else "read from the data"
    lines = [
        "data: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + " texts",
        f"labels: {', '.join(labels)} ({len(labels)} classes, {origin})",
    ]
    about = f" of {cfg.data.positive_label}" if search.metric == "f1" else ""
    ties = f", ties to the better {search.tie_breaker}" if search.tie_breaker else ""
    lines.append(f"ranking: validation {search.metric}{about} ({search.mode}){ties}")
    return "\n".join(lines)


def headline(scores: dict[str, float], prefix: str) -> str:
    return " ".join(
        f"{name}={scores[key]:.4f}" for name in HEADLINE if (key := f"{prefix}_{name}") in scores
    )


def per_class_lines(record: dict[str, Any]) -> list[str]:
    """The per-class test scores, worst first (the worst few beyond MATRIX_PRINTED_UP_TO
    classes), the most frequent confusions, and the matrix itself where it fits a terminal."""
    scores = record["test_per_class"]
    width = max(8, *(len(label) for label in record["labels"]))
    order = worst_first(scores)
    shown = order if len(order) <= MATRIX_PRINTED_UP_TO else order[:PER_CLASS_PRINTED]
    lines = [
        "  per class on test, worst first:",
        f"    {'':<{width}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}",
    ]
    for label in shown:
        s = scores[label]
        lines.append(
            f"    {label:<{width}} {s['precision']:9.4f} {s['recall']:7.4f} {s['f1']:7.4f} "
            f"{s['support']:8d}"
        )
    if len(shown) < len(order):
        lines.append(f"    ... {len(order) - len(shown)} more classes in {REPORT_DIR}/per_class.md")
    labels, matrix = record["confusion_matrix"]["labels"], record["confusion_matrix"]["matrix"]
    confusions = top_confusions(matrix, labels)
    if confusions:
        lines.append(
            "  most frequent confusions on test (true -> predicted: count, share of true):"
        )
        lines += [
            f"    {c['true']} -> {c['predicted']}: {c['count']} ({c['share_of_true']:.1%})"
            for c in confusions
        ]
    if len(labels) <= MATRIX_PRINTED_UP_TO:
        lines.append("  confusion matrix on test (rows: true class, columns: predicted)")
        cell = max(6, *(len(label) for label in labels)) + 1
        lines.append(" " * (width + 4) + "".join(f"{label:>{cell}}" for label in labels))
        for label, row in zip(labels, matrix, strict=True):
            lines.append(f"    {label:<{width}}" + "".join(f"{n:>{cell}d}" for n in row))
    return lines


def payoff_lines(record: dict[str, Any]) -> list[str]:
    """Did the search pay off: the winner's interval, the trials tied with it, the gain over
    the defaults' trial."""
    boot = record.get("validation_bootstrap")
    if not boot:
        return ["did the search pay off: no interval (the metric is loss, or no trial kept its "
                "validation predictions)"]  # fmt: skip
    metric, share = boot["metric"], f"{boot['confidence']:.0%}"
    winner = boot["winner"]
    lines = [
        f"did the search pay off ({share} paired bootstrap intervals, {boot['resamples']} "
        f"resamples of the {boot['examples']} validation texts):",
        f"  winner {winner['trial_id']}: validation {metric} {_interval(winner)}",
    ]
    if boot.get("seeds", 1) > 1:
        lines.append(
            f"  (trials rank by the mean of {boot['seeds']} seeds; each interval is of a trial's "
            "first seed, whose checkpoint exports)"
        )
    tied, others = boot["tied_with_winner"], len(boot["difference_to_winner"])
    if others:
        named = ", ".join(tied[:8]) + (", ..." if len(tied) > 8 else "")
        lines.append(
            f"  tied with the winner (their difference contains 0): {len(tied)} of {others} other "
            f"trials{': ' + named if tied else ''}"
        )
    return lines + gain_lines(record)


def gain_lines(record: dict[str, Any]) -> list[str]:
    """On test, apart: the search's pick over the defaults' trial, the refit over the pick."""
    gain = record.get("search_over_defaults")
    if gain is None:
        missing = record.get("search_over_defaults_missing", "no defaults' trial")
        lines = [f"  the search's pick over the defaults: {missing}"]
    else:
        defaults = f"{describe(gain['defaults_hyperparameters'])}, trial {gain['defaults_trial']}"
        ran, schedule = gain["defaults_epochs_run"], gain["defaults_epochs"]
        if ran < schedule:
            defaults += f", stopped after {ran} of its {schedule} epochs"
        if gain["pick_is_defaults"]:
            lines = [f"  the search picked the defaults' own trial ({defaults}): no gain to show"]
        else:
            lines = [
                f"  the search's pick over the defaults ({defaults}; both trained on train): "
                f"test {gain['metric']} {_difference(gain)}"
            ]
    refit = record.get("refit_over_pick")
    if refit is not None:
        lines.append(
            f"  the refit over the pick (train + validation against train): test "
            f"{refit['metric']} {_difference(refit)}"
        )
    return lines


def _difference(gain: dict[str, Any]) -> str:
    verdict = "a real gain" if gain["distinguishable"] and gain["value"] > 0 else (
        "a loss" if gain["distinguishable"] else "not distinguishable from zero")  # fmt: skip
    return f"{gain['value']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]: {verdict}"


def _interval(scores: dict[str, float]) -> str:
    return f"{scores['value']:.4f} [{scores['low']:.4f}, {scores['high']:.4f}]"


def print_summary(cfg: Config, record: dict[str, Any]) -> None:
    from transformers import pipeline

    from search.tracking import ui_command

    model_dir = cfg.output_dir / BEST_MODEL
    hp = record["hyperparameters"]
    print()
    print(f"search finished: {record['trials']} trials in {record['wall_time_s']:.0f} s")
    if record["failed_trials"]:
        print(f"failed trials ({len(record['failed_trials'])}):")
        for reason in record["failed_trials"]:
            print(f"  - {reason}")
    print(f"best trial {record['trial_id']} (epoch {record['best_epoch']}): {describe(hp)}")
    print(
        f"  validation: {headline(record['validation_metrics'], 'eval')} (the trial's checkpoint)"
    )
    refit = record["refit"]
    if refit:
        early = (
            f", begun while the last trials trained ({refit['after_trials_s']:.0f} s after them)"
            if refit.get("started_early")
            else ""
        )
        print(
            f"  refit:      {refit['epochs']} epochs on train + validation "
            f"({refit['examples']} texts) in {refit['time_s']:.0f} s{early}"
        )
    print(f"  test:       {headline(record['test_metrics'], 'test')} (the exported model)")
    for line in per_class_lines(record):
        print(line)
    for line in payoff_lines(record):
        print(line)
    print(f"exported model: {model_dir}")
    print(f"disk used: {record['disk_mb']:.0f} MB in {cfg.output_dir}")
    print(f"report: {cfg.output_dir / REPORT_DIR} (trials.md, per-class scores and plots)")
    print(f"MLflow runs: {ui_command(cfg)}")
    sample = record["sample_message"]
    prediction = pipeline("text-classification", model=str(model_dir))(sample, truncation=True)[0]
    shown = sample if len(sample) <= 60 else sample[:57] + "..."
    print(f"sample (a test text): {shown} -> {prediction['label']} ({prediction['score']:.3f})")
