"""Placement groups a search's Train runs leave behind are removed, and waits for room are told,
on a real local Ray with its state API."""

from __future__ import annotations

import signal
import time

import pytest
import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.backend import BackendConfig
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from search.connect import STATE_API_ENV, free_ports
from search.placement import Group, PlacementWatch, clear_left_behind, sweep
from tests.conftest import TINY
from trainable.config_file import load_config
from trainable.trial import fit


def _group(group_id: str, state: str = "CREATED") -> Group:
    return Group(group_id, state, ((("CPU", 1.0),),))


def test_a_group_is_left_behind_only_when_unused_at_two_sweeps():
    groups = [_group("a"), _group("b"), _group("c", "PENDING")]
    first = sweep(groups, used={"b"}, suspects=set())
    assert first.left_behind == [] and first.unused == {"a"}
    second = sweep(groups, used={"b"}, suspects=first.unused)
    assert [g.group_id for g in second.left_behind] == ["a"]
    # A group whose workers have started since the last sweep is in use: not removed.
    assert sweep(groups, used={"a", "b"}, suspects=first.unused).left_behind == []
    # Tune's group for a trial function holds no CPU: Tune may stage it before its actor starts.
    trial_function = Group("t", "CREATED", ((("memory", 1.0), ("node:__internal_head__", 0.001)),))
    assert sweep([trial_function], used=set(), suspects={"t"}).left_behind == []


@pytest.fixture(scope="module")
def ray_with_state_api():
    (port,) = free_ports(1)
    ray.init(num_cpus=2, include_dashboard=True, dashboard_port=port, logging_level="ERROR")
    mp = pytest.MonkeyPatch()
    mp.setenv(STATE_API_ENV, f"http://127.0.0.1:{port}")
    yield
    mp.undo()
    ray.shutdown()


@ray.remote(num_cpus=1)
class Holder:
    def ready(self) -> bool:
        return True


def _state(group) -> str:
    return ray.util.placement_group_table(group)["state"]


def test_a_watched_search_removes_what_is_left_behind_keeps_what_is_used_and_tells_waits(
    ray_with_state_api,
):
    used, left = placement_group([{"CPU": 1}]), placement_group([{"CPU": 1}])
    ray.get([used.ready(), left.ready()], timeout=60)
    holder = Holder.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=used)
    ).remote()
    ray.get(holder.ready.remote(), timeout=60)
    waiting = placement_group([{"CPU": 2}])  # cannot be placed while either group holds a CPU
    said: list[str] = []
    watch = PlacementWatch(said.append, tell_after_s=0)
    watch.setup()

    watch.look()
    assert _state(left) == "CREATED", "removed at its first sighting: it may be starting"
    assert len(said) == 1 and "waited" in said[0] and "{'CPU': 2.0} x 1" in said[0]
    assert "2 placed group(s) hold {'CPU': 2.0}" in said[0], said[0]

    watch.look()
    assert _state(left) == "REMOVED" and _state(used) == "CREATED"
    assert any("removed a placement group that no trial uses ({'CPU': 1.0} x 1)" in s for s in said)
    assert sum("waited" in s for s in said) == 1, "a wait is told once a minute, not each look"

    ray.kill(holder)
    clear_left_behind(said.append)  # no Train controller runs: unused now means left behind
    assert _state(used) == "REMOVED" and _state(waiting) == "REMOVED"


def _trains_nothing() -> None:
    pass


def test_a_train_run_on_a_main_thread_ends_its_controller_with_it(ray_with_state_api, tmp_path):
    """Ray's fit() on a process's main thread (the driver's refit, a slot's task) registers a
    SIGINT handler that holds the run's Train controller; trainable.trial.fit gives back the
    handler that was there, so the controller ends with its run and clear_left_behind does
    not wait for it."""
    from ray.util.state import list_actors

    before = signal.getsignal(signal.SIGINT)
    trainer = DataParallelTrainer(
        _trains_nothing,
        backend_config=BackendConfig(),
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name="ends", storage_path=str(tmp_path)),
    )
    fit(trainer, load_config(TINY))
    assert signal.getsignal(signal.SIGINT) is before
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        controllers = list_actors(filters=[("class_name", "=", "TrainController")])
        if controllers and all(a.state == "DEAD" for a in controllers):
            break
        time.sleep(0.5)
    assert [a.state for a in controllers] == ["DEAD"]
