"""A trial's reports reach a real `mlflow server` one request each, whatever the number of
classes: counted in the server's own access log. The whole search's requests are counted on the
shared search (tests/test_run.py)."""

from __future__ import annotations

import os
import time

import mlflow
import numpy as np
import pytest
from ray.tune.experiment import Trial

from search.tracking import SEARCH_TAG, ResumableMLflowLoggerCallback
from tests.records import mlflow_requests
from trainable.metrics import PER_CLASS, class_key


@pytest.fixture
def server(mlflow_server, monkeypatch):
    """The server, and MLflow's global URIs (which the callback's setup() sets) put back after."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    yield mlflow_server
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _requests_during(server_log, action) -> list[str]:
    """The requests the server logs while `action` runs (its access lines may trail a little)."""
    start = server_log.stat().st_size
    action()
    seen, deadline = None, time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(server_log) as log:
            log.seek(start)
            requests = mlflow_requests(log.read())
        if requests and requests == seen:
            return requests
        seen = requests
        time.sleep(0.5)
    return seen or []


def test_a_report_at_50_classes_is_one_request_and_mlflow_splits_larger_ones(server):
    uri, root = server
    # A 50-class evaluation's report, as a trial sends it: precision, recall and F1 of each
    # class, the overall scores, the epoch's work.
    rng = np.random.default_rng(0)
    report = {
        f"eval_{name}_{class_key(f'class {i}')}": rng.random()
        for name in PER_CLASS
        for i in range(50)
    }
    overall = ("loss", "accuracy", "macro_f1", "weighted_f1", "mcc", "runtime")
    report |= {f"eval_{name}": rng.random() for name in overall}
    report |= {"training_iteration": 1, "epoch": 1.0, "time_train_s": 9.5, "trial_id": "fifty"}
    assert len(report) > 150  # precision, recall and F1 of each class, and the rest

    callback = ResumableMLflowLoggerCallback(
        tracking_uri=uri, experiment_name="batches", tags={SEARCH_TAG: "b"}, save_artifact=False
    )
    callback.setup()
    trial = Trial("train", config={"learning_rate": 1e-3, "batch_size": 16}, stub=True)
    assert (
        _requests_during(root / "server.log", lambda: callback.log_trial_start(trial)).count(
            "runs/log-batch"
        )
        == 1
    )  # both params in one
    requests = _requests_during(
        root / "server.log", lambda: callback.log_trial_result(1, trial, report)
    )
    assert requests == ["runs/log-batch"]
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(callback._trial_runs[trial])
    assert run.data.params == {"learning_rate": "0.001", "batch_size": "16"}
    numbers = {k: v for k, v in report.items() if isinstance(v, float | int)}
    assert run.data.metrics == pytest.approx(numbers)

    # 2,500 metrics: MLflow's client splits the batch at the server's 1,000-metric limit.
    big = {f"m{i}": float(i) for i in range(2500)} | {"training_iteration": 2}
    requests = _requests_during(
        root / "server.log", lambda: callback.log_trial_result(2, trial, big)
    )
    assert requests == ["runs/log-batch"] * 3
