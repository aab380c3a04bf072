"""The Optuna study must record what really happened to each Tune trial."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.optuna_search import PruneAwareOptunaSearch, stopped_early
from search.space import search_space
from trainable.hyperparameters import SpaceConfig


@pytest.fixture
def searcher():
    searcher = PruneAwareOptunaSearch(seed=0)
    searcher.set_search_properties(
        "score", "max", search_space(SpaceConfig.from_declared({"epochs": [3]}))
    )
    return searcher


def _run(searcher, trial_id, scores, error=False):
    params = searcher.suggest(trial_id)
    results = [{"score": s, "training_iteration": i + 1} for i, s in enumerate(scores)]
    for result in results[:-1]:
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, results[-1] if results else None, error=error)
    return params


def _study_trials(searcher) -> list[optuna.trial.FrozenTrial]:
    return searcher._ot_study.get_trials(deepcopy=False)


def test_trial_stopped_early_is_pruned_with_its_epoch_scores(searcher):
    params = _run(searcher, "a", [0.5])
    assert params["epochs"] == 3
    (trial,) = _study_trials(searcher)
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.5}


def test_trial_that_ran_all_epochs_is_complete_with_every_epoch(searcher):
    _run(searcher, "a", [0.5, 0.7, 0.9])
    (trial,) = _study_trials(searcher)
    assert trial.state == TrialState.COMPLETE
    assert trial.value == 0.9
    assert trial.intermediate_values == {1: 0.5, 2: 0.7, 3: 0.9}


def test_errored_trial_fails_even_after_reporting_an_epoch(searcher):
    _run(searcher, "a", [0.5, 0.6], error=True)
    (trial,) = _study_trials(searcher)
    assert trial.state == TrialState.FAIL


def test_stopped_early_reads_the_sampled_epochs():
    assert stopped_early({"epochs": 3}, {"training_iteration": 2})
    assert not stopped_early({"epochs": 2}, {"training_iteration": 2})
    assert not stopped_early({"epochs": 2}, None)


def test_a_trial_the_study_already_holds_is_not_told_twice(searcher):
    """After a killed driver, Tune's restored searcher state can predate the study on disk."""
    searcher.suggest("a")
    searcher._ot_study.tell(searcher._ot_trials["a"], 0.9)  # what the study held on disk
    searcher.on_trial_result("a", {"score": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("a", {"score": 0.6, "training_iteration": 3})
    (trial,) = _study_trials(searcher)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.9


def test_a_restored_searcher_reads_what_the_study_on_disk_was_told(tmp_path):
    """Tune restores the searcher as saved; the study in storage may have been told since."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    searcher = PruneAwareOptunaSearch(seed=0, storage=storage, study_name="search")
    searcher.set_search_properties(
        "score", "max", search_space(SpaceConfig.from_declared({"epochs": [3]}))
    )
    searcher.suggest("a")
    searcher.save(str(tmp_path / "searcher.pkl"))
    searcher.on_trial_result("a", {"score": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("a", {"score": 0.6, "training_iteration": 2})  # ASHA stopped it

    restored = PruneAwareOptunaSearch()
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_result("a", {"score": 0.5, "training_iteration": 1})
    restored.on_trial_complete("a", {"score": 0.9, "training_iteration": 3})
    (trial,) = _study_trials(restored)
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.5, 2: 0.6}
