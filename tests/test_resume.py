"""An interrupted search (the driver killed outright, or Ctrl-C) finishes with --resume: exactly
the requested trials, every finished trial kept, one finished MLflow run per trial, nothing left
running in MLflow or the study, and the export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest

from search.layout import OPTUNA_DB, STUDY_NAME
from search.tracking import ABANDONED_TAG
from tests.conftest import ROOT, TINY, run_cli
from tests.records import assert_records_agree

TRIALS = 3  # one ends before the kill, one before the Ctrl-C, the last after both resumes


def _start(*args: str):
    return subprocess.Popen(
        [sys.executable, "-m", "search.run", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(proc, *texts: str, timeout: float = 600) -> None:
    """Reads the search's output until each text has appeared, in order."""
    deadline = time.monotonic() + timeout
    pending = list(texts)
    for line in proc.stdout:
        while pending and pending[0] in line:
            pending.pop(0)
        if not pending:
            return
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail(f"never saw {pending[0]!r}: {proc.stderr.read()[-3000:]}")


def _trial_runs(output) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("finetune-hpo")
    return client.search_runs([experiment.experiment_id], "tags.trial_name != ''")


def _ended_trials(output) -> set[str]:
    return {run.data.tags["trial_name"] for run in _trial_runs(output) if run.info.end_time}


def test_a_killed_then_interrupted_search_resumes_to_exactly_the_requested_trials(tmp_path):
    output = tmp_path / "out"
    proc = _start("--config", str(TINY), "--trials", str(TRIALS), "--output", str(output),
                  "--set", "space.epochs=[2]")  # fmt: skip
    # Killed outright as the second trial starts: its MLflow run exists, and Tune may not have
    # saved that the trial does.
    _wait_for(proc, f"1/{TRIALS} done", f"trial 2/{TRIALS} (", "started")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    ended = _ended_trials(output)
    assert len(ended) == 1

    # Resumed, then stopped with Ctrl-C once it counts two trials ended (the first included).
    proc = _start("--resume", str(output))
    _wait_for(proc, f"2/{TRIALS} done")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert f"--resume {output}" in err
    ended = _ended_trials(output)
    assert len(ended) >= 2

    resumed = run_cli("--resume", str(output))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"search finished: {TRIALS} trials" in resumed.stdout
    search = json.loads((output / "search.json").read_text())
    assert search["finished"]["trials"] == TRIALS
    runs = _trial_runs(output)
    finished = [run.data.tags["trial_name"] for run in runs if run.info.status == "FINISHED"]
    assert len(finished) == TRIALS == len(set(finished)), finished  # none lost, none twice
    assert ended <= set(finished)
    # A trial Tune never saved ran again as a new one; its run is ended and says why.
    others = [run for run in runs if run.info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" and ABANDONED_TAG in r.data.tags for r in others)
    assert len(others) == resumed.stdout.count("never saved by Tune")
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{output / OPTUNA_DB}")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert (output / "best_model" / "model.safetensors").is_file()
    assert_records_agree(output)

    again = run_cli("--resume", str(output))
    assert again.returncode == 0
    assert "already finished" in again.stdout and "nothing to do" in again.stdout


def test_resume_refuses_a_folder_without_a_search_and_config_changes(tmp_path):
    proc = run_cli("--resume", str(tmp_path))
    assert proc.returncode == 2 and "no search to resume" in proc.stderr
    proc = run_cli("--resume", str(tmp_path), "--trials", "5")
    assert proc.returncode == 2 and "own config" in proc.stderr


def test_runs_and_study_trials_a_killed_driver_left_running_are_closed(tmp_path):
    # What a driver killed between starting a trial and Tune saving that it had leaves: the
    # trial's MLflow run and its Optuna trial, both running, and a finished trial beside them.
    from search.optuna_search import fail_abandoned_trials
    from search.parent_run import open_search_run
    from search.tracking import end_abandoned_runs, mlflow_callback
    from trainable.config_file import load_config
    from trainable.task import resolve

    cfg = resolve(load_config(TINY, {"output": str(tmp_path)}), ["ham", "spam"])
    parent = open_search_run(cfg, "s1")
    tags = mlflow_callback(cfg, "s1", parent).tags
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    experiment_id = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    done, left = (
        client.create_run(experiment_id, tags={**tags, "trial_name": name}).info.run_id
        for name in ("run_trial_a", "run_trial_b")
    )
    client.set_terminated(done, "FINISHED")
    other_search = client.create_run(experiment_id, tags={"search": "s0", "trial_name": "x"})
    study = optuna.create_study(study_name=STUDY_NAME, storage=cfg.optuna_uri)
    study.tell(study.ask(), 0.5)
    study.ask()

    assert end_abandoned_runs(cfg, "s1") == 1
    assert fail_abandoned_trials(cfg.optuna_uri) == 1

    status = {run_id: client.get_run(run_id).info.status for run_id in (done, left, parent)}
    assert status == {done: "FINISHED", left: "KILLED", parent: "RUNNING"}
    assert ABANDONED_TAG in client.get_run(left).data.tags
    assert client.get_run(other_search.info.run_id).info.status == "RUNNING"  # not this search's
    states = [
        t.state for t in optuna.load_study(study_name=STUDY_NAME, storage=cfg.optuna_uri).trials
    ]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
