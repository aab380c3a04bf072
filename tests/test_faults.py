"""Faults injected for real: a training worker killed mid-trial, and trials that all fail."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import mlflow
import psutil
import pytest

from tests.conftest import ROOT, TINY, run_cli


def _train_workers(driver_pid: int) -> list[psutil.Process]:
    """This search's Ray Train worker processes (descendants of its driver)."""
    children = psutil.Process(driver_pid).children(recursive=True)
    return [p for p in children if "RayTrainWorker" in " ".join(p.cmdline())]


def test_killed_worker_restarts_from_its_checkpoint_and_counts_each_epoch_once(tmp_path):
    output = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.run", "--config", str(TINY), "--trials", "1",
         "--output", str(output), "--set", "space.epochs=[3]", "--set", "resources.max_failures=1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if "epoch 1/3" in line:
            break
    else:
        pytest.fail(proc.stderr.read()[-3000:])
    workers = _train_workers(proc.pid)
    assert len(workers) == 1
    workers[0].send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "search finished: 1 trials" in out

    search = json.loads((output / "search.json").read_text())
    (result_file,) = (output / "ray_results" / search["name"]).glob("run_trial_*/result.json")
    epochs = [
        json.loads(line)["training_iteration"] for line in result_file.read_text().splitlines()
    ]
    assert epochs == [1, 2, 3]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("finetune-hpo").experiment_id], "tags.trial_name != ''"
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_f1")] == [1, 2, 3]


def test_when_every_trial_fails_the_search_says_why_and_exports_nothing(tmp_path):
    # A model folder whose tokenizer loads (in the driver) but whose weights are corrupt.
    from trainable.config import ModelConfig
    from trainable.model import load_model, load_tokenizer

    broken = tmp_path / "broken-model"
    cfg = ModelConfig(tiny=True)
    tokenizer = load_tokenizer(cfg)
    load_model(cfg, ["ham", "spam"], tokenizer).save_pretrained(broken)
    tokenizer.save_pretrained(broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")

    output = tmp_path / "out"
    proc = run_cli(
        "--config", str(TINY), "--trials", "1", "--output", str(output),
        "--set", f"model.name={broken}", "--set", "model.tiny=false",
        "--set", "resources.max_failures=0",  # a retry would fail the same way
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "search failed: no trial finished an epoch; 1 failed" in proc.stderr
    import pandas as pd

    for trial_id in pd.read_csv(output / "report" / "trials.csv", dtype=str)["trial"]:
        assert f"{trial_id}: " in proc.stderr  # each failed trial named with its reason
    assert "Traceback" not in proc.stderr.split("search failed:")[-1]
    assert not (output / "best_model").exists()
    table = (output / "report" / "trials.md").read_text()
    assert table.count("errored") == 1


def test_a_trial_whose_loss_turns_nan_fails_alone_and_the_search_goes_on(tmp_path):
    # The first trial's learning rate overflows the weights within a step or two, so its loss
    # becomes NaN; the second trains normally. Both come from initial_points, in that order.
    output = tmp_path / "out"
    points = (
        "[{learning_rate: 1.0e+30, batch_size: 16, epochs: 2},"
        " {learning_rate: 5.0e-4, batch_size: 16, epochs: 2}]"
    )
    proc = run_cli(
        "--config", str(TINY), "--trials", "2", "--output", str(output),
        "--set", "space.learning_rate=[1.0e-4, 1.0e+31]",
        "--set", f"search.initial_points={points}", "--set", "space.epochs=[2]",
        "--set", "resources.max_failures=0",  # a retry would overflow the same way
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "search finished: 2 trials" in proc.stdout
    import pandas as pd

    trials = pd.read_csv(output / "report" / "trials.csv", dtype=str).set_index("trial")
    assert sorted(trials["status"]) == ["errored", "finished"]
    (nan_trial,) = trials.index[trials["status"] == "errored"]
    assert float(trials.loc[nan_trial, "learning_rate"]) == 1e30
    summary = proc.stdout.split("failed trials (1):")[1]
    assert nan_trial in summary and "non-finite training loss" in summary
    record = json.loads((output / "best_model" / "hpo_result.json").read_text())
    assert record["hyperparameters"]["learning_rate"] == 5e-4
    assert record["trial_id"] != nan_trial
