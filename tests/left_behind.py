"""`python -m tests.left_behind ARGS`: the search's entry point, with a placement group left
behind in the search's job as the trials' slots end, the way a Train controller torn down
mid-restart leaves one. It holds every CPU of the cluster, so the work after the trials (a
refit in a Train run of its own, test scoring in a Ray task) is placed only if the search
removes it."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import ray

import search.slots
from search.run import main

PLANTED = "planted a placement group that holds every CPU"


def plant_after_the_trials() -> None:
    warm_workers = search.slots.warm_workers

    @contextmanager
    def then_plant(*args, **kwargs):
        with warm_workers(*args, **kwargs) as setup:
            yield setup
        group = ray.util.placement_group([{"CPU": ray.cluster_resources()["CPU"]}])
        ray.get(group.ready(), timeout=120)  # the slots' own groups go as their runs end
        print(PLANTED, flush=True)

    search.slots.warm_workers = then_plant


if __name__ == "__main__":
    plant_after_the_trials()
    sys.exit(main(sys.argv[1:]))
