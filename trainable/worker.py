"""The functions Ray Train runs on each worker.

This module imports neither torch's training stack nor transformers: the Tune trial process
builds a Ray Train trainer around `train_loop_per_worker` and never trains, so it need not pay
for those imports. The worker imports the training code when it starts.
"""

from __future__ import annotations

from typing import Any

from trainable.work import WORK_KEY


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One trial, or the refit: a Ray Train run of its own."""
    from trainable.reports import TrainRunReports
    from trainable.train_loop import run

    run(loop_config[WORK_KEY], TrainRunReports())


def slot_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """A warm worker: trial after trial, as the search's dispatcher hands them out."""
    from trainable.slot import serve

    serve(loop_config[WORK_KEY])
