"""A trial that trains its configuration with several seeds (`search.repeats`).

The seeds train an epoch each in turn, and after every epoch the trial reports once: their
scores averaged, so that ASHA and Optuna rank the configuration rather than one seed's luck;
their work added up; everything else (the epoch, the start times) the first seed's, whose
checkpoint is the one a search exports and whose validation predictions the trial keeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import statistics
import tempfile
from numbers import Real
from pathlib import Path

import ray.train
from transformers.trainer_utils import get_last_checkpoint

from trainable.callbacks import LastReport, StopAfterEpochs, WorkCallback
from trainable.config import Config
from trainable.reports import HF_CHECKPOINT, TrialReports
from trainable.trainer import build_trainer

# Cumulative work of one seed (trainable.callbacks.WorkCallback): the trial's is their sum.
WORK = ("time_train_s", "time_eval_s", "tokens_trained", "tokens_computed")
AVERAGED = ("loss", "grad_norm")  # besides every eval_ score
SEEDS = "seeds"
CHECKPOINT_DIR = "seed-{}"  # the later seeds' checkpoints, beside the first seed's


def spread_key(metric: str) -> str:
    """The seeds' standard deviation of `metric`: not an eval_ key, so that nothing reads it
    as a score of its own."""
    return f"seed_sd_{metric}"


def combine(reports: list[dict], metric: str) -> dict:
    """The trial's report for one epoch from each seed's report of it, in seed order."""
    combined = dict(reports[0])
    for key, value in reports[0].items():
        if isinstance(value, bool) or not isinstance(value, Real):
            continue
        values = [report[key] for report in reports]
        if key in WORK:
            combined[key] = sum(values)
        elif key in AVERAGED or key.startswith("eval_"):
            combined[key] = statistics.fmean(values)
    combined[SEEDS] = len(reports)
    combined[spread_key(metric)] = statistics.stdev(r[f"eval_{metric}"] for r in reports)
    return combined


REPORT_FILE = "report.json"  # a repeated trial's report, kept in its checkpoint


@dataclasses.dataclass
class Seed:
    cfg: Config
    output_dir: Path
    checkpoint: Path | None = None  # its last epoch's HF checkpoint
    work: dict | None = None  # WorkCallback's, carried from epoch to epoch
    report: dict | None = None


def repeated_trial(
    cfg: Config, hp: dict, splits, output_dir: str, loop_started_at: float, reports: TrialReports
) -> None:
    """search.repeats seeds of one configuration, an epoch of each in turn, reporting their
    combined scores after each epoch (so ASHA can stop all of them at once). Each seed resumes
    from its own checkpoint, optimizer, scheduler and random state included: it trains as it
    would have without the pauses. The reported checkpoint holds every seed's, the first
    seed's where a trial's checkpoint always is."""
    runs = [
        Seed(
            dataclasses.replace(cfg, seed=cfg.seed + i),
            Path(output_dir) / CHECKPOINT_DIR.format(i),
        )
        for i in range(cfg.search.repeats)
    ]
    restored = reports.restored()
    with restored.as_directory() if restored else contextlib.nullcontext() as restored_dir:
        done = 0
        if restored_dir is not None:
            report = json.loads((Path(restored_dir) / REPORT_FILE).read_text())
            if round(report["epoch"]) >= hp["epochs"]:
                reports.report(report, restored)
                return
            done = round(report["epoch"])
            for i, run in enumerate(runs):
                run.checkpoint = Path(restored_dir) / _seed_checkpoint(i)
        for epoch in range(done + 1, hp["epochs"] + 1):
            for i, run in enumerate(runs):
                work, last = WorkCallback(loop_started_at, run.work), LastReport()
                callbacks = [work, last, StopAfterEpochs(epoch)]
                trainer = build_trainer(
                    run.cfg,
                    hp,
                    splits,
                    str(run.output_dir),
                    callbacks,
                    predictions_to=reports.folder() if i == 0 else None,
                )
                trainer.train(resume_from_checkpoint=run.checkpoint and str(run.checkpoint))
                run.checkpoint = Path(get_last_checkpoint(str(run.output_dir)))
                run.work, run.report = work.work, last.metrics
            if not _report_seeds(runs, cfg.search.metric, reports):
                return


def _seed_checkpoint(i: int) -> str:
    return HF_CHECKPOINT if i == 0 else CHECKPOINT_DIR.format(i)


def _report_seeds(runs: list[Seed], metric: str, reports: TrialReports) -> bool:
    """Reports the seeds' epoch; False when the search stopped the trial there."""
    report = combine([run.report for run in runs], metric)
    with tempfile.TemporaryDirectory(prefix="seeds-") as saved:
        for i, run in enumerate(runs):
            shutil.copytree(run.checkpoint, Path(saved) / _seed_checkpoint(i))
        (Path(saved) / REPORT_FILE).write_text(json.dumps(report))
        return reports.report(report, ray.train.Checkpoint.from_directory(saved))
