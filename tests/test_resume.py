"""An interrupted search (Ctrl-C, or the driver killed outright) finishes with --resume: exactly
the requested trials, every finished trial kept, one MLflow run per trial, and the export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from tests.conftest import ROOT, TINY, run_cli

TRIALS = 2  # one ends before the interruption, the other after the resume


def _start(output):
    return subprocess.Popen(
        [sys.executable, "-m", "search.run", "--config", str(TINY), "--trials", str(TRIALS),
         "--output", str(output), "--set", "space.epochs=[2]"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(proc, text: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail(f"never saw {text!r}: {proc.stderr.read()[-3000:]}")


def _trial_runs(output) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("finetune-hpo")
    return client.search_runs([experiment.experiment_id], "tags.trial_name != ''")


def _assert_finished(output, ended_before: set[str]):
    search = json.loads((output / "search.json").read_text())
    assert search["finished"]["trials"] == TRIALS
    runs = _trial_runs(output)
    names = [run.data.tags["trial_name"] for run in runs]
    assert len(names) == TRIALS == len(set(names)), names  # none lost, none duplicated
    assert all(run.info.status == "FINISHED" for run in runs)
    assert ended_before <= set(names)
    assert (output / "best_model" / "model.safetensors").is_file()


def _ended_trials(output) -> set[str]:
    return {run.data.tags["trial_name"] for run in _trial_runs(output) if run.info.end_time}


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_search_resumes_to_exactly_the_requested_trials(how, tmp_path):
    output = tmp_path / "out"
    proc = _start(output)
    _wait_for(proc, f"1/{TRIALS} done")
    if how == "sigint":
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 130, err[-3000:]
        assert f"--resume {output}" in err
    else:
        time.sleep(5)  # let Tune save its state after the first trial ended
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    ended = _ended_trials(output)
    assert len(ended) >= 1

    resumed = run_cli("--resume", str(output))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"search finished: {TRIALS} trials" in resumed.stdout
    _assert_finished(output, ended)

    again = run_cli("--resume", str(output))
    assert again.returncode == 0
    assert "already finished" in again.stdout and "nothing to do" in again.stdout


def test_resume_refuses_a_folder_without_a_search_and_config_changes(tmp_path):
    proc = run_cli("--resume", str(tmp_path))
    assert proc.returncode == 2 and "no search to resume" in proc.stderr
    proc = run_cli("--resume", str(tmp_path), "--trials", "5")
    assert proc.returncode == 2 and "own config" in proc.stderr
