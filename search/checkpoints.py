"""Keeps checkpoint storage bounded: each finished trial's best checkpoint, of the top trials only.

Ray Train keeps every checkpoint of a trial while it runs (Train cannot rank by metric, then
tie-breaker); once the trial ends, this callback deletes all but its best.

A trial's checkpoints go only once Tune's saved experiment state records that the trial ended.
Tune saves that state every TUNE_GLOBAL_CHECKPOINT_S seconds; a driver killed in between comes
back with the trial still running, and Ray Train refuses to restore a run whose snapshot names a
deleted checkpoint ("The run snapshot contains a reference to a checkpoint that does not exist
anymore"), which would fail a trial that had finished.
"""

from __future__ import annotations

import logging

import pyarrow.fs
from ray.tune import Callback
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.result import TRAINING_ITERATION

from search.selection import Ranking
from trainable.hyperparameters import ran_point
from trainable.storage import resolve
from trainable.tune_record import recorded_results

log = logging.getLogger(__name__)


class CheckpointPruner(Callback):
    """Once a trial finishes, keeps its best checkpoint, and only the top `keep_top_trials`
    finished trials' bests, and the best of the trial that ran `defaults` (the test split
    compares the exported model with it, search/payoff.py)."""

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
        # Deletions waiting for Tune's state to record their trials' ends: decided since Tune
        # last saved it (`pending`), and decided before that save (`saved`), which storage holds
        # once that save's upload is done. Each is (trial id, checkpoints to keep).
        self.pending: list[tuple[str, list[str]]] = []
        self.saved: list[tuple[str, list[str]]] = []

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
            kept = (*self.ranking.keys, TRAINING_ITERATION)
            scores = {key: result[key] for key in kept if key in result}
            self.best[trial_id] = (scores, path)

    def best_of(self, trial_ids) -> tuple[str, dict] | None:
        """Of `trial_ids`, the trial whose best evaluation with a checkpoint ranks first, and
        that evaluation's scores and epoch (TRAINING_ITERATION); None when none has one."""
        bests = [(t, self.best[t][0]) for t in trial_ids if t in self.best]
        return max(bests, key=lambda best: self.ranking.key(best[1]), default=None)

    # An errored trial keeps every checkpoint: `--resume` restarts it from its last, and Ray
    # Train restores a run only with every checkpoint its snapshot names.
    def on_trial_complete(self, iteration, trials, trial, **info):
        trial_id = trial.trial_id
        if self.defaults and ran_point(trial.config, self.defaults):
            self.kept.add(trial_id)
        best = self.best.get(trial_id)
        self.pending.append((trial_id, [best[1]] if best else []))
        if trial_id not in self.ended:  # a restored trial may end twice
            self.ended.append(trial_id)
        ranked = sorted(
            (t for t in self.ended if t in self.best),
            key=lambda t: self.ranking.key(self.best[t][0]),
            reverse=True,
        )
        for loser in ranked[self.keep :]:
            if loser not in self.kept:
                self.pending.append((loser, []))

    def get_state(self) -> dict:
        # Tune calls this as it writes its experiment state, before uploading it. The previous
        # save, which recorded the ends of `saved`, has had a whole period to upload (a few
        # files; Tune warns when an upload takes over 30 s).
        self._delete_all(self.saved)
        self.saved, self.pending = self.pending, []
        return {
            "best": self.best, "ended": self.ended, "kept": sorted(self.kept),
            "saved": self.saved,
        }  # fmt: skip

    def set_state(self, state: dict) -> None:
        # The restored experiment state records the ends of the deletions saved with it.
        self.best, self.ended, self.kept = state["best"], state["ended"], set(state["kept"])
        self._delete_all(state["saved"])

    def on_experiment_end(self, trials, **info):
        # Tune has saved its final state and waited for the upload.
        self._delete_all(self.saved + self.pending)
        self.saved, self.pending = [], []

    def _delete_all(self, deletions: list[tuple[str, list[str]]]) -> None:
        for trial_id, keep in deletions:
            self._delete(trial_id, keep=set(keep))

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
