"""The refit on a warm worker, planned on the dispatcher (`search/warm_refit.py` decides which).

The search plans at most one refit at a time: of the best trial that has ended, while the last
trials train, or of its pick once they are over. Planning another drops the one planned, which
its worker learns at its next step (`refit_control`); once the trials are over the refit may
use the CPUs of every live slot on its node, which wait idle but stay reserved for it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from trainable.dispatcher import Dispatcher
from trainable.work import Work, refit_id


@dataclass(frozen=True)
class RefitPlan:
    """The refit planned: the trial and epoch it refits, and when a worker took it."""

    refit_id: str
    trial_id: str
    epoch: int
    taken_at: float | None = None  # time.time(); None while it waits for a slot


class RefitDispatcher(Dispatcher):
    def __init__(self, slots: int, max_failures: int, refit: Work | None):
        """`refit`: the refit's work, its hyperparameters and epochs still to fill in; None
        when the search exports the selected trial's own checkpoint."""
        super().__init__(slots, max_failures)
        self.refit_template = refit
        self.refit_plan: RefitPlan | None = None
        self.node_of: dict[int, str] = {}  # slot -> its worker's node

    async def refit(self, trial_id: str, hyperparameters: dict[str, Any], epoch: int) -> bool:
        """Plans the refit of `trial_id` for `epoch` epochs, after the trials waiting to
        start, dropping a refit of another trial or epoch; False when it cannot run here
        (no refit planned for this search, or no slot left)."""
        if self.refit_template is None or self.lost_reason is not None:
            return False
        plan = self.refit_plan
        if plan is not None and (plan.trial_id, plan.epoch) == (trial_id, epoch):
            return True
        self.drop_refit()
        work = dataclasses.replace(
            self.refit_template, hyperparameters=hyperparameters, stop_after_epochs=epoch
        )
        self.refit_plan = RefitPlan(refit_id(trial_id, epoch), trial_id, epoch)
        await self.submit(self.refit_plan.refit_id, work)
        return True

    def planned_refit(self) -> RefitPlan | None:
        return self.refit_plan

    def drop_refit(self) -> None:
        """The planned refit is not wanted: a worker training it stops at its next step."""
        if self.refit_plan is not None:
            self.end(self.refit_plan.refit_id)
            self.refit_plan = None

    def refit_control(self, refit: str, slot: int) -> tuple[bool, int]:
        """For a refit's worker: whether to go on, and how many of the CPU slots on its node
        it may use (its own until the trials are over, then every live slot's there)."""
        plan = self.refit_plan
        wanted = plan is not None and plan.refit_id == refit and not self.closed
        if not self.trials_over:
            return wanted, 1
        node = self.node_of.get(slot)
        return wanted, sum(1 for s in self.workers if self.node_of.get(s) == node)

    async def take(self, slot: int, worker, node: str) -> tuple[str, Any] | None:
        """Dispatcher.take, from a worker on `node`."""
        self.node_of[slot] = node
        taken = await super().take(slot, worker)
        plan = self.refit_plan
        if taken is not None and plan is not None and taken[0] == plan.refit_id:
            self.refit_plan = dataclasses.replace(plan, taken_at=time.time())
        return taken

    async def close(self) -> list[int]:
        self.refit_plan = None
        return await super().close()
