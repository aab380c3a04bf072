"""Placement groups: the ones a search's Train runs leave behind, removed, and waits for room
that say what they wait for.

Ray Train reserves each trial's workers with a placement group. A Train controller torn down
while Tune stops its trial can start a new worker group as it goes, and the group it reserved
for it outlives it: nothing uses it, nothing removes it, and its CPUs are gone until the search
ends (ray-project/ray#54305 reports the same after Tune stops a Train V2 trial). The search
removes such groups of its own job, and says why a trial or the refit waits for room.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import ray
from ray.tune import Callback
from ray.util.placement_group import PlacementGroup, remove_placement_group

from trainable.errors import first_line

LIVE_ACTOR_STATES = ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING")
# A group stays unused for a moment between its reservation and its workers' creation: only
# one seen unused at two sweeps this far apart is taken for left behind.
SWEEP_EVERY_S = 10.0
# A wait for room shorter than this is ordinary (a trial's start-up beside another's end).
WAIT_TOLD_AFTER_S = 60.0
COMPUTE = ("CPU", "GPU")  # what a group left behind keeps from the trials


@dataclass(frozen=True)
class Group:
    group_id: str
    state: str  # PENDING, CREATED, REMOVED, RESCHEDULING
    bundles: tuple[tuple[tuple[str, float], ...], ...]

    def holds_compute(self) -> bool:
        """Whether it reserves CPUs or GPUs: a Train run's workers do; Tune's group for a trial
        function (a byte of memory, search/tuner.py) does not, and Tune may stage it unused."""
        return any(key in COMPUTE and value > 0 for b in self.bundles for key, value in b)

    def asks(self) -> str:
        """`{'CPU': 2.0} x 1`: what each bundle asks for, and how many."""
        return ", ".join(f"{dict(b)} x {n}" for b, n in Counter(self.bundles).items())


@dataclass
class Sweep:
    """What one look at the search's groups decided, computed apart from Ray."""

    left_behind: list[Group] = field(default_factory=list)
    unused: set[str] = field(default_factory=set)  # CREATED and unused now: next sweep's suspects


def sweep(groups: list[Group], used: set[str], suspects: set[str]) -> Sweep:
    """Groups CREATED, used by no live actor now and at the previous sweep, are left behind."""
    result = Sweep()
    for group in groups:
        if group.state == "CREATED" and group.holds_compute() and group.group_id not in used:
            result.unused.add(group.group_id)
            if group.group_id in suspects:
                result.left_behind.append(group)
    return result


def search_groups(job_id: str) -> list[Group]:
    from ray.util.state import list_placement_groups

    listed = list_placement_groups(
        filters=[("creator_job_id", "=", job_id)],
        detail=True,
        limit=10_000,
        raise_on_missing_output=False,
    )
    return [
        Group(
            g.placement_group_id,
            g.state,
            tuple(tuple(sorted(b["unit_resources"].items())) for b in g.bundles or []),
        )
        for g in listed
        if g.state != "REMOVED"
    ]


def groups_in_use(job_id: str) -> set[str]:
    from ray.util.state import list_actors

    actors = list_actors(
        filters=[("job_id", "=", job_id)],
        detail=True,
        limit=10_000,  # the most the state API serves
        raise_on_missing_output=False,
    )
    return {a.placement_group_id for a in actors if a.state in LIVE_ACTOR_STATES}


def remove(groups: list[Group], say) -> None:
    for group in groups:
        remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(group.group_id)))
        say(
            f"removed a placement group that no trial uses ({group.asks()}), left behind by a "
            "Train run Tune stopped: its resources go back to the search"
        )


def clear_left_behind(say=print, timeout_s: float = 30.0) -> None:
    """Before work that runs after the trials (the refit): once no Train controller of this job
    is alive, every group of the job that no live actor uses is left behind, pending or not
    (a pending one would take the CPUs it waits for the moment they are free)."""
    from ray.util.state import list_actors

    job_id = ray.get_runtime_context().get_job_id()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        controllers = list_actors(
            filters=[("job_id", "=", job_id), ("class_name", "=", "TrainController")],
            raise_on_missing_output=False,
        )
        if not any(a.state in LIVE_ACTOR_STATES for a in controllers):
            break
        time.sleep(1)
    used = groups_in_use(job_id)
    groups = search_groups(job_id)
    remove([g for g in groups if g.holds_compute() and g.group_id not in used], say)


def sweep_left_behind() -> None:
    """clear_left_behind before the work after the trials (the refit, the test scoring), or a
    line saying why it could not look: that work may then wait."""
    try:
        clear_left_behind()
    except Exception as exc:  # the state API is out of reach
        print(f"could not look for placement groups left behind ({first_line(exc)})", flush=True)


def holders(groups: list[Group]) -> str:
    """What holds the cluster's resources, in one clause, for a wait line."""
    free = {k: round(v, 2) for k, v in ray.available_resources().items() if k in COMPUTE}
    total = {k: round(v, 2) for k, v in ray.cluster_resources().items() if k in COMPUTE}
    created = [g for g in groups if g.state == "CREATED"]
    held = Counter()
    for group in created:
        for bundle in group.bundles:
            for key, value in bundle:
                if key in COMPUTE:
                    held[key] += value
    others = {k: round(total[k] - free.get(k, 0) - held.get(k, 0), 2) for k in total}
    return (
        f"free {free} of {total}; this search's {len(created)} placed group(s) hold "
        f"{dict(held)}, other jobs {others}"
    )


class PlacementWatch(Callback):
    """Every SWEEP_EVERY_S of the search: removes the search's groups left behind, and says
    what a Train run waiting for room past WAIT_TOLD_AFTER_S asks for and what holds it."""

    def __init__(self, say=print, tell_after_s: float = WAIT_TOLD_AFTER_S):
        self.say = say
        self.tell_after_s = tell_after_s
        self.job_id = ""
        self.last = 0.0
        self.suspects: set[str] = set()
        self.pending_since: dict[str, float] = {}
        self.told: dict[str, float] = {}

    def setup(self, **info):
        # Read when Tune starts, not when the callback is made: a resumed search is a new job.
        self.job_id = ray.get_runtime_context().get_job_id()

    def on_step_begin(self, iteration, trials, **info):
        if time.monotonic() - self.last >= SWEEP_EVERY_S:
            self.look()

    def look(self) -> None:
        now = self.last = time.monotonic()
        try:
            groups = search_groups(self.job_id)
            result = sweep(groups, groups_in_use(self.job_id), self.suspects)
        except Exception:  # the state API is busy: the next sweep looks again
            return
        self.suspects = result.unused
        remove(result.left_behind, self.say)
        self._tell_waits(groups, now)

    def _tell_waits(self, groups: list[Group], now: float) -> None:
        pending = {g.group_id: g for g in groups if g.state == "PENDING"}
        self.pending_since = {i: self.pending_since.get(i, now) for i in pending}
        for group_id, since in self.pending_since.items():
            waited = now - since
            told = self.told.get(group_id)
            if waited >= self.tell_after_s and (told is None or now - told >= WAIT_TOLD_AFTER_S):
                self.told[group_id] = now
                self.say(
                    f"a Train run has waited {waited:.0f} s for room for its workers "
                    f"({pending[group_id].asks()}): {holders(groups)}"
                )


@contextmanager
def watching(say=print):
    """PlacementWatch's looks while the block runs outside Tune (the refit)."""
    watch = PlacementWatch(say)
    watch.setup()
    stop = threading.Event()

    def loop():
        while not stop.wait(SWEEP_EVERY_S):
            watch.look()

    thread = threading.Thread(target=loop, name="placement-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
