"""Faults injected for real: a trial that fails beside one that finishes. A search whose every
trial fails, and a training worker lost mid-trial (its whole node), are
tests/test_two_node_cluster.py's."""

from __future__ import annotations

import json

from tests.conftest import TINY, run_cli
from tests.records import assert_records_agree


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
        "--max-concurrent", "2",
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
    assert_records_agree(output)
