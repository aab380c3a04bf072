"""What --resume refuses, and what it closes of a killed driver's search: the MLflow runs and
study trials it left running. (A killed driver's search on S3 storage resumed to the end:
tests/test_two_node_cluster.py.)"""

from __future__ import annotations

import mlflow
import optuna

from search.layout import STUDY_NAME
from search.tracking import ABANDONED_TAG
from tests.conftest import TINY, run_cli


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
