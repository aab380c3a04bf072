from __future__ import annotations

from types import SimpleNamespace

from search.checkpoints import CheckpointPruner


def _trial(storage, trial_id, scores):
    """A trial's Train run folder with one checkpoint per epoch; returns its results."""
    results = []
    for epoch, score in enumerate(scores, start=1):
        path = storage / trial_id / f"checkpoint_{epoch}"
        (path / "checkpoint").mkdir(parents=True)
        (path / "checkpoint" / "model.safetensors").write_bytes(b"x")
        results.append({"score": score, "checkpoint_path": str(path)})
    return SimpleNamespace(trial_id=trial_id), results


def _left(storage):
    return sorted(p.relative_to(storage).as_posix() for p in storage.glob("*/checkpoint_*"))


def test_ended_trials_keep_their_best_checkpoint_and_only_the_top_trials_keep_any(tmp_path):
    pruner = CheckpointPruner(str(tmp_path), "score", "max", keep_top_trials=2)
    for trial_id, scores in [("a", [0.5, 0.9, 0.7]), ("b", [0.6]), ("c", [0.8, 0.95])]:
        trial, results = _trial(tmp_path, trial_id, scores)
        for result in results:
            pruner.on_trial_result(0, [], trial, result)
        pruner.on_trial_complete(0, [], trial)
    assert _left(tmp_path) == ["a/checkpoint_2", "c/checkpoint_2"]


def test_running_trials_are_never_touched_and_min_mode_ranks_low_first(tmp_path):
    pruner = CheckpointPruner(str(tmp_path), "loss", "min", keep_top_trials=1)
    done, done_results = _trial(tmp_path, "done", [0.3, 0.2])
    running, running_results = _trial(tmp_path, "running", [0.9, 0.8])
    for result in done_results:
        pruner.on_trial_result(0, [], done, {"loss": result["score"], **result})
    for result in running_results:
        pruner.on_trial_result(0, [], running, {"loss": result["score"], **result})
    pruner.on_trial_error(0, [], done)
    assert _left(tmp_path) == ["done/checkpoint_2", "running/checkpoint_1", "running/checkpoint_2"]
