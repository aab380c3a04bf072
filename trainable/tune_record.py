"""A trial's Tune record (its result.json on storage) continued across a resume.

Tune numbers a trial's reports from 1 each time its function starts and, in a new Ray session,
starts its result.json empty: a trial resumed mid-training (search.run --resume after the
driver or the head went) would lose the epochs it had reported, and ASHA would judge its next
epoch at the first rung. Here each report is numbered by its HF epoch, and the epochs that the
Train run checkpointed but the record lacks are reported before training goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs
from ray import tune
from ray.air.constants import EXPR_RESULT_FILE
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY, TuneReportCallback
from ray.tune.result import TRAINING_ITERATION

from trainable.storage import resolve, stored_text


class EpochReport(TuneReportCallback):
    """`TuneReportCallback` with each report numbered by its epoch (Tune keeps a report's own
    `training_iteration`), leaving out the epochs the record already holds: a resumed trial
    that had finished replays its last report (trainable/train_loop.py)."""

    def __init__(self, recorded: int = 0):
        super().__init__()
        self.recorded = recorded

    def after_report(self, run_context, metrics, checkpoint):
        epoch = epoch_of(metrics[0])
        if epoch is not None:
            if epoch <= self.recorded:
                return
            self.recorded = epoch
            metrics = [numbered(metrics[0], epoch), *metrics[1:]]
        super().after_report(run_context, metrics, checkpoint)


def epoch_of(report: dict) -> int | None:
    epoch = report.get("epoch")  # the HF Trainer's, in every trial report
    return round(epoch) if isinstance(epoch, (int, float)) else None


def numbered(report: dict, epoch: int) -> dict:
    """The report as Tune records it: its `training_iteration` is its epoch."""
    return {**report, TRAINING_ITERATION: epoch}


# Ray Train V2 keeps this in each run's folder: every checkpoint of the run, with the metrics
# reported beside it (ray/train/v2/_internal/constants.py, checkpoint_manager.py).
# tests/test_ray_contracts.py has Ray's CheckpointManager write one and reads it back.
TRAIN_SNAPSHOT = "checkpoint_manager_snapshot.json"


def continue_record(checkpoint_storage: str, run_name: str) -> int:
    """Reports to Tune each epoch this trial's Train run checkpointed that its Tune record (its
    result.json on storage) lacks; returns the last epoch the record then holds, 0 for a new
    trial.

    A trial resumed after the driver went (search.run --resume) has its earlier rows back
    (search.restore_records.RestoreRecords). Its Train run resumes from its last checkpoint,
    which can be later than the record's last row: the driver had sent that epoch to MLflow
    and Optuna but not yet copied its row to storage (Tune copies every
    TUNE_GLOBAL_CHECKPOINT_S, longer on slow storage). Reported here, every epoch is in every
    record once."""
    storage = tune.get_context().get_storage()  # a DeveloperAPI: Tune's storage of this trial
    rows = recorded_results(storage.storage_filesystem, storage.trial_fs_path)
    recorded = max((row.get(TRAINING_ITERATION, 0) for row in rows), default=0)
    for report in sorted(
        _train_reports(checkpoint_storage, run_name), key=lambda report: epoch_of(report) or 0
    ):
        epoch = epoch_of(report)
        if epoch is not None and epoch > recorded:
            tune.report(numbered(report, epoch))
            recorded = epoch
    return recorded


def _train_reports(checkpoint_storage: str, run_name: str) -> list[dict]:
    """The metrics of each checkpoint of the Train run `run_name`, with the checkpoint's path as
    TuneReportCallback adds it; none for a run not started. A snapshot in a shape this code does
    not know (a Ray upgrade) stops the trial rather than resume it without its epochs."""
    fs, run_dir = resolve(f"{checkpoint_storage.rstrip('/')}/{run_name}")
    text = stored_text(fs, f"{run_dir}/{TRAIN_SNAPSHOT}")
    if not text:
        return []
    try:
        return [
            {
                **result["metrics"],
                CHECKPOINT_PATH_KEY: Path(run_dir, result["checkpoint_dir_name"]).as_posix(),
            }
            for result in json.loads(text)["checkpoint_results"]
        ]
    except KeyError as exc:
        raise RuntimeError(
            f"{run_dir}/{TRAIN_SNAPSHOT} has no {exc}: Ray Train changed its checkpoint manager's "
            "snapshot (_CheckpointManagerState in ray/train/v2/_internal/execution/checkpoint/"
            "checkpoint_manager.py); read its new fields in trainable/tune_record.py"
        ) from None


def recorded_results(fs: pyarrow.fs.FileSystem, trial_fs_path: str) -> list[dict]:
    """The rows of a trial's Tune record (result.json) in its folder on `fs`; none for a new
    trial."""
    text = complete_lines(stored_text(fs, f"{trial_fs_path}/{EXPR_RESULT_FILE}") or "")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def complete_lines(text: str) -> str:
    """`text` up to its last newline: Tune copies a trial's files to storage while it writes
    them, so a stored copy can end in a row cut short."""
    return text[: text.rfind("\n") + 1]
