"""Keeps checkpoint storage bounded: each finished trial's best checkpoint, of the top trials only.

Ray Train keeps every checkpoint of a trial while it runs (Train cannot rank by metric, then
tie-breaker); once the trial ends, this callback deletes all but its best.
"""

from __future__ import annotations

import logging

import pyarrow.fs
from ray.tune import Callback
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

from search.selection import Ranking
from trainable.hyperparameters import ran_point
from trainable.storage import resolve
from trainable.tune_record import recorded_results

log = logging.getLogger(__name__)


class CheckpointPruner(Callback):
    """Once a trial ends, keeps its best checkpoint, and only the top `keep_top_trials` ended
    trials' bests, and the best of the trial that ran `defaults` (the test split compares the
    exported model with it, search/payoff.py)."""

    def __init__(
        self,
        checkpoint_storage: str,
        ranking: Ranking,
        keep_top_trials: int,
        defaults: dict | None = None,
    ):
        # Ray reports each checkpoint by its path on this filesystem (on S3, bucket and key).
        self.fs, self.root = resolve(checkpoint_storage)
        self.ranking = ranking
        self.keep = keep_top_trials
        self.defaults = defaults
        self.best: dict[str, tuple[dict, str]] = {}  # trial id → (its best scores, checkpoint)
        self.ended: list[str] = []
        self.kept: set[str] = set()  # the defaults' trial

    def on_trial_start(self, iteration, trials, trial, **info):
        # A trial resumed after the driver went: the epochs it reported before are in its
        # record only, and its best checkpoint may be among them. Its local copy is whole:
        # Tune's own, or the stored one that RestoreRecords (listed before this) put back.
        for result in recorded_results(pyarrow.fs.LocalFileSystem(), trial.local_path):
            self._consider(trial.trial_id, result)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # A running trial is never pruned: Tune hears of a checkpoint after Ray Train has
        # written it, and by then Train may have written the next one, which is the trial's
        # latest (what a restart resumes from) though Tune has not heard of it yet.
        self._consider(trial.trial_id, result)

    def _consider(self, trial_id: str, result: dict) -> None:
        path = result.get(CHECKPOINT_PATH_KEY)
        current = self.best.get(trial_id)
        if path is not None and self.ranking.better(result, current[0] if current else None):
            self.best[trial_id] = (result, path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._trial_ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._trial_ended(trial)

    def _trial_ended(self, trial) -> None:
        trial_id = trial.trial_id
        if self.defaults and ran_point(trial.config, self.defaults):
            self.kept.add(trial_id)
        best = self.best.get(trial_id)
        self._delete(trial_id, keep={best[1]} if best else set())
        self.ended.append(trial_id)
        ranked = sorted(
            (t for t in self.ended if t in self.best),
            key=lambda t: self.ranking.key(self.best[t][0]),
            reverse=True,
        )
        for loser in ranked[self.keep :]:
            if loser not in self.kept:
                self._delete(loser, keep=set())

    def _delete(self, trial_id: str, keep: set[str]) -> None:
        kept = {path.rstrip("/") for path in keep}
        selector = pyarrow.fs.FileSelector(f"{self.root}/{trial_id}", allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            is_checkpoint = (
                info.type == pyarrow.fs.FileType.Directory
                and info.base_name.startswith("checkpoint_")
            )
            if is_checkpoint and info.path.rstrip("/") not in kept:
                try:
                    self.fs.delete_dir(info.path)
                except OSError as exc:  # storage hiccups must not end the search
                    log.warning("could not delete checkpoint %s: %s", info.path, exc)
