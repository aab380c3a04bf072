"""Per-trial start-up: the reduced setting's search, one trial at a time and without the refit,
its fixed cost per trial split into parts (`benchmarks.summary.overheads`).

With --baseline DIR (another checkout, for example the commit before a change), the same search
runs from that tree first, then from this one, in the same invocation: before and after,
measured side by side.

    python -m benchmarks.startup --trials 6 --baseline /tmp/before

Writes benchmarks/results/startup.json and .md; the searches run under --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from benchmarks.hpo import run_search
from benchmarks.layout import RESULTS, WORK
from benchmarks.summary import overheads

HERE = Path(__file__).resolve().parents[1]


def search(source: Path, output: Path, trials: int) -> dict:
    """The search run from `source`'s code, and its per-trial timings read back."""
    result = run_search(
        "reduced", output, trials, "search.max_concurrent=1", "search.refit=false", source=source
    )
    return {
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=source, capture_output=True, text=True
        ).stdout.strip(),
        "wall_s": result["wall_s"],
        "trials": len(result["trials"]),
        **overheads(result["trials"]),
    }


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def table(rows: dict[str, dict]) -> list[str]:
    """Markdown: one column per tree, one row per part of the per-trial fixed cost."""
    columns = list(rows.values())
    lines = [
        "| part (median) | "
        + " | ".join(f"{name} ({rows[name]['commit']})" for name in rows)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    measures = {
        **{
            part: lambda row, part=part: seconds(row["overhead_parts_median_s"][part])
            for part in columns[0]["overhead_parts_median_s"]
        },
        "per trial, outside training and evaluation": lambda row: seconds(row["overhead_median_s"]),
        "one trial's end to the next one's start": lambda row: seconds(
            row["between_trials_median_s"]
        ),
        "one trial's last report to the next one's worker loop": lambda row: seconds(
            row.get("report_to_next_loop_median_s")
        ),
        "search wall time": lambda row: f"{row['wall_s']:.0f} s for {row['trials']} trials",
    }
    for name, measure in measures.items():
        lines.append(f"| {name} | " + " | ".join(measure(row) for row in columns) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--baseline", type=Path, help="another checkout, run first")
    parser.add_argument("--out", type=Path, default=WORK / "startup")
    parser.add_argument("--name", default="startup", help="results/NAME.json and .md")
    args = parser.parse_args()
    trees = {"before": args.baseline.resolve()} if args.baseline else {}
    trees["this tree"] = HERE
    rows = {}
    for name, source in trees.items():
        print(f"{name}: {source}", flush=True)
        rows[name] = search(source, args.out.resolve() / name.replace(" ", "-"), args.trials)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = table(rows)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
