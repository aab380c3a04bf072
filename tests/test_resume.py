"""A search whose driver was killed outright finishes with --resume: exactly
the requested trials, every finished trial kept, one finished MLflow run per trial, nothing left
running in MLflow or the study, and the export. The search keeps its Tune state and
checkpoints in an S3 bucket (the loopback endpoint of tests/conftest.py), as a cluster's does."""

from __future__ import annotations

import json

import mlflow
import optuna

from search.layout import OPTUNA_DB, RESULT_FILE, STUDY_NAME
from search.tracking import ABANDONED_TAG
from tests.conftest import RESUMED_TRIALS, TINY, run_cli, trial_runs
from tests.records import assert_records_agree


def test_a_killed_search_on_s3_resumes_to_exactly_the_requested_trials(
    resumed_s3_search, s3, monkeypatch
):
    search, trials = resumed_s3_search, RESUMED_TRIALS
    s3.use(monkeypatch)  # the records are read from the bucket
    output = search.output
    assert len(search.ended_after_kill) == 1

    resumed = search.resumed
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"search finished: {trials} trials" in resumed.stdout
    record = json.loads((output / "search.json").read_text())
    assert record["finished"]["trials"] == trials
    runs = trial_runs(output)
    finished = [run.data.tags["trial_name"] for run in runs if run.info.status == "FINISHED"]
    assert len(finished) == trials == len(set(finished)), finished  # none lost, none twice
    assert search.ended_after_kill <= set(finished)
    # A trial Tune never saved ran again as a new one; its run is ended and says why.
    others = [run for run in runs if run.info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" and ABANDONED_TAG in r.data.tags for r in others)
    assert len(others) == resumed.stdout.count("never saved by Tune")
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{output / OPTUNA_DB}")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert (output / "best_model" / "model.safetensors").is_file()
    assert_records_agree(output)
    exported = json.loads((output / "best_model" / RESULT_FILE).read_text())
    assert exported["checkpoint"].startswith(f"{search.storage}/{record['name']}/checkpoints/")
    assert exported["gain_over_defaults"] is not None  # the defaults' checkpoint, from the bucket

    again = run_cli("--resume", str(output), env=s3.env)
    assert again.returncode == 0
    assert "already finished" in again.stdout and "nothing to do" in again.stdout


def test_an_s3_search_keeps_its_checkpoints_and_tune_state_in_the_bucket(resumed_s3_search, s3):
    """Every trial's best checkpoint, Tune's experiment state and every trial's record are in
    the bucket; nothing of Tune's is only on the local disk."""
    search = resumed_s3_search
    name = json.loads((search.output / "search.json").read_text())["name"]
    prefix = f"{search.storage.removeprefix(f's3://{s3.bucket}/')}/{name}/"
    keys = [key.removeprefix(prefix) for key in s3.keys(prefix)]
    runs = trial_runs(search.output)
    finished = [run.data.tags["trial_name"] for run in runs if run.info.status == "FINISHED"]
    assert len(finished) == RESUMED_TRIALS
    for trial_id in (trial_name.split("_")[2] for trial_name in finished):
        checkpoints = {  # folders, not Train's checkpoint_manager_snapshot.json beside them
            key.split("/")[2]
            for key in keys
            if key.startswith(f"checkpoints/{trial_id}/checkpoint_") and key.count("/") > 2
        }
        assert len(checkpoints) == 1, (trial_id, checkpoints)  # its best, pruned in the bucket
        (folder,) = {key.split("/")[0] for key in keys if key.startswith(f"run_trial_{trial_id}")}
        assert {"params.json", "result.json", "progress.csv"} <= {
            key.split("/")[1] for key in keys if key.startswith(f"{folder}/")
        }
    assert any(key.startswith("experiment_state-") for key in keys)
    assert any(key.startswith("searcher-state-") for key in keys)
    assert "tuner.pkl" in keys
    # What Tune wrote on the driver's disk was uploaded; no ray_results beside the search.
    staged = search.ray_tmpdir / "ray" / "session_latest" / "artifacts"
    (driver,) = staged.glob(f"*/{name}/driver_artifacts")
    local = {p.relative_to(driver).as_posix() for p in driver.rglob("*") if p.is_file()}
    assert local and local <= set(keys), local - set(keys)
    assert not (search.output / "ray_results").exists()


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
