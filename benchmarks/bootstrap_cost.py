"""The payoff's validation bootstrap after a search (`search.payoff.validation_payoff`): the
winner's interval, every other trial's and its difference to the winner, on synthetic
predictions (`--trials` trials, `--examples` validation texts, `--classes` classes, macro F1,
each trial 60% right). Run as a file it times whichever tree PYTHONPATH names and prints a JSON
line; with --baseline DIR it runs itself on that checkout and on this tree, alternating:

    python -m benchmarks.bootstrap_cost --baseline /tmp/before

Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def measure(trials: int, examples: int, classes: int) -> dict:
    import numpy as np

    from search.payoff import validation_payoff
    from trainable.config_file import load_config

    labels = [f"class_{i}" for i in range(classes)]
    overrides = {"data.labels": labels, "search.metric": "macro_f1"}
    cfg = load_config(str(HERE / "configs" / "tiny.yaml"), overrides)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, classes, examples)
    evaluated = {
        f"trial_{i:02d}": (
            truth,
            np.where(rng.random(examples) < 0.6, truth, rng.integers(0, classes, examples)),
        )
        for i in range(trials)
    }
    started = time.monotonic()
    record = validation_payoff(evaluated, cfg, "trial_00")
    seconds = time.monotonic() - started
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    return {"seconds": round(seconds, 2), "record_sha256": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--examples", type=int, default=32_000)
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--baseline", type=Path, help="another checkout, timed beside this tree")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--name", default="bootstrap_cost")
    args = parser.parse_args()
    if args.baseline is None:
        print(json.dumps(measure(args.trials, args.examples, args.classes)))
        return
    from benchmarks.layout import pair_rows, save_results
    from benchmarks.trees import commit, json_line

    trees = {commit(args.baseline.resolve()): args.baseline.resolve(), commit(HERE): HERE}
    sizes = ["--trials", str(args.trials), "--examples", str(args.examples)]
    sizes += ["--classes", str(args.classes)]
    runs = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            runs[name].append(json_line(tree, Path(__file__).resolve(), sizes))
            print(name, runs[name][-1], flush=True)
    same = len({r["record_sha256"] for rs in runs.values() for r in rs}) == 1
    table = [
        f"{args.trials} trials, {args.examples:,} validation texts, {args.classes} classes, "
        f"2,000 resamples, {args.repeats} runs per tree, alternating; the records "
        f"{'the same' if same else 'differ'}",
        "",
        *pair_rows(
            "validation bootstrap", {n: [r["seconds"] for r in rs] for n, rs in runs.items()}
        ),
    ]
    save_results(args.name, {"trials": args.trials, "examples": args.examples, "runs": runs}, table)


if __name__ == "__main__":
    main()
