"""Keeps checkpoint storage bounded: each finished trial's best checkpoint, of the top trials only.

Ray Train keeps a trial's best checkpoint and also its latest (for fault tolerance), so a trial
whose last epoch was not its best leaves two. Once a trial ends, neither need outlive it.
"""

from __future__ import annotations

import logging

import pyarrow.fs
from ray.tune import Callback
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

log = logging.getLogger(__name__)


class CheckpointPruner(Callback):
    def __init__(self, checkpoint_storage: str, metric: str, mode: str, keep_top_trials: int):
        self.storage = checkpoint_storage.rstrip("/")
        self.metric = metric
        self.sign = 1 if mode == "max" else -1
        self.keep = keep_top_trials
        self.best: dict[str, tuple[float, str]] = {}  # trial id → (signed score, checkpoint)
        self.ended: list[str] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        path, score = result.get(CHECKPOINT_PATH_KEY), result.get(self.metric)
        if path is None or score is None:
            return
        current = self.best.get(trial.trial_id)
        if current is None or self.sign * score > current[0]:
            self.best[trial.trial_id] = (self.sign * score, path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._trial_ended(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._trial_ended(trial.trial_id)

    def _trial_ended(self, trial_id: str) -> None:
        best = self.best.get(trial_id)
        self._delete(trial_id, keep=best[1] if best else None)
        self.ended.append(trial_id)
        ranked = sorted((t for t in self.ended if t in self.best), key=lambda t: -self.best[t][0])
        for loser in ranked[self.keep :]:
            self._delete(loser, keep=None)

    def _delete(self, trial_id: str, keep: str | None) -> None:
        fs, root = pyarrow.fs.FileSystem.from_uri(_uri(f"{self.storage}/{trial_id}"))
        keep_path = pyarrow.fs.FileSystem.from_uri(_uri(keep))[1] if keep else None
        selector = pyarrow.fs.FileSelector(root, allow_not_found=True)
        for info in fs.get_file_info(selector):
            is_checkpoint = (
                info.type == pyarrow.fs.FileType.Directory
                and info.base_name.startswith("checkpoint_")
            )
            if is_checkpoint and info.path.rstrip("/") != (keep_path or "").rstrip("/"):
                try:
                    fs.delete_dir(info.path)
                except OSError as exc:  # storage hiccups must not end the search
                    log.warning("could not delete checkpoint %s: %s", info.path, exc)


def _uri(path: str) -> str:
    return path if "://" in path else f"file://{path}"
