"""Live progress: one line per trial event and a status line, instead of Ray's log flood."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ray.tune import Callback
from ray.tune.result import TRAINING_ITERATION

from search.optuna_search import stopped_early
from search.selection import Ranking
from trainable.errors import last_line
from trainable.hyperparameters import EPOCHS, describe


class ProgressPrinter(Callback):
    """Prints trial starts, epochs, ends and a running tally with the best score and an ETA."""

    def __init__(self, total: int, ranking: Ranking, stream: TextIO = sys.stdout):
        self.total = total
        self.ranking = ranking
        self.metric = ranking.key_name
        self.stream = stream
        self.started = time.monotonic()
        self.number: dict[str, int] = {}
        self.counts = {"finished": 0, "stopped early": 0, "errored": 0}
        self.best: tuple[dict, str] | None = None  # (the best scores, trial id)

    def on_trial_start(self, iteration, trials, trial, **info):
        if not self.number:  # a resumed search counts the trials that ended before it stopped
            self._count_ended(trials)
        self.number.setdefault(trial.trial_id, len(self.number) + 1)
        self._say(f"trial {self._name(trial)} started: {describe(trial.config)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        score = result.get(self.metric)
        if score is None:
            return
        if self.ranking.better(result, self.best[0] if self.best else None):
            self.best = (result, trial.trial_id)
        self._say(
            f"trial {self._name(trial)} epoch {result[TRAINING_ITERATION]}/"
            f"{trial.config[EPOCHS]}: {self.metric}={score:.4f} "
            f"loss={result.get('eval_loss', float('nan')):.4f}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        ran = (trial.last_result or {}).get(TRAINING_ITERATION, 0)
        outcome = _outcome(trial, errored=False)
        self.counts[outcome] += 1
        self._say(f"trial {self._name(trial)} {outcome} after {ran} epochs")
        self._status(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.counts[_outcome(trial, errored=True)] += 1
        self._say(f"trial {self._name(trial)} errored: {_error_line(trial)}")
        self._status(trials)

    def _count_ended(self, trials) -> None:
        for trial in trials:
            if trial.status in ("TERMINATED", "ERROR"):
                self.number.setdefault(trial.trial_id, len(self.number) + 1)
                self.counts[_outcome(trial, errored=trial.status == "ERROR")] += 1

    def _status(self, trials) -> None:
        done = sum(self.counts.values())
        parts = [f"{done}/{self.total} done", f"{len(self.number) - done} running"]
        parts += [f"{n} {label}" for label, n in self.counts.items()]
        if self.best is not None:
            scores, trial_id = self.best
            parts.append(f"best {self.metric}={scores[self.metric]:.4f} ({trial_id})")
        if 0 < done < self.total:
            left = (time.monotonic() - self.started) / done * (self.total - done)
            parts.append(f"~{_duration(left)} left")
        self._say(" | ".join(parts))

    def _name(self, trial) -> str:
        return f"{self.number.get(trial.trial_id, '?')}/{self.total} ({trial.trial_id})"

    def _say(self, text: str) -> None:
        elapsed = _duration(time.monotonic() - self.started)
        print(f"[{elapsed:>7}] {text}", file=self.stream, flush=True)


def _outcome(trial, errored: bool) -> str:
    if errored:
        return "errored"
    return "stopped early" if stopped_early(trial.config, trial.last_result) else "finished"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _error_line(trial) -> str:
    """The last line of the trial's error file: the exception the worker raised."""
    try:
        text = trial.get_error()
    except Exception:  # the error file may not be written yet
        text = None
    if text is None:
        return "see the trial's error.txt in the search's folder on storage"
    return last_line(text)
