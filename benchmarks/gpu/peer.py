"""The GPU benchmark's in-process peer: HF's hyperparameter_search, each trial timed.

transformers' `Trainer.hyperparameter_search(backend="optuna")` as benchmarks.peer runs it on
the CPU, with the GPU benchmark's settings, each trial timed as a search's trials are.

    python -m benchmarks.gpu.peer --out DIR --set search.trials=12 --set ...   # by search.py

`--set` takes the search's `key=value` overrides, so the peer's config is the searches' own.
A trial runs from its model_init call to its end (on_train_end, also called for a pruned
trial); WorkCallback adds its time inside training steps and evaluation to each evaluation.
`<out>/peer.json` is rewritten after every trial, so a peer stopped at its time budget still
leaves the trials it ended.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForSequenceClassification,
    TrainerCallback,
)

from benchmarks.common import score_on_test
from benchmarks.gpu.records import PEER_FILE
from benchmarks.peer import peer_search, peer_trainer
from search.run import load_task
from search.selection import metric_key
from trainable.callbacks import WorkCallback
from trainable.config_file import load_config, parse_override
from trainable.model import load_model, load_tokenizer


class TrialClock(TrainerCallback):
    """One row per trial, in the shape benchmarks.gpu.records reads a search's trials in."""

    def __init__(self, record: Path, metric: str, trials: int):
        self.record, self.metric, self.trials = record, metric, trials
        self.rows: list[dict[str, Any]] = []
        self.model_init_at = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            # The last trial's model and optimizer are gone: the peak from here is this trial's.
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.current = {
            "trial": len(self.rows),  # Optuna's trial number, which HF calls run_id
            "learning_rate": args.learning_rate,
            "batch_size": args.per_device_train_batch_size,
            "epochs": int(args.num_train_epochs),
            "start": self.model_init_at,
            "evals": [],
        }

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # WorkCallback, listed before this one, has added the trial's work to `metrics`.
        self.current["evals"].append(
            {
                "time": time.time(),
                "score": metrics[self.metric],
                **{k: metrics.get(k) for k in ("time_train_s", "time_eval_s", "gpu_peak_gib")},
            }
        )

    def on_train_end(self, args, state, control, **kwargs):
        row, evals = self.current, self.current["evals"]
        row["end"] = time.time()
        if evals:
            last = evals[-1]
            row.update(
                last_report=last["time"],
                epochs_run=len(evals),
                time_train_s=last["time_train_s"] or 0.0,
                time_eval_s=last["time_eval_s"] or 0.0,
                best_score=max(e["score"] for e in evals),
                last_score=last["score"],
            )
            peaks = [e["gpu_peak_gib"] for e in evals if e["gpu_peak_gib"] is not None]
            if peaks:
                row["gpu_peak_gib"] = max(peaks)
        self.rows.append(row)
        self.write({"finished": False})
        print(
            f"peer: trial {len(self.rows)}/{self.trials} ended after {len(evals)} epoch(s) in "
            f"{row['end'] - row['start']:.0f} s, {self.metric}={row.get('last_score', 0):.4f}",
            flush=True,
        )

    def write(self, outcome: dict[str, Any]) -> None:
        partial = self.record.with_suffix(".partial")
        partial.write_text(json.dumps({**outcome, "trials": self.rows}, indent=2) + "\n")
        partial.replace(self.record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=lambda p: Path(p).resolve(), required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = dict(parse_override(text) for text in args.overrides)
    cfg, _, splits, _ = load_task(load_config(None, overrides))
    tokenizer = load_tokenizer(cfg.model)
    metric = metric_key(cfg.search.metric)
    clock = TrialClock(args.out / PEER_FILE, metric, cfg.search.trials)
    scratch = args.out / "peer-trials"

    def model_init(trial=None):
        clock.model_init_at = time.time()
        return load_model(cfg.model, cfg.data.labels, tokenizer)

    trainer = peer_trainer(
        cfg,
        tokenizer,
        splits,
        scratch,
        model_init=model_init,
        callbacks=[WorkCallback(), clock],
        use_cpu=False,  # the CPU peer's settings, on the GPU
        bf16=cfg.train.precision == "bf16",
        fp16=cfg.train.precision == "fp16",
    )
    best = peer_search(trainer, cfg)
    (checkpoint,) = sorted(Path(scratch, f"run-{best.run_id}").glob("checkpoint-*"))
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    test = score_on_test(model, tokenizer, splits["test"], cfg, cfg.train.eval_batch_size)
    shutil.rmtree(scratch, ignore_errors=True)
    # HF scores a trial by its last evaluation.
    (picked,) = [row for row in clock.rows if row["trial"] == int(best.run_id)]
    clock.write(
        {
            "finished": True,
            "hyperparameters": best.hyperparameters,
            "objective": best.objective,
            "best_val_f1": picked.get("last_score"),
            "test_f1": test.get(metric.replace("eval_", "test_", 1)),
            "test_metrics": test,
        }
    )
    print(f"peer: done, best val {metric}={picked.get('last_score')}", flush=True)


if __name__ == "__main__":
    main()
