"""`python -m tests.left_behind ARGS`: the search's entry point, with a placement group left
behind in the search's job as Tune's trials end, the way a Train controller torn down mid-restart
leaves one. It holds every CPU of the cluster, so the refit is placed only if the search
removes it."""

from __future__ import annotations

import sys

import ray
from ray import tune

from search.run import main

PLANTED = "planted a placement group that holds every CPU"


def plant_after_the_trials() -> None:
    fit = tune.Tuner.fit

    def fit_then_plant(self):
        results = fit(self)
        group = ray.util.placement_group([{"CPU": ray.cluster_resources()["CPU"]}])
        ray.get(group.ready(), timeout=120)  # the trials' own groups go as their runs end
        print(PLANTED, flush=True)
        return results

    tune.Tuner.fit = fit_then_plant


if __name__ == "__main__":
    plant_after_the_trials()
    sys.exit(main(sys.argv[1:]))
