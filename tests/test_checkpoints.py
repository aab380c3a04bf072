from __future__ import annotations

from types import SimpleNamespace

import pyarrow.fs
import pytest

from search.checkpoints import CheckpointPruner
from search.selection import Ranking
from trainable.storage import resolve


def _trial(storage, trial_id, scores, metric="eval_f1", config=None):
    """A trial and its results, one per epoch; each result's checkpoint folder is written as
    the result is read, as Ray Train persists a checkpoint before reporting it, and named as
    Ray reports it: by its path on the storage's filesystem (bucket and key on S3). A score is
    a metric value or a (metric, loss) pair."""
    fs, root = resolve(str(storage))

    def results():
        for epoch, score in enumerate(scores, start=1):
            path = f"{root}/{trial_id}/checkpoint_{epoch}"
            fs.create_dir(f"{path}/checkpoint")
            with fs.open_output_stream(f"{path}/checkpoint/model.safetensors") as out:
                out.write(b"x")
            value, loss = score if isinstance(score, tuple) else (score, 0.1)
            yield {"eval_loss": loss, metric: value, "checkpoint_path": path}

    return SimpleNamespace(trial_id=trial_id, config=config or {}), results()


def _left(storage):
    fs, root = resolve(str(storage))
    found = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
    return sorted(
        info.path.removeprefix(f"{root}/")
        for info in found
        if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_")
    )


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, monkeypatch):
    """A folder, or a prefix in the loopback S3 bucket."""
    if request.param == "local":
        return str(tmp_path)
    s3 = request.getfixturevalue("s3")
    s3.use(monkeypatch)
    return f"s3://{s3.bucket}/pruner/{tmp_path.name}"


def test_ended_trials_keep_their_best_checkpoint_and_only_the_top_trials_keep_any(storage):
    pruner = CheckpointPruner(storage, Ranking("f1", "max"), keep_top_trials=2)
    for trial_id, scores in [("a", [0.5, 0.9, 0.7]), ("b", [0.6]), ("c", [0.8, 0.95])]:
        trial, results = _trial(storage, trial_id, scores)
        for result in results:
            pruner.on_trial_result(0, [], trial, result)
        pruner.on_trial_complete(0, [], trial)
    pruner.on_experiment_end([])  # after Tune's final save
    assert _left(storage) == ["a/checkpoint_2", "c/checkpoint_2"]


def test_running_and_errored_trials_are_never_touched_and_min_mode_ranks_low_first(tmp_path):
    pruner = CheckpointPruner(str(tmp_path), Ranking("loss", "min"), keep_top_trials=1)
    done, done_results = _trial(tmp_path, "done", [0.3, 0.2], metric="eval_loss")
    running, running_results = _trial(tmp_path, "running", [0.7, 0.9, 0.8], metric="eval_loss")
    for trial, results in ((done, done_results), (running, running_results)):
        for result in results:
            pruner.on_trial_result(0, [], trial, result)
    # Train has written a checkpoint Tune has not heard of yet: it must survive too.
    (tmp_path / "running" / "checkpoint_4" / "checkpoint").mkdir(parents=True)
    errored, errored_results = _trial(tmp_path, "errored", [0.5, 0.6], metric="eval_loss")
    for result in errored_results:
        pruner.on_trial_result(0, [], errored, result)
    pruner.on_trial_error(0, [], errored)  # --resume restarts it from its last checkpoint
    pruner.on_trial_complete(0, [], done)
    pruner.on_experiment_end([])
    assert _left(tmp_path) == [
        "done/checkpoint_2",
        "errored/checkpoint_1",
        "errored/checkpoint_2",
        "running/checkpoint_1",
        "running/checkpoint_2",
        "running/checkpoint_3",
        "running/checkpoint_4",
    ]


def test_equal_metric_values_keep_the_lower_loss_not_the_later_checkpoint(tmp_path):
    pruner = CheckpointPruner(str(tmp_path), Ranking("f1", "max", "loss"), keep_top_trials=1)
    trial, results = _trial(tmp_path, "t", [(0.9, 0.05), (0.9, 0.20), (0.8, 0.01)])
    for result in results:
        pruner.on_trial_result(0, [], trial, result)
    pruner.on_trial_complete(0, [], trial)
    pruner.on_experiment_end([])
    assert _left(tmp_path) == ["t/checkpoint_1"]


def test_the_defaults_trial_keeps_its_best_checkpoint_outside_the_top(tmp_path):
    defaults = {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3}
    pruner = CheckpointPruner(str(tmp_path), Ranking("f1", "max"), 1, defaults=defaults)
    for trial_id, scores, config in [
        ("defaults", [0.5, 0.7], {**defaults, "other": 1}),
        ("better", [0.9], {**defaults, "learning_rate": 1e-4}),
        ("worse", [0.6], {}),
    ]:
        trial, results = _trial(tmp_path, trial_id, scores, config=config)
        for result in results:
            pruner.on_trial_result(0, [], trial, result)
        pruner.on_trial_complete(0, [], trial)
    pruner.on_experiment_end([])
    assert _left(tmp_path) == ["better/checkpoint_1", "defaults/checkpoint_2"]


def test_checkpoints_go_once_tunes_saved_state_records_the_end_and_a_restore_finishes_it(tmp_path):
    # Ray Train refuses to restore a run whose snapshot names a deleted checkpoint, and Tune
    # restores a trial whose end its saved state lacks: a driver killed between a trial's end
    # and Tune's next save must find every checkpoint of that trial.
    pruner = CheckpointPruner(str(tmp_path), Ranking("f1", "max"), keep_top_trials=1)
    everything = ["a/checkpoint_1", "a/checkpoint_2", "b/checkpoint_1"]
    for trial_id, scores in [("a", [0.5, 0.9]), ("b", [0.6])]:
        trial, results = _trial(tmp_path, trial_id, scores)
        for result in results:
            pruner.on_trial_result(0, [], trial, result)
        pruner.on_trial_complete(0, [], trial)
    assert _left(tmp_path) == everything  # Tune has not saved that they ended
    state = pruner.get_state()  # the save that records both ends, uploaded after this call
    assert _left(tmp_path) == everything
    # A driver killed now: the restored pruner finishes what the saved state allows.
    restored = CheckpointPruner(str(tmp_path), Ranking("f1", "max"), keep_top_trials=1)
    restored.set_state(state)
    assert _left(tmp_path) == ["a/checkpoint_2"]
    # It still ranks the trials that ended before: a worse one loses its checkpoints.
    trial, results = _trial(tmp_path, "c", [0.7])
    for result in results:
        restored.on_trial_result(0, [], trial, result)
    restored.on_trial_complete(0, [], trial)
    restored.get_state()
    assert _left(tmp_path) == ["a/checkpoint_2", "c/checkpoint_1"]
    restored.get_state()  # the next save: the previous one is in storage
    assert _left(tmp_path) == ["a/checkpoint_2"]
