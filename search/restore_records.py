"""Tune's Callback that gives a resumed trial its record back (trainable/tune_record.py
continues it)."""

from __future__ import annotations

from pathlib import Path

from ray.air.constants import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE
from ray.tune import Callback

from trainable.storage import stored_text
from trainable.tune_record import complete_lines


class RestoreRecords(Callback):
    """Gives a resumed trial its Tune record back before Tune's loggers append to it.

    Tune writes each trial's result.json and progress.csv in the driver's Ray session folder
    and copies them to the trial's folder on storage. For a resumed trial it fetches them back
    only when the trial has a Tune checkpoint (ray/tune/logger/logger.py,
    LoggerCallback._restore_from_remote), which these trials never have: Ray Train's
    checkpoints reach Tune as a path in the metrics. A search resumed in a new Ray session (a
    new head, or a local Ray that went with its killed driver) would start both files empty and
    then overwrite the stored ones. Tune adds its loggers after the callbacks given to it
    (ray/tune/utils/callback.py), so this copies the stored rows back first."""

    def on_trial_start(self, iteration, trials, trial, **info):
        for name in (EXPR_RESULT_FILE, EXPR_PROGRESS_FILE):
            local = Path(trial.local_path, name)
            if local.is_file() and local.stat().st_size:
                continue  # the same Ray session: Tune appends to its own copy
            stored = complete_lines(
                stored_text(trial.storage.storage_filesystem, f"{trial.path}/{name}") or ""
            )
            if stored:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(stored)
