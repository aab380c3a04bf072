"""What search.repeats buys: the same search with 1 and with k seeds per configuration.

    python -m benchmarks.repeats --trials 8 --repeats 1,2   # reduced setting, about 40 minutes

For each, every trial's best checkpoint is scored on test (each seed's, averaged, where a trial
trained several), then: how well validation ranks the trials as test does (Spearman), the
exported model's test score, and the wall time. Writes benchmarks/results/repeats.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy.stats import spearmanr

from benchmarks.hpo import search_and_score, test_scorer
from benchmarks.layout import RESULTS, WORK
from trainable.seeds import CHECKPOINT_DIR

SETTING = "reduced"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", default="1,2", help="seed counts to compare, comma-separated")
    parser.add_argument("--work", type=Path, default=WORK / "repeats")
    args = parser.parse_args()
    rows = []
    for k in map(int, args.repeats.split(",")):
        print(f"== search.repeats={k}: {args.trials} trials ({SETTING} setting)", flush=True)
        result = search_and_score(SETTING, args.work / f"k{k}", args.trials, f"search.repeats={k}")
        rows.append(summarize(k, result))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "repeats.json").write_text(json.dumps(rows, indent=2) + "\n")
        (RESULTS / "repeats.md").write_text(markdown(rows))
    print(markdown(rows))


def summarize(k: int, result: dict) -> dict:
    """Validation against test over the trials, and the export's test score."""
    score = test_scorer(SETTING)
    pairs = []
    for trial in result["trials"]:
        best = trial.get("best")
        if best and "test_f1" in best:  # the first seed's, scored by search_and_score
            later = [
                score(Path(best["checkpoint"], CHECKPOINT_DIR.format(i)))["test_f1"]
                for i in range(1, k)
            ]
            pairs.append((best["eval_f1"], statistics.fmean([best["test_f1"], *later])))
    validation, test = zip(*pairs, strict=True)
    return {
        "repeats": k,
        "trials": len(result["trials"]),
        "wall_s": round(result["wall_s"], 1),
        "spearman_validation_test": round(float(spearmanr(validation, test).statistic), 3),
        "scored_trials": len(pairs),
        "picked": result["hyperparameters"],
        "picked_validation_f1": round(result["best_val_f1"], 4),
        "export_test_f1": round(result["test_metrics"]["test_f1"], 4),
        "export_test_wrong": len(result["test_metrics"]["test_wrong"]),
        "trial_test_f1": [round(t, 4) for t in test],
        "trial_validation_f1": [round(v, 4) for v in validation],
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| seeds per configuration | trials | wall | validation-test Spearman (trials) "
        "| pick | its validation F1 | export test F1 (wrong) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        hp = row["picked"]
        lines.append(
            f"| {row['repeats']} | {row['trials']} | {row['wall_s'] / 60:.1f} min "
            f"| {row['spearman_validation_test']:+.2f} ({row['scored_trials']}) "
            f"| {hp['learning_rate']:.2e} / {hp['batch_size']} / {hp['epochs']} "
            f"| {row['picked_validation_f1']:.4f} "
            f"| {row['export_test_f1']:.4f} ({row['export_test_wrong']}) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
