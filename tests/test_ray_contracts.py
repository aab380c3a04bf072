"""What finetune-hpo relies on in Ray 2.60 where Ray offers no public API.

Each test drives Ray's own class or reads its source (no Ray cluster, nothing of Ray mocked but
a GCS read) and pins one behaviour the code depends on. One failing after a Ray upgrade names
the code to revisit: PruneAwareOptunaSearch (search/optuna_search.py),
ResumableMLflowLoggerCallback (search/tracking.py), capacity() (search/cluster.py), the trial's
placement on the head (search/tuner.py), the failed trials' ids (search/run.py), a resumed
trial's record (search/restore_records.py), the Train run's snapshot
(trainable/tune_record.py), and the placement timeout and the last report's hand-over
(trainable/trial.py).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator

import mlflow
import optuna
import pyarrow.fs
import pytest
from optuna.trial import TrialState
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.experiment import Trial
from ray.tune.search.optuna import OptunaSearch

from search.tracking import SEARCH_TAG, ResumableMLflowLoggerCallback

SPACE = {"epochs": tune.choice([3]), "lr": tune.loguniform(1e-5, 1e-3)}


# --- OptunaSearch: PruneAwareOptunaSearch reads _ot_study, _ot_trials and _completed_trials ---


@pytest.fixture
def ray_searcher() -> OptunaSearch:
    searcher = OptunaSearch(seed=0)
    searcher.set_search_properties("score", "max", SPACE)
    return searcher


def _only_trial(searcher: OptunaSearch) -> optuna.trial.FrozenTrial:
    (trial,) = searcher._ot_study.get_trials(deepcopy=False)
    return trial


def test_optuna_search_keeps_its_study_and_an_optuna_trial_per_tune_trial(ray_searcher):
    params = ray_searcher.suggest("a")
    assert isinstance(ray_searcher._ot_study, optuna.Study)
    ot_trial = ray_searcher._ot_trials["a"]
    assert isinstance(ot_trial, optuna.Trial)
    assert ot_trial.params == params
    assert _only_trial(ray_searcher).number == ot_trial.number
    assert ray_searcher._completed_trials == set()
    ray_searcher.on_trial_complete("a", {"score": 0.5, "training_iteration": 3})
    assert ray_searcher._completed_trials == {"a"}


def test_optuna_search_tells_complete_for_a_trial_cut_short(ray_searcher):
    """Why PruneAwareOptunaSearch exists. If Ray starts telling PRUNED, the override may go."""
    assert ray_searcher.suggest("a")["epochs"] == 3
    ray_searcher.on_trial_complete("a", {"score": 0.5, "training_iteration": 1})
    trial = _only_trial(ray_searcher)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5
    # Tune hands a stopped trial's last result to on_trial_complete only, which reports nothing.
    assert trial.intermediate_values == {}


def test_optuna_search_tells_complete_for_an_errored_trial_with_a_score(ray_searcher):
    ray_searcher.suggest("a")
    ray_searcher.on_trial_result("a", {"score": 0.4, "training_iteration": 1})
    ray_searcher.on_trial_complete("a", {"score": 0.4, "training_iteration": 1}, error=True)
    trial = _only_trial(ray_searcher)
    assert trial.state == TrialState.COMPLETE and trial.intermediate_values == {1: 0.4}


def test_optuna_search_restores_the_state_it_saved_while_the_study_moves_on(tmp_path):
    """Tune restores the searcher's pickled __dict__: its trial map and told ids can predate the
    study in storage, which is why PruneAwareOptunaSearch asks the study what it holds."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    searcher = OptunaSearch(seed=0, storage=storage, study_name="search")
    searcher.set_search_properties("score", "max", SPACE)
    searcher.suggest("a")
    searcher.save(str(tmp_path / "searcher.pkl"))
    searcher.on_trial_complete("a", {"score": 0.5, "training_iteration": 3})

    restored = OptunaSearch()
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored._completed_trials == set()
    assert isinstance(restored._ot_trials["a"], optuna.Trial)
    stored = _only_trial(restored)
    assert stored.number == restored._ot_trials["a"].number
    assert stored.state == TrialState.COMPLETE


# --- MLflowLoggerCallback: ResumableMLflowLoggerCallback fills _trial_runs -------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module: creating its schema takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracking(store, request, monkeypatch) -> Iterator[tuple[str, str]]:
    """The store and an experiment of this test's own."""
    # Ray's setup() sets MLflow's global URIs, which MLflow copies into the environment for
    # subprocesses: the CLI runs of later tests must not inherit this store.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    yield store, request.node.name
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _trial() -> Trial:
    """A Trial as Tune builds it, or unpickles it on restore: a new object each time."""
    return Trial("train", config={"lr": 0.1}, trial_id="abc_00000", stub=True)


def _callback(cls, tracking: tuple[str, str], search: str = "s") -> MLflowLoggerCallback:
    tracking_uri, experiment = tracking
    callback = cls(
        tracking_uri=tracking_uri,
        experiment_name=experiment,
        tags={SEARCH_TAG: search},
        save_artifact=False,
    )
    callback.setup()
    return callback


def _runs(tracking: tuple[str, str]) -> list:
    tracking_uri, experiment = tracking
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def test_mlflow_callback_maps_each_trial_to_a_run_tagged_with_its_name(tracking):
    callback = _callback(MLflowLoggerCallback, tracking)
    trial = _trial()
    callback.log_trial_start(trial)
    (run,) = _runs(tracking)
    assert callback._trial_runs == {trial: run.info.run_id}
    assert run.data.tags["trial_name"] == str(trial)
    assert run.data.tags[SEARCH_TAG] == "s"


def test_mlflow_callback_logs_to_the_run_it_finds_in_its_map(tracking):
    first = _callback(MLflowLoggerCallback, tracking)
    trial = _trial()
    first.log_trial_start(trial)
    (run,) = _runs(tracking)

    second = _callback(MLflowLoggerCallback, tracking)
    second._trial_runs[trial] = run.info.run_id
    second.log_trial_start(trial)
    second.log_trial_result(1, trial, {"score": 0.5, "training_iteration": 1})
    (run,) = _runs(tracking)
    assert run.data.metrics["score"] == 0.5


def test_mlflow_callback_keeps_no_run_across_a_restore(tracking):
    """Why ResumableMLflowLoggerCallback exists. If Ray starts saving the map, it may go."""
    callback = _callback(MLflowLoggerCallback, tracking)
    callback.log_trial_start(_trial())
    assert callback.get_state() is None
    callback.setup()
    assert callback._trial_runs == {}


def test_resumable_callback_continues_the_run_of_its_trial_after_a_restore(tracking):
    first = _callback(ResumableMLflowLoggerCallback, tracking)
    trial = _trial()
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, {"score": 0.5, "training_iteration": 1})
    first.log_trial_end(trial, failed=True)  # the driver was killed

    restarted = _callback(ResumableMLflowLoggerCallback, tracking)
    restored = _trial()
    restarted.log_trial_start(restored)
    restarted.log_trial_result(2, restored, {"score": 0.7, "training_iteration": 2})
    (run,) = _runs(tracking)
    assert restarted._trial_runs == {restored: run.info.run_id}
    assert run.info.status == "RUNNING"
    history = mlflow.MlflowClient(tracking_uri=tracking[0]).get_metric_history(
        run.info.run_id, "score"
    )
    assert sorted((m.step, m.value) for m in history) == [(1, 0.5), (2, 0.7)]


def test_resumable_callback_leaves_another_search_s_run_alone(tracking):
    first = _callback(ResumableMLflowLoggerCallback, tracking, search="earlier")
    first.log_trial_start(_trial())
    other = _callback(ResumableMLflowLoggerCallback, tracking, search="later")
    other.log_trial_start(_trial())
    assert sorted(run.data.tags[SEARCH_TAG] for run in _runs(tracking)) == ["earlier", "later"]


# --- ray._private.state: capacity() reads the autoscaler's ceiling ---------------------------


def test_max_resources_from_cluster_config_keeps_its_signature():
    from ray._private.state import state

    method = state.get_max_resources_from_cluster_config
    assert list(inspect.signature(method).parameters) == []


def test_max_resources_from_cluster_config_adds_up_node_groups(monkeypatch):
    """The ceiling capacity() plans for: every node group at its maximum count."""
    from ray._private.state import GlobalState
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig(
        node_group_configs=[
            autoscaler_pb2.NodeGroupConfig(resources={"CPU": 4}, max_count=1),
            autoscaler_pb2.NodeGroupConfig(resources={"CPU": 8, "GPU": 1}, max_count=2),
        ]
    )
    state = GlobalState()
    monkeypatch.setattr(state, "get_cluster_config", lambda: config)  # the GCS read
    assert state.get_max_resources_from_cluster_config() == {"CPU": 20, "GPU": 2}
    monkeypatch.setattr(state, "get_cluster_config", lambda: None)
    assert state.get_max_resources_from_cluster_config() is None


def test_tune_report_callback_still_hands_reports_over_the_sessions_inter_actor_queue():
    """trainable.trial waits for this queue to drain before a trial function returns (a Ray
    2.60 hang, see _let_tune_take_the_last_report): fails if Ray moves the hand-over."""
    from ray.train._internal.session import _TrainSession
    from ray.tune.integration.ray_train import TuneReportCallback

    assert "_get_or_create_inter_actor_queue" in inspect.getsource(TuneReportCallback.__init__)
    creates = inspect.getsource(_TrainSession._get_or_create_inter_actor_queue)
    assert "self._inter_actor_queue" in creates
    takes = inspect.getsource(_TrainSession._get_result_from_queues)
    assert "self._inter_actor_queue.get" in takes and "self.report(" in takes


def test_the_session_keeps_the_inter_actor_queue_from_its_start():
    """Set to None as the session starts (reset() from __init__), so the guard tells a renamed
    attribute from a queue not yet created."""
    from ray.train._internal.session import _TrainSession

    assert "self.reset(" in inspect.getsource(_TrainSession.__init__)
    assert "self._inter_actor_queue" in inspect.getsource(_TrainSession.reset), (
        "Ray's _TrainSession no longer sets _inter_actor_queue as it starts: see where "
        "TuneReportCallback's queue went and update trainable/trial.py"
    )


def test_the_report_guard_fails_loudly_where_the_session_lacks_the_queue():
    """Outside a trial there is no session, hence no `_inter_actor_queue`: the guard must stop,
    not fall back to a sleep that leaves the hang possible."""
    from trainable.trial import _let_tune_take_the_last_report

    with pytest.raises(RuntimeError, match="_inter_actor_queue"):
        _let_tune_take_the_last_report(timeout_s=0)


# --- Ray Train V2's checkpoint manager snapshot: trainable/tune_record.py reads it -----------


def _register_checkpoints(storage_path, epochs: list[int]) -> None:
    """Ray Train's own CheckpointManager registers a checkpoint per epoch of the run `run`."""
    import asyncio
    from pathlib import Path

    from ray.train import Checkpoint, CheckpointConfig
    from ray.train.v2._internal.execution.checkpoint.checkpoint_manager import (
        CheckpointManager,
    )
    from ray.train.v2._internal.execution.storage import StorageContext
    from ray.train.v2._internal.execution.training_report import _TrainingReport

    storage = StorageContext(storage_path=str(storage_path), experiment_dir_name="run")

    async def register():  # the manager notifies waiters on the controller's event loop
        manager = CheckpointManager(CheckpointConfig(), storage)
        for epoch in epochs:
            path = storage.build_checkpoint_path_from_name(f"checkpoint_{epoch}")
            Path(path).mkdir(parents=True)
            metrics = {"epoch": float(epoch), "eval_f1": epoch / 10}
            manager.register_checkpoint(_TrainingReport(Checkpoint(path), metrics, False))

    asyncio.run(register())


def test_train_v2_snapshot_holds_each_checkpoint_with_its_metrics(tmp_path):
    from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME
    from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

    from trainable.tune_record import TRAIN_SNAPSHOT, _train_reports

    assert TRAIN_SNAPSHOT == CHECKPOINT_MANAGER_SNAPSHOT_FILENAME, (
        "Ray Train V2 renamed its checkpoint manager snapshot: update trainable/tune_record.py"
    )
    _register_checkpoints(tmp_path, [1, 2])
    reports = _train_reports(str(tmp_path), "run")
    assert [(r["epoch"], r["eval_f1"]) for r in reports] == [(1.0, 0.1), (2.0, 0.2)], reports
    assert [r[CHECKPOINT_PATH_KEY] for r in reports] == [
        (tmp_path / "run" / f"checkpoint_{epoch}").as_posix() for epoch in (1, 2)
    ]
    assert _train_reports(str(tmp_path), "not-started") == []


@pytest.mark.parametrize(
    "snapshot, missing",
    [
        ({"ray_version": "2.60.0", "checkpoints": []}, "checkpoint_results"),
        ({"checkpoint_results": [{"checkpoint_dir_name": "checkpoint_1"}]}, "metrics"),
        ({"checkpoint_results": [{"metrics": {"epoch": 1.0}}]}, "checkpoint_dir_name"),
    ],
)
def test_a_snapshot_in_another_shape_stops_the_trial_naming_ray_train_s_change(
    tmp_path, snapshot, missing
):
    import json

    from trainable.tune_record import TRAIN_SNAPSHOT, _train_reports

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / TRAIN_SNAPSHOT).write_text(json.dumps(snapshot))
    with pytest.raises(RuntimeError, match="Ray Train changed") as raised:
        _train_reports(str(tmp_path), "run")
    assert repr(missing) in str(raised.value) and "_CheckpointManagerState" in str(raised.value)


def test_tune_hands_a_trial_its_storage_through_the_context():
    """continue_record reads the trial's record through tune.get_context().get_storage()."""
    from ray.train._internal.storage import StorageContext
    from ray.tune import TuneContext

    assert "get_storage" in dir(TuneContext), (
        "TuneContext.get_storage is gone: find the trial's storage for trainable/tune_record.py"
    )
    storage = StorageContext(
        storage_path="/tmp/storage", experiment_dir_name="search", trial_dir_name="trial"
    )
    assert storage.trial_fs_path == "/tmp/storage/search/trial"
    assert isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem)


# --- node:__internal_head__: search/tuner.py places every trial function on the head ----------


def test_only_the_head_node_gets_the_internal_head_resource():
    from ray._common.constants import HEAD_NODE_RESOURCE_NAME
    from ray._private.resource_and_label_spec import ResourceAndLabelSpec

    from search.slots import HEAD_NODE

    assert HEAD_NODE == HEAD_NODE_RESOURCE_NAME, (
        f"Ray renamed the head node's resource to {HEAD_NODE_RESOURCE_NAME}: update search/slots.py"
    )

    def resources(is_head: bool) -> dict:
        spec = ResourceAndLabelSpec(num_cpus=1, num_gpus=0, memory=10**9, resources={})
        return spec.resolve(is_head=is_head, node_ip_address="127.0.0.1").resources

    assert resources(is_head=True)[HEAD_NODE] == 1.0, (
        "Ray no longer gives the head node its head resource: trials would find no node"
    )
    assert HEAD_NODE not in resources(is_head=False)


# --- Tune's Result: search/run.py names a failed trial by its id -----------------------------


def test_a_trial_that_never_reported_still_carries_its_id_in_its_last_result():
    from ray.tune.result import TRIAL_ID

    trial = _trial()
    assert trial.last_result[TRIAL_ID] == "abc_00000", (
        "Tune's Trial.last_result (Result.metrics) lost its trial_id: search/run.py's _failure "
        "names failed trials with it"
    )


# --- ray.train.v2._internal.exceptions: trainable/trial.py tells a placement timeout ---------


@pytest.mark.parametrize("limit, decision", [(0, "RAISE"), (-1, "RETRY")])
def test_a_worker_group_start_up_timeout_is_a_controller_failure_retried_to_its_limit(
    limit, decision
):
    """trainable/trial.py's fit() tells a timed-out placement by ControllerError wrapping
    WorkerGroupStartupTimeoutError (no public name in Ray 2.60), and sets
    controller_failure_limit to 0 so the timeout ends the trial."""
    from ray import train
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
    from ray.train.v2._internal.execution.failure_handling.default import DefaultFailurePolicy

    from trainable.trial import WorkerGroupStartupTimeoutError as imported

    assert imported is WorkerGroupStartupTimeoutError
    raised = "raise WorkerGroupStartupTimeoutError("
    from ray.train.v2._internal.execution.worker_group import worker_group

    assert raised in inspect.getsource(worker_group), (
        "Ray Train's WorkerGroup no longer raises WorkerGroupStartupTimeoutError on a placement "
        "timeout: find what it raises now for trainable/trial.py's fit()"
    )
    error = ControllerError(WorkerGroupStartupTimeoutError(num_workers=2))
    assert isinstance(error.controller_failure, WorkerGroupStartupTimeoutError)
    policy = DefaultFailurePolicy(train.FailureConfig(controller_failure_limit=limit))
    assert policy.make_decision(error).name == decision, (
        f"Ray Train's failure policy no longer decides {decision} for a start-up timeout at "
        f"controller_failure_limit={limit}: see trainable/trial.py's train_run"
    )


# --- Tune's loggers: search/restore_records.py gives a resumed trial its record back ---------


def test_tune_adds_its_loggers_after_the_search_s_callbacks():
    """RestoreRecords must copy the stored rows back before Tune's loggers open the files."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    from search.restore_records import RestoreRecords

    callbacks = _create_default_callbacks([RestoreRecords()], metric="score", mode="max")
    kinds = [type(callback) for callback in callbacks]
    assert kinds.index(RestoreRecords) < kinds.index(JsonLoggerCallback), (
        "Tune now puts its loggers before the callbacks given to it (ray/tune/utils/callback.py): "
        "RestoreRecords would copy a resumed trial's rows back too late"
    )
    assert kinds.index(RestoreRecords) < kinds.index(CSVLoggerCallback)


def test_tune_s_loggers_restore_no_record_for_a_trial_without_a_tune_checkpoint():
    """Why RestoreRecords exists: Ray Train's checkpoints reach Tune as a path in the metrics,
    so a trial has no Tune checkpoint and its loggers fetch nothing back. If Tune starts
    restoring them, RestoreRecords may go."""
    from ray.tune.logger import JsonLoggerCallback

    trial = _trial()
    assert trial.checkpoint is None
    source = inspect.getsource(JsonLoggerCallback._restore_from_remote)
    assert "if not trial.checkpoint" in source, (
        "Tune's LoggerCallback._restore_from_remote no longer needs a Tune checkpoint: see "
        "whether search/restore_records.py is still needed"
    )
