"""A GPU contender's records read back from disk, as `benchmarks.gpu.tables` takes them: a
search's trials from Tune and MLflow and its pick from `hpo_result.json`; the peer's from the
JSON `benchmarks.gpu.peer` rewrites after every trial. A contender stopped midway leaves part
of them: what is there is read, what is missing is named in `problems`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from search.layout import BEST_MODEL, RESULT_FILE, SEARCH_FILE
from trainable.errors import first_line

PEER_FILE = "peer.json"  # in the peer's --out folder
# What the search's CLI prints about its placement (search/run.py).
SHARING_LINE = re.compile(r"^(GPU sharing: .*|trials: \d+ at once.*)$", re.MULTILINE)


def search_record(output: Path) -> dict[str, Any]:
    """A search's trials (Tune's reports, MLflow's trial ends), and its pick once exported."""
    record: dict[str, Any] = {"trials": [], "problems": []}
    if not (output / SEARCH_FILE).is_file():
        record["problems"].append(f"no {SEARCH_FILE}: the search stopped before its trials")
        return record
    from benchmarks.hpo import trial_ends
    from trainable.config_file import config_from_dict

    search = json.loads((output / SEARCH_FILE).read_text())
    if "finished" in search:  # marked when the search had exported and reported
        record["finished_at"] = (output / SEARCH_FILE).stat().st_mtime
    cfg = config_from_dict(search["config"], {"output": str(output)})
    try:
        record["trials"] = trial_rows(cfg, search["name"])
    except Exception as exc:  # a search stopped before Tune saved its state
        record["problems"].append(f"Tune's records unreadable ({first_line(exc)})")
    try:
        ends = trial_ends(cfg)
        for trial in record["trials"]:
            if trial["trial"] in ends:
                trial["end"] = ends[trial["trial"]]
    except Exception as exc:
        record["problems"].append(f"MLflow's trial runs unreadable ({first_line(exc)})")
    exported = output / BEST_MODEL / RESULT_FILE
    if exported.is_file():
        best = json.loads(exported.read_text())
        metric = best["metric"]  # eval_f1 on the SMS data
        record["best_val_f1"] = best["validation_metrics"].get(metric)
        record["test_f1"] = best["test_metrics"].get(metric.replace("eval_", "test_", 1))
        record["hyperparameters"] = best["hyperparameters"]
    else:
        scores = [t["best_score"] for t in record["trials"] if t.get("best_score") is not None]
        record["best_val_f1"] = max(scores, default=None)
        record["problems"].append(
            "no exported model (best val F1 is the best trial's, test F1 unknown)"
        )
    return record


def trial_rows(cfg, search_name: str) -> list[dict[str, Any]]:
    """One row per trial that reported: its start, work and peak GPU memory, from Tune's results
    (the keys `benchmarks.hpo.collect` reads, plus `gpu_peak_gib` and the best score)."""
    from ray.tune import ExperimentAnalysis

    from benchmarks.hpo import reported_trials, trial_timing
    from search.selection import metric_key

    metric = metric_key(cfg.search.metric)
    analysis = ExperimentAnalysis(cfg.experiment_path(search_name))
    rows = []
    for trial, frame in reported_trials(analysis):
        scores = frame[metric] if metric in frame else None
        row = {
            "trial": trial.trial_id,
            **cfg.space.typed(trial.config),  # Tune's values, with the declared types
            **trial_timing(frame),
            "best_score": None
            if scores is None
            else float(scores.max() if cfg.search.mode == "max" else scores.min()),
        }
        if "gpu_peak_gib" in frame:
            row["gpu_peak_gib"] = float(frame["gpu_peak_gib"].max())
        rows.append(row)
    return rows


def peer_record(out: Path) -> dict[str, Any]:
    path = out / PEER_FILE
    if not path.is_file():
        return {"trials": [], "problems": [f"no {PEER_FILE}: the peer ended no trial"]}
    record = json.loads(path.read_text())
    record.setdefault("problems", [])
    if not record.get("finished"):
        # HF scores a trial by its last evaluation.
        scores = [t["last_score"] for t in record["trials"] if t.get("last_score") is not None]
        record["best_val_f1"] = max(scores, default=None)
        record["problems"].append(
            "the peer did not finish (best val F1 is over its ended trials, test F1 unknown)"
        )
    return record


def placement_lines(log: Path) -> dict[str, str | None]:
    """The search's own account of its placement: `GPU sharing: ...` and `trials: N at once`."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    found = {"gpu_sharing": None, "concurrency": None}
    for line in SHARING_LINE.findall(text):
        found["gpu_sharing" if line.startswith("GPU") else "concurrency"] = line
    return found


def trial_estimate(settings: dict[str, Any]) -> dict[str, Any]:
    """search.gpu_share's estimate of a trial's peak GPU memory for these settings, at the
    space's largest batch, from the model's shape as the search reads it."""
    from search.gpu_share import trial_peak_gib
    from search.run import load_task
    from trainable.config_file import load_config

    cfg, _, _, shape = load_task(load_config(None, settings))
    batch = cfg.space["batch_size"].largest()
    return {
        "gib": trial_peak_gib(shape, batch, cfg.model.max_length, cfg.train.precision),
        "batch_size": batch,
        "precision": cfg.train.precision,
    }
