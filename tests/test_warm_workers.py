"""Warm workers: trials trained one after another in one Ray Train worker process train the
weights a cold trial of the same configuration (a Train run of its own) trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from search.layout import SEARCH_FILE
from tests.conftest import TINY, run_cli
from tests.records import assert_records_agree

FIRST = "{learning_rate: 1.0e-3, batch_size: 16, epochs: 2}"
SECOND = "{learning_rate: 3.0e-4, batch_size: 32, epochs: 2}"


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
def searches(tmp_path_factory, ray_tmpdir) -> tuple[Path, Path]:
    """Two trials on one warm worker, and the second one's configuration as a cold trial."""
    root = tmp_path_factory.mktemp("warm")
    warm = _search(root / "warm", ray_tmpdir, [FIRST, SECOND])
    cold = _search(root / "cold", ray_tmpdir, [SECOND], "resources.warm_workers=false")
    return warm, cold


def _trials(output: Path) -> dict[float, dict]:
    """Learning rate → the trial's last Tune row and the weights of its kept checkpoint."""
    search = json.loads((output / SEARCH_FILE).read_text())
    experiment = output / "ray_results" / search["name"]
    trials = {}
    for folder in experiment.glob("run_trial_*"):
        trial_id = folder.name.split("_")[2]
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
        (weights,) = (experiment / "checkpoints" / trial_id).glob("checkpoint_*/*/model.safetensors")
        trials[rows[-1]["config"]["learning_rate"]] = {"rows": rows, "weights": load_file(weights)}
    return trials


def test_two_trials_train_in_one_warm_process_and_match_a_cold_trial(searches):
    warm, cold = (_trials(output) for output in searches)
    first, second = warm[1.0e-3], warm[3.0e-4]
    pids = {row["worker_pid"] for trial in (first, second) for row in trial["rows"]}
    assert len(pids) == 1, f"the warm trials trained in processes {pids}"
    assert second["rows"][0]["loop_started_at"] > first["rows"][-1]["training_started_at"]

    reference = cold[3.0e-4]
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


def test_a_warm_search_keeps_the_records_a_cold_one_keeps(searches):
    warm, _ = searches
    assert_records_agree(warm)
    experiment = next((warm / "ray_results").iterdir())
    snapshots = sorted(experiment.glob("checkpoints/*/checkpoint_manager_snapshot.json"))
    assert len(snapshots) == 2, snapshots
