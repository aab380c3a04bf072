"""The driver's data phase, this tree against another checkout, side by side: `--rows` texts
of `--messages` SMS messages each (by default 50 to 150: long documents of about 1,500 words),
read, split and tokenized at `--max-length` by benchmarks/data_phase.py, each tree `--repeats`
times, alternating, with a fresh datasets cache every time.

    python -m benchmarks.data_phase_pair --baseline /tmp/before --repeats 3 --name data_phase_long
    python -m benchmarks.data_phase_pair --baseline /tmp/before --repeats 3 --rows 200000 \
        --messages 1 6 --name data_phase_200k

Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.layout import WORK, pair_rows, save_results
from benchmarks.scale import make_csv
from benchmarks.trees import HERE, commit, json_line

SCRIPT = HERE / "benchmarks" / "data_phase.py"


def data_phase(tree: Path, csv: Path, max_length: int) -> dict:
    """benchmarks/data_phase.py run on `tree`'s code, with a datasets cache of its own."""
    with tempfile.TemporaryDirectory() as cache:
        return json_line(tree, SCRIPT, [str(csv), str(max_length)], {"HF_DATASETS_CACHE": cache})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--messages", type=int, nargs=2, default=[50, 150])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WORK / "data_phase")
    parser.add_argument("--name", default="data_phase_long")
    args = parser.parse_args()
    csv = make_csv(args.out / f"{args.name}.csv", args.rows, messages=tuple(args.messages))
    trees = {"baseline": args.baseline.resolve(), "this tree": HERE}
    runs = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            runs[name].append(data_phase(tree, csv, args.max_length))
            print(name, runs[name][-1], flush=True)
    words = [len(line.split()) for line in csv.read_text(encoding="utf-8").splitlines()[1:]]
    result = {
        "rows": args.rows,
        "words_median": statistics.median(words),
        "max_length": args.max_length,
        "trees": {name: commit(tree) for name, tree in trees.items()},
        "runs": runs,
    }
    table = [
        f"{args.rows:,} texts of {statistics.median(words):,.0f} words (median), max_length "
        f"{args.max_length}, {args.repeats} runs per tree, alternating",
        "",
        *pair_rows(
            "read, split and tokenized",
            {result["trees"][n]: [r["load_task_s"] for r in runs[n]] for n in trees},
        ),
        "| peak memory (median) | "
        + " | ".join(f"{statistics.median(r['peak_mb'] for r in runs[n]):.0f} MB" for n in trees)
        + " |",
    ]
    save_results(args.name, result, table)


if __name__ == "__main__":
    main()
