"""Warm workers: trials trained one after another in one Ray Train worker process train the
weights a cold trial of the same configuration (a Train run of its own) trains, and a trial
ASHA stops ends on the worker after the epoch it was stopped at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from search.layout import SEARCH_FILE
from tests.conftest import TINY, ray_actor_names, run_cli
from tests.records import assert_records_agree

# The defaults' trial, first: ASHA lets it run to the end.
FIRST = "{learning_rate: 3.0e-4, batch_size: 32, epochs: 2}"
# Trained second, in the process that trained the first; its first epoch's loss beats the
# first trial's, so ASHA lets it go on.
SECOND = "{learning_rate: 1.0e-3, batch_size: 16, epochs: 2}"
# Its first epoch's loss is the worst of the three: ASHA, ranking by eval loss from the first
# epoch on, stops it there.
STOPPED = "{learning_rate: 1.0e-4, batch_size: 32, epochs: 2}"
# After the stopped trial, in the Tune trial process that relayed it.
LAST = "{learning_rate: 5.0e-4, batch_size: 32, epochs: 1}"


def _search(output: Path, ray_tmpdir: Path, points: list[str], *settings: str) -> Path:
    proc = run_cli(
        "--config", str(TINY), "--trials", str(len(points)), "--output", str(output),
        "--max-concurrent", "1",
        "--set", f"search.initial_points=[{', '.join(points)}]",
        "--set", "search.refit=false", "--set", f"search.keep_top_trials={len(points)}",
        "--set", "resources.cpus_per_worker=1",
        *(arg for setting in settings for arg in ("--set", setting)),
        env={"RAY_TMPDIR": str(ray_tmpdir)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return output


@pytest.fixture(scope="module")
def warm_searches(tmp_path_factory, ray_tmpdir) -> tuple[Path, Path]:
    """Four trials on one warm worker, the third stopped early, and the second one's
    configuration as a cold trial."""
    root = tmp_path_factory.mktemp("warm")
    warm = _search(
        root / "warm", ray_tmpdir, [FIRST, SECOND, STOPPED, LAST],
        "search.metric=loss", "search.grace_period=1",
    )  # fmt: skip
    cold = _search(root / "cold", ray_tmpdir, [SECOND], "resources.warm_workers=false")
    return warm, cold


def _trials(output: Path) -> dict[float, dict]:
    """Learning rate → the trial's Tune rows, the weights of its kept checkpoint and the
    checkpoints its Train snapshot names."""
    search = json.loads((output / SEARCH_FILE).read_text())
    experiment = output / "ray_results" / search["name"]
    trials = {}
    for folder in experiment.glob("run_trial_*"):
        trial_id = folder.name.split("_")[2]
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
        folder = experiment / "checkpoints" / trial_id
        (weights,) = folder.glob("checkpoint_*/*/model.safetensors")
        snapshot = json.loads((folder / "checkpoint_manager_snapshot.json").read_text())
        trials[rows[-1]["config"]["learning_rate"]] = {
            "rows": rows,
            "weights": load_file(weights),
            "checkpoints": len(snapshot["checkpoint_results"]),
        }
    return trials


def test_two_trials_train_in_one_warm_process_and_match_a_cold_trial(warm_searches):
    warm, cold = (_trials(output) for output in warm_searches)
    first, second = warm[3.0e-4], warm[1.0e-3]
    pids = {row["worker_pid"] for trial in warm.values() for row in trial["rows"]}
    assert len(pids) == 1, f"the warm trials trained in processes {pids}"
    assert second["rows"][0]["loop_started_at"] > first["rows"][-1]["training_started_at"]

    reference = cold[1.0e-3]
    assert [row["eval_loss"] for row in second["rows"]] == [
        row["eval_loss"] for row in reference["rows"]
    ]
    assert second["weights"].keys() == reference["weights"].keys()
    differ = [
        name
        for name, tensor in second["weights"].items()
        if not torch.equal(tensor, reference["weights"][name])
    ]
    assert not differ, f"the warm trial's weights differ from the cold trial's in {differ}"


def test_a_trial_asha_stops_trains_no_further_on_its_warm_worker(warm_searches):
    stopped = _trials(warm_searches[0])[1.0e-4]
    assert [row["training_iteration"] for row in stopped["rows"]] == [1]
    assert stopped["checkpoints"] == 1  # its worker trained no second epoch


def test_one_tune_trial_process_relays_every_warm_trial_the_stopped_one_too(warm_searches):
    """Tune reuses a warm trial's process for the next trial (search/tuner.py), also after ASHA
    stopped it."""
    warm = _trials(warm_searches[0])
    assert len(warm) == 4 and all(trial["rows"] for trial in warm.values())
    pids = {row["pid"] for trial in warm.values() for row in trial["rows"]}
    assert len(pids) == 1, f"the warm trials were relayed by processes {pids}"


def test_a_ray_the_search_started_runs_no_preemption_watcher(warm_searches, ray_tmpdir):
    """On this machine, which nothing drains, Ray Train's runs start without the watcher of
    node drains (search/connect.py); on a cluster they keep it (tests/test_two_node_cluster.py)."""
    actors = ray_actor_names(ray_tmpdir)
    assert {"RayTrainWorker", "TrainController"} <= actors, actors
    assert "PreemptionWatcher" not in actors, actors


def test_a_warm_search_keeps_the_records_a_cold_one_keeps(warm_searches):
    assert_records_agree(warm_searches[0])
