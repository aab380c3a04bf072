"""The scale benchmark's pure parts: MLflow requests from the server's access log, the bytes
of each kind of record a search writes, the CLI's timed lines, and the results table."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# uvicorn's access log: `INFO: 127.0.0.1:5123 - "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200`
REQUEST = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) (/[^ ?"]*)')
# What a search records about itself, by file name, and the kind of record it is.
RECORDS = {
    "result.json": "tune",
    "progress.csv": "tune",
    "params.json": "tune",
    "params.pkl": "tune",
    "checkpoint_manager_snapshot.json": "train snapshot",
    "trainer_state.json": "trainer state",
    "optuna.db": "optuna study",
}


def requests_by_path(access_log: str) -> Counter:
    """The MLflow server's requests, counted by path (without the /api/2.0/mlflow/ prefix)."""
    return Counter(
        match.group(2).removeprefix("/api/2.0/mlflow/").removeprefix("/ajax-api/2.0/mlflow/")
        for match in REQUEST.finditer(access_log)
    )


def record_kind(path: Path) -> str | None:
    """Which record a file of the search's output is, by its name; None for the rest."""
    if path.name in RECORDS:
        return RECORDS[path.name]
    if path.name.startswith(("experiment_state", "search_gen_state", "searcher-state")):
        return "tune"
    return None


def record_bytes(output: Path, mlflow_root: Path) -> dict[str, int]:
    """Bytes of each kind of record: Tune's, Train's snapshots, the Trainer's state, the
    Optuna study, and the MLflow store (its database and artifacts, model files aside)."""
    sizes: Counter = Counter()
    for path in output.rglob("*"):
        kind = record_kind(path) if path.is_file() else None
        if kind:
            sizes[kind] += path.stat().st_size
    for path in mlflow_root.rglob("*"):
        if path.is_file() and path.suffix not in (".safetensors", ".bin"):
            sizes["mlflow store"] += path.stat().st_size
    return dict(sizes)


def bytes_per_report(output: Path) -> float:
    """The mean size of one row of Tune's result.json: what each report carries."""
    rows = [
        len(line)
        for path in output.rglob("result.json")
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]
    return sum(rows) / len(rows) if rows else 0.0


def timed_lines(lines: list[tuple[float, str]]) -> dict[str, float | None]:
    """From the CLI's stdout lines (seconds since its start, text): when it first printed,
    and when the data phase ended (its `tokenized` line) and the search's summary began."""

    def first(prefix: str) -> float | None:
        return next((t for t, line in lines if line.startswith(prefix)), None)

    return {
        "first_line_s": lines[0][0] if lines else None,
        "data_phase_s": first("tokenized in"),
        "summary_s": first("search finished"),
    }


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def table(results: list[dict]) -> list[str]:
    """Markdown: one column per size, one row per measure."""
    measures = {
        "first line printed": lambda r: seconds(r["first_line_s"]),
        "data phase (start to `tokenized`)": lambda r: seconds(r["data_phase_s"]),
        "start to first trial": lambda r: seconds(r["before_first_trial_s"]),
        "training steps + evaluation, all trials": lambda r: seconds(r["train_s"] + r["eval_s"]),
        "per trial, outside training and evaluation (median)": lambda r: seconds(
            r["overhead_median_s"]
        ),
        "last trial's end to exit (selection, export, test, report)": lambda r: seconds(
            r["after_last_trial_s"]
        ),
        "wall time": lambda r: seconds(r["wall_s"]),
        "outside training and evaluation, share of the wall time": lambda r: (
            f"{1 - (r['train_s'] + r['eval_s']) / r['wall_s']:.0%}"
        ),
        "driver peak memory": lambda r: f"{r['driver_peak_mb']:,.0f} MB",
        "bytes per Tune report (result.json row)": lambda r: f"{r['bytes_per_report']:,.0f}",
        **{
            f"records: {kind}": lambda r, kind=kind: f"{r['record_bytes'].get(kind, 0):,}"
            for kind in ("tune", "train snapshot", "trainer state", "mlflow store", "optuna study")
        },
        "MLflow metric requests per report": lambda r: (
            "-"
            if r["mlflow_metric_requests_per_report"] is None
            else f"{r['mlflow_metric_requests_per_report']:.0f}"
        ),
        "MLflow requests, all": lambda r: f"{r['mlflow_requests']:,}",
    }
    lines = [
        "| measure | " + " | ".join(_column(r) for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    lines += [
        f"| {name} | " + " | ".join(cell(r) for r in results) + " |"
        for name, cell in measures.items()
    ]
    return lines


def _column(result: dict) -> str:
    return f"{result['rows']:,} rows" + (", the same file again" if result.get("again") else "")
