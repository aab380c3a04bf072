"""Where the benchmarks write, by name (light: no heavy imports)."""

from pathlib import Path

RESULTS = Path(__file__).parent / "results"  # the tables BENCHMARKS.md quotes, and their numbers
WORK = Path("runs/benchmark")  # the contenders' outputs, one subfolder per setting
RAW_FILE = "raw.json"  # in <work>/<setting>: every contender's record, as compare read it back
PEAKS_FILE = "peaks.json"  # in <work>/<setting>: the matmul peak by thread count, at the run's end


def save_results(name: str, numbers, table: list[str]) -> None:
    """benchmarks/results/<name>.json (every number) and .md (the table BENCHMARKS.md quotes),
    the table printed too."""
    import json

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(numbers, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def pair_rows(what: str, seconds: dict[str, list[float]]) -> list[str]:
    """A table of two trees' timed runs, a column per tree (its name the header): the median
    and each run."""
    from statistics import median

    return [
        "| | " + " | ".join(seconds) + " |",
        "|---|---|---|",
        f"| {what} (median) | " + " | ".join(f"{median(s):.1f} s" for s in seconds.values()) + " |",
        "| each run | "
        + " | ".join(", ".join(f"{x:.1f}" for x in s) for s in seconds.values())
        + " |",
    ]
