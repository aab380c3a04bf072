"""The dispatcher: hands Tune's trials to warm workers, and their epochs back to Tune.

With `resources.warm_workers`, each trial slot of the search is one long-lived Ray Train run
whose worker trains one trial after another (`trainable/slot.py`). A Tune trial submits its
work here and relays what comes back (`trainable/trial.py`); a worker takes the next trial,
reports each epoch and waits for Tune's answer: go on, or stop (ASHA stopped the trial,
`search/slots.py` tells). The dispatcher also counts each trial's failures against
`resources.max_failures`, as Ray Train counts a cold trial's: a trial whose worker raised, or
whose worker process was lost, waits first in line to be tried again from its last checkpoint,
on whichever slot is free first (Ray Train restarts a lost slot's worker where there is room).

A refit is work too (`trainable/refit_dispatcher.py` plans it): it waits behind the trials,
is tried once, and may report after Tune ended the trials.

One actor per search, on the head node, holding no CPU.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

import ray.exceptions

from trainable.work import Mode

REPORT, DONE, FAILED = "report", "done", "failed"
LOST = "the trial's worker process was lost (its node went, or it was killed)"
WATCH_EVERY_S = 2.0


@dataclass(frozen=True)
class Event:
    """What a trial's relay hears: an epoch's report, the end, or the reason it failed."""

    kind: str
    metrics: dict | None = None
    reason: str | None = None


@dataclass
class _Trial:
    work: Any
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    answer: asyncio.Future | None = None  # while its worker waits on Tune
    failures: int = 0
    ended: bool = False  # Tune ended it (finished, stopped or failed)


class Dispatcher:
    def __init__(self, slots: int, max_failures: int):
        self.max_failures = max_failures
        self.trials_over = False  # Tune ended every trial: a refit may use every slot's CPUs
        self.live_slots = set(range(slots))
        self.lost_reason: str | None = None  # why every slot is gone
        self.trials: dict[str, _Trial] = {}
        self.waiting: collections.deque[str] = collections.deque()
        self.running: dict[int, str] = {}  # slot -> trial id
        self.workers: set[int] = set()  # slots whose worker came for work and was not lost
        self.changed = asyncio.Condition()
        self.closed = False

    # The Tune trial's side.

    async def submit(self, trial_id: str, work: Any) -> None:
        self.trials[trial_id] = _Trial(work)
        if self.lost_reason is not None:
            self._fail(trial_id, self.lost_reason)
            return
        self.waiting.append(trial_id)
        await self._notify()

    async def next_event(self, trial_id: str) -> Event:
        return await self.trials[trial_id].events.get()

    def go_on(self, trial_id: str) -> None:
        self._answer(trial_id, True)

    def end_trials(self) -> None:
        """Tune ended the search's trials (all of them, or it was interrupted): workers stop
        theirs after the epoch, and a refit may use the CPUs of the slots that wait idle."""
        self.trials_over = True
        for trial_id in list(self.trials):
            if not self._is_refit(trial_id):
                self.end(trial_id)

    # The search's side (search/slots.py).

    def end(self, trial_id: str) -> None:
        """Tune ended the trial: a worker training it stops after its epoch."""
        trial = self.trials.get(trial_id)
        if trial is None:
            return
        trial.ended = True
        if trial_id in self.waiting:
            self.waiting.remove(trial_id)
        self._answer(trial_id, False)
        if trial_id not in self.running.values():
            del self.trials[trial_id]

    async def slot_lost(self, slot: int, reason: str) -> None:
        """The slot's Train run ended with an error (its worker could not be placed, or its
        controller failed): its trial is tried on another slot, and once no slot is left every
        trial still waiting fails with the reason."""
        self.live_slots.discard(slot)
        self.workers.discard(slot)
        await self._lost(slot, reason)
        if not self.live_slots:
            self.lost_reason = reason
            while self.waiting:
                self._fail(self.waiting.popleft(), reason)

    async def close(self) -> list[int]:
        """Ends the search's trials after their epoch and the workers' loops; the slots whose
        worker is alive to end in order (the others' runs still wait for room)."""
        self.closed = True
        for trial_id in list(self.trials):
            self._answer(trial_id, False)
        await self._notify()
        return sorted(self.workers)

    # A slot's worker's side (trainable/slot.py).

    async def take(self, slot: int, worker) -> tuple[str, Any] | None:
        """The next trial (or refit) for the worker (an actor) of `slot` to train; None once
        the search closed. A slot that still holds a trial lost its worker before the watch
        saw it."""
        await self._lost(slot, LOST)
        self.workers.add(slot)
        async with self.changed:
            while not self.closed:
                if self.waiting:
                    trial_id = self.waiting.popleft()
                    self.running[slot] = trial_id
                    asyncio.get_running_loop().create_task(self._watch(slot, trial_id, worker))
                    return trial_id, self.trials[trial_id].work
                await self.changed.wait()
        return None

    async def report(self, trial_id: str, metrics: dict) -> bool:
        """Hands an epoch's report to the trial's relay; True when Tune wants the next epoch."""
        trial = self.trials.get(trial_id)
        if trial is None or trial.ended or self.closed:
            return False
        if self.trials_over and not self._is_refit(trial_id):
            return False
        trial.answer = asyncio.get_running_loop().create_future()
        trial.events.put_nowait(Event(REPORT, metrics=metrics))
        return await trial.answer

    def done(self, slot: int, trial_id: str) -> None:
        self.running.pop(slot, None)
        self._event(trial_id, Event(DONE))

    async def failed(self, slot: int, trial_id: str, reason: str, recurring: bool) -> None:
        """The worker raised `reason` training the trial: it waits to be tried again from its
        last checkpoint while it has tries left, unless the error would come back on every
        try."""
        await self._lost(slot, reason, recurring)

    async def _watch(self, slot: int, trial_id: str, worker) -> None:
        """Until the slot's trial ends, asks its worker every few seconds whether it lives: a
        worker whose process or node went hands its trial to the next free slot at once,
        where Ray Train's restart of it could wait long for room."""
        while self.running.get(slot) == trial_id:
            try:
                await worker.__ray_ready__.remote()
            except ray.exceptions.RayActorError:
                self.workers.discard(slot)
                if self.running.get(slot) == trial_id:
                    await self._lost(slot, LOST)
                return
            await asyncio.sleep(WATCH_EVERY_S)

    async def _lost(self, slot: int, reason: str, recurring: bool = False) -> None:
        trial_id = self.running.pop(slot, None)
        trial = self.trials.get(trial_id) if trial_id is not None else None
        if trial is None:
            return
        if trial.ended:
            del self.trials[trial_id]
            return
        trial.failures += 1
        once = trial.work.mode is Mode.REFIT  # the search refits anew, or exports the pick
        if once or recurring or trial.failures > self.max_failures or self.lost_reason is not None:
            self._fail(trial_id, reason)
            return
        self.waiting.appendleft(trial_id)
        await self._notify()

    def _is_refit(self, trial_id: str) -> bool:
        trial = self.trials.get(trial_id)
        return trial is not None and trial.work.mode is Mode.REFIT

    def _fail(self, trial_id: str, reason: str) -> None:
        self._event(trial_id, Event(FAILED, reason=reason))

    def _event(self, trial_id: str, event: Event) -> None:
        trial = self.trials.get(trial_id)
        if trial is None:
            return
        if trial.ended:
            del self.trials[trial_id]
        else:
            trial.events.put_nowait(event)

    def _answer(self, trial_id: str, go_on: bool) -> None:
        trial = self.trials.get(trial_id)
        if trial is not None and trial.answer is not None and not trial.answer.done():
            trial.answer.set_result(go_on)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()
