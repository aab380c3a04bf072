"""The same search at growing data sizes: what its data phase, its records and its MLflow
traffic cost as the rows grow, 50 classes, the tiny model, one trial at a time.

    python -m benchmarks.scale --rows 10000 50000 200000
    python -m benchmarks.scale --rows 10000 50000 --source /tmp/before --name scale_before

Per size: a CSV of that many texts (`make_csv`), a real `mlflow server` on 127.0.0.1 whose
access log counts the requests, and the CLI search
`--config configs/tiny.yaml --data <csv> --trials 2 --max-concurrent 1` with one epoch of
batch 32 at model.max_length 128. With --source, the search runs from another checkout (for
example the commit before a change); with --again, each size's file is searched a second time,
as a user runs another search on the same data (datasets' cache holds its tokenized splits).
Writes benchmarks/results/<name>.json and .md; the
searches run under --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.layout import RESULTS, WORK
from benchmarks.scale_tables import (
    bytes_per_report,
    record_bytes,
    requests_by_path,
    table,
    timed_lines,
)
from trainable import embedded

CLASSES = 50
SIZES = (10_000, 50_000, 200_000)
SEARCH = [
    *("--config", "configs/tiny.yaml", "--trials", "2", "--max-concurrent", "1"),
    *("--set", "data.max_rows=null", "--set", "model.max_length=128"),
    *("--set", "space.epochs=[1]", "--set", "space.batch_size=[32]"),
]
METRIC_PATHS = ("runs/log-metric", "runs/log-batch")


def make_csv(path: Path, rows: int, seed: int = 0, messages: tuple[int, int] = (1, 6)) -> Path:
    """`rows` texts of 1 to 6 SMS messages each (a few words to a few hundred; `messages`: the
    range), labelled round-robin with 50 classes: nothing is learnable, the machinery is what
    is measured."""
    with embedded.data_file().open(encoding="utf-8") as handle:
        texts = [line.rstrip("\n").split("\t", 1)[1] for line in handle if "\t" in line]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            text = " ".join(rng.choices(texts, k=rng.randint(*messages)))
            writer.writerow([text, f"class_{i % CLASSES:02d}"])
    return path


def run_cli(command: list[str], log: Path, source: Path | None = None) -> dict:
    """Runs the search (from `source`'s code when given), timing each line it prints and
    sampling the driver's memory."""
    import psutil

    from benchmarks.hpo import running_from

    started, started_at = time.monotonic(), time.time()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        **running_from(source),
    )  # fmt: skip
    peak, driver = [0], psutil.Process(proc.pid)

    def sample() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], driver.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    lines = []
    with log.open("w") as out:
        for line in proc.stdout:
            lines.append((time.monotonic() - started, line.rstrip("\n")))
            out.write(f"[{lines[-1][0]:8.1f}] {line}")
    if proc.wait() != 0:
        raise RuntimeError(f"search failed ({proc.returncode}): see {log}")
    return {
        "wall_s": time.monotonic() - started,
        "started_at": started_at,
        "ended_at": time.time(),
        "driver_peak_mb": peak[0] / 2**20,
        "lines": lines,
    }


def start_mlflow_server(root: Path, port: int) -> tuple[subprocess.Popen, str]:
    """A real `mlflow server` on 127.0.0.1 with a SQLite store, its access log in root."""
    root.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--workers", "1",
        ],
        stdout=(root / "server.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return server, uri
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no mlflow server: see {root / 'server.log'}") from None
            time.sleep(1)


def measure(
    rows: int, work: Path, port: int, source: Path | None = None, again: bool = False
) -> dict:
    """One size: the CSV, the server, the search, and what it recorded. `again`: the search
    runs on the CSV the size's first search read, whose tokenized splits datasets cached."""
    from ray.tune import ExperimentAnalysis

    from benchmarks.hpo import reported_trials, trial_ends, trial_timing
    from benchmarks.summary import overheads
    from trainable.config_file import config_from_dict

    folder = work / f"rows{rows}"
    data = folder / "data.csv"
    if not again:
        make_csv(data, rows)
    output, mlflow_root = folder / "out", folder / "mlflow"
    shutil.rmtree(mlflow_root, ignore_errors=True)  # trial_ends reads every run of the store
    server, uri = start_mlflow_server(mlflow_root, port)
    try:
        command = [sys.executable, "-m", "search.run", *SEARCH, "--data", str(data)]
        command += ["--output", str(output), "--overwrite", "--tracking-uri", uri]
        run = run_cli(command, folder / "cli.log", source)
        search = json.loads((output / "search.json").read_text())
        cfg = config_from_dict(search["config"], {"output": str(output)})
        ends = sorted(trial_ends(cfg).values())  # from the trials' MLflow runs, on the server
    finally:
        server.terminate()
        server.wait(timeout=60)
    analysis = ExperimentAnalysis(cfg.experiment_path(search["name"]))
    trials = [trial_timing(frame) for _, frame in reported_trials(analysis)]
    reports = sum(t["epochs_run"] for t in trials)
    for trial, end in zip(trials, ends, strict=False):
        trial["end"] = end  # one trial at a time: the n-th to start is the n-th to end
    requests = requests_by_path((mlflow_root / "server.log").read_text())
    metric_requests = sum(requests[path] for path in METRIC_PATHS)
    lines = timed_lines(run.pop("lines"))
    return {
        "rows": rows,
        "again": again,
        **run,
        **lines,
        "train_s": sum(t["time_train_s"] for t in trials),
        "eval_s": sum(t["time_eval_s"] for t in trials),
        **overheads(trials),
        "before_first_trial_s": min(t["start"] for t in trials) - run["started_at"],
        "after_last_trial_s": run["ended_at"] - max(t.get("end", t["last_report"]) for t in trials),
        "reports": reports,
        "bytes_per_report": bytes_per_report(output),
        "record_bytes": record_bytes(output, mlflow_root),
        "mlflow_requests": sum(requests.values()),
        "mlflow_metric_requests_per_report": metric_requests / reports if reports else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=WORK / "scale")
    parser.add_argument("--port", type=int, default=5077, help="the MLflow server's port")
    parser.add_argument("--source", type=Path, help="another checkout, whose code searches")
    parser.add_argument("--name", default="scale", help="the results' file name")
    parser.add_argument(
        "--again",
        action="store_true",
        help="search each size's file twice: the second reads its tokenized splits back",
    )
    args = parser.parse_args()
    source = args.source.resolve() if args.source else None
    results = []
    for rows, again in [(rows, again) for rows in args.rows for again in (False, True)]:
        if again and not args.again:
            continue
        results.append(measure(rows, args.out / args.name, args.port, source, again))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / f"{args.name}.md").write_text("\n".join(table(results)) + "\n")
        print("\n".join(table(results)), flush=True)


if __name__ == "__main__":
    main()
