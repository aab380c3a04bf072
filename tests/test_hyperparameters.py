"""The search space has one home, SpaceConfig: the Tune space, the worker's TrainingArguments,
validation and messages all follow from its fields."""

from __future__ import annotations

import pytest
from ray.tune.search.sample import Categorical, Float

from search.space import search_space
from trainable.config import Config
from trainable.errors import ConfigError
from trainable.hyperparameters import (
    SpaceConfig,
    check_point,
    describe,
    hyperparameter_names,
    training_arguments,
    typed,
)


def test_every_field_is_sampled_and_sets_its_training_argument():
    space = search_space(SpaceConfig(learning_rate=[1e-5, 1e-3], batch_size=[8], epochs=[2, 3]))
    assert list(space) == list(hyperparameter_names()) == ["learning_rate", "batch_size", "epochs"]
    assert isinstance(space["learning_rate"], Float)
    assert (space["learning_rate"].lower, space["learning_rate"].upper) == (1e-5, 1e-3)
    assert isinstance(space["epochs"], Categorical) and space["epochs"].categories == [2, 3]
    sampled = {"learning_rate": 5e-5, "batch_size": 8.0, "epochs": 3.0}  # YAML gives floats
    assert training_arguments(sampled) == {
        "learning_rate": 5e-5,
        "per_device_train_batch_size": 8,
        "num_train_epochs": 3,
    }
    assert typed(sampled)["batch_size"] == 8 and isinstance(typed(sampled)["batch_size"], int)
    assert describe(sampled) == "learning_rate=5.00e-05 batch_size=8 epochs=3"


def test_initial_points_are_checked_against_every_dimension_without_being_changed():
    space = SpaceConfig()
    point = {"learning_rate": 5e-5, "batch_size": 8.0, "epochs": 3}
    check_point(point, space, "p")
    assert point["batch_size"] == 8.0 and isinstance(point["batch_size"], float)
    with pytest.raises(ConfigError, match="learning_rate 0.1 is outside space.learning_rate"):
        check_point({**point, "learning_rate": 0.1}, space, "p")
    with pytest.raises(ConfigError, match="batch_size 12 is not one of space.batch_size"):
        check_point({**point, "batch_size": 12}, space, "p")
    with pytest.raises(ConfigError, match="must give exactly learning_rate, batch_size, epochs"):
        check_point({"learning_rate": 5e-5}, space, "p")


def test_a_warmup_ratio_outside_0_to_1_is_refused():
    config = Config()
    config.train.warmup_ratio = 1.5
    with pytest.raises(ConfigError, match="train.warmup_ratio is 1.5"):
        config.validate()
