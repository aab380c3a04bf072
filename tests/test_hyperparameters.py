"""The search space has one home, SpaceConfig: the built-ins' list shorthand and any other
TrainingArguments field with Ray Tune's samplers; the Tune space, Optuna's distributions, the
worker's TrainingArguments, validation and messages all follow from its dimensions."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float
from transformers.trainer_utils import SchedulerType

from search.space import search_space
from trainable.config import Config
from trainable.config_checks import check_config
from trainable.config_file import config_from_dict, load_config
from trainable.errors import ConfigError
from trainable.hyperparameters import SpaceConfig, describe
from trainable.space_checks import check_point
from trainable.trainer import build_training_args

DECLARED = {
    "space.warmup_ratio": {"uniform": [0.0, 0.2]},
    "space.weight_decay": {"uniform": [0.0, 0.1]},
    "space.adam_epsilon": {"loguniform": [1e-9, 1e-6]},
    "space.max_grad_norm": {"quniform": [0.5, 2.0, 0.5]},
    "space.gradient_accumulation_steps": {"randint": [1, 3]},
    "space.lr_scheduler_type": {"choice": ["linear", "cosine"]},
}


def test_the_built_ins_keep_their_shorthand_and_set_their_training_arguments():
    space = SpaceConfig.from_declared(
        {"learning_rate": [1e-5, 1e-3], "batch_size": [8], "epochs": [2, 3]}
    )
    tune_space = search_space(space)
    assert list(tune_space) == list(space.names) == ["learning_rate", "batch_size", "epochs"]
    assert isinstance(tune_space["learning_rate"], Float)
    assert (tune_space["learning_rate"].lower, tune_space["learning_rate"].upper) == (1e-5, 1e-3)
    assert isinstance(tune_space["epochs"], Categorical)
    assert tune_space["epochs"].categories == [2, 3]
    sampled = {"learning_rate": 5e-5, "batch_size": 8.0, "epochs": 3.0}  # YAML gives floats
    assert space.training_arguments(sampled) == {
        "learning_rate": 5e-5,
        "per_device_train_batch_size": 8,
        "num_train_epochs": 3,
    }
    assert isinstance(space.typed(sampled)["batch_size"], int)
    assert describe(space.typed(sampled)) == "learning_rate=5.00e-05 batch_size=8 epochs=3"


def test_each_sampler_reaches_optuna_and_the_trainer_with_its_type():
    cfg = load_config(None, {**DECLARED, "model.tiny": True})
    assert cfg.space.names[3:] == (
        "warmup_ratio", "weight_decay", "adam_epsilon", "max_grad_norm",
        "gradient_accumulation_steps", "lr_scheduler_type",
    )  # fmt: skip
    # Ray's OptunaSearch turns each Tune sampler into the Optuna distribution of that name.
    distributions = OptunaSearch.convert_search_space(search_space(cfg.space))
    assert distributions["warmup_ratio"] == FloatDistribution(0.0, 0.2)
    assert distributions["weight_decay"] == FloatDistribution(0.0, 0.1)
    assert distributions["adam_epsilon"] == FloatDistribution(1e-9, 1e-6, log=True)
    assert distributions["max_grad_norm"] == FloatDistribution(0.5, 2.0, step=0.5)
    assert distributions["gradient_accumulation_steps"] == IntDistribution(1, 2)  # high excluded
    assert distributions["lr_scheduler_type"] == CategoricalDistribution(["linear", "cosine"])

    searcher = OptunaSearch(seed=3)
    searcher.set_search_properties("score", "max", search_space(cfg.space))
    sampled = cfg.space.typed(searcher.suggest("t1"))
    args = build_training_args(cfg, sampled, "unused")
    assert 0.0 <= args.warmup_steps <= 0.2 and isinstance(args.warmup_steps, float)
    assert 0.0 <= args.weight_decay <= 0.1 and 1e-9 <= args.adam_epsilon <= 1e-6
    assert args.max_grad_norm in (0.5, 1.0, 1.5, 2.0)
    assert args.gradient_accumulation_steps in (1, 2)
    assert isinstance(args.gradient_accumulation_steps, int)
    assert args.lr_scheduler_type in (SchedulerType.LINEAR, SchedulerType.COSINE)
    assert args.learning_rate == sampled["learning_rate"]
    assert describe(sampled).split()[3].startswith("warmup_ratio=")


def test_without_a_dimension_the_trainer_gets_the_train_section_s_value():
    cfg = load_config(None, {"train.weight_decay": 0.01, "train.warmup_ratio": 0.1})
    point = {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3}
    args = build_training_args(cfg, point, "unused")
    assert (args.weight_decay, args.warmup_steps) == (0.01, 0.1)
    sampled = load_config(None, {"space.weight_decay": {"uniform": [0.0, 0.3]}})
    assert (
        build_training_args(sampled, {**point, "weight_decay": 0.2}, "unused").weight_decay == 0.2
    )


def test_a_point_that_omits_an_extra_dimension_takes_what_a_trial_gets_without_it():
    cfg = load_config(None, {**DECLARED, "train.warmup_ratio": 0.05})
    (point,) = cfg.initial_points()
    assert point == {
        "learning_rate": 5e-5, "batch_size": 8, "epochs": 3,
        "warmup_ratio": 0.05,  # the train section's
        "weight_decay": 0.0, "adam_epsilon": 1e-8, "max_grad_norm": 1.0,
        "gradient_accumulation_steps": 1,
        "lr_scheduler_type": "linear",  # TrainingArguments' defaults
    }  # fmt: skip
    given = {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3, "lr_scheduler_type": "cosine"}
    cfg = load_config(None, {**DECLARED, "search.initial_points": [given]})
    assert cfg.defaults_point["lr_scheduler_type"] == "cosine"
    assert cfg.defaults_point["warmup_ratio"] == 0.0


def test_the_declared_space_survives_the_saved_config():
    cfg = load_config(None, DECLARED)
    again = config_from_dict(cfg.to_dict())
    assert again.space == cfg.space
    assert cfg.to_dict()["space"]["learning_rate"] == [1e-5, 3e-4]  # the shorthand, as given
    assert cfg.to_dict()["space"]["warmup_ratio"] == {"uniform": [0.0, 0.2]}


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (
            {"warmup_ratioo": {"uniform": [0, 0.1]}},
            "space.warmup_ratioo is not a TrainingArguments",
        ),
        ({"seed": {"randint": [1, 9]}}, "the search sets seed itself"),
        ({"num_train_epochs": {"choice": [1, 2]}}, "sample it as space.epochs"),
        ({"weight_decay": {"normal": [0, 1]}}, "sampler 'normal' is not one of loguniform"),
        ({"weight_decay": {"uniform": [0.3, 0.1]}}, "inverted or empty"),
        ({"weight_decay": {"uniform": [0.1]}}, "uniform takes [low, high]"),
        ({"weight_decay": [0.0, 0.1]}, "must be a sampler with its values"),
        ({"gradient_accumulation_steps": {"uniform": [1, 4]}}, "sample it with randint"),
        ({"lr_scheduler_type": {"uniform": [0, 1]}}, "sample it with choice"),
        ({"lr_scheduler_type": {"choice": ["linear", "wavy"]}}, "value 'wavy' is refused by Tr"),
        ({"warmup_ratio": {"uniform": [0.0, 1.5]}}, "must lie in [0, 1)"),
        ({"epochs": {"uniform": [1, 3]}}, "space.epochs [1, 3] must be whole numbers"),
        ({"batch_size": {"randint": [8, 33]}}, None),  # allowed: whole numbers
    ],
)
def test_a_space_that_cannot_be_sampled_is_refused_with_the_fix(declared, message):
    overrides = {f"space.{name}": value for name, value in declared.items()}
    if message is None:
        assert load_config(None, overrides).space["batch_size"].largest() == 32
        return
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        load_config(None, overrides)


UNSAMPLED = {"lr_scheduler_type": "linear"}


def test_initial_points_are_checked_against_every_dimension_without_being_changed():
    space = SpaceConfig.from_declared({"lr_scheduler_type": {"choice": ["linear", "cosine"]}})
    point = {"learning_rate": 5e-5, "batch_size": 8.0, "epochs": 3}
    check_point(point, space, UNSAMPLED, "p")
    assert point["batch_size"] == 8.0 and isinstance(point["batch_size"], float)
    with pytest.raises(ConfigError, match="learning_rate 0.1 is outside space.learning_rate"):
        check_point({**point, "learning_rate": 0.1}, space, UNSAMPLED, "p")
    with pytest.raises(ConfigError, match="batch_size 12 is not one of space.batch_size"):
        check_point({**point, "batch_size": 12}, space, UNSAMPLED, "p")
    with pytest.raises(ConfigError, match="lr_scheduler_type constant is not one of"):
        check_point({**point, "lr_scheduler_type": "constant"}, space, UNSAMPLED, "p")
    with pytest.raises(ConfigError, match="must give learning_rate, batch_size, epochs, and may"):
        check_point({"learning_rate": 5e-5}, space, UNSAMPLED, "p")


def test_a_point_that_omits_a_dimension_must_fall_inside_it():
    """The defaults' point omits weight_decay; a trial without it takes 0, which a log range
    cannot hold (nor can Optuna record it there)."""
    declared = {"space.weight_decay": {"loguniform": [1e-4, 1e-1]}}
    with pytest.raises(ConfigError, match=r"omits weight_decay, so its trial takes 0, outside"):
        load_config(None, declared)
    assert load_config(None, {**declared, "search.initial_points": []}).space.extra
    point = {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3, "weight_decay": 1e-3}
    assert load_config(None, {**declared, "search.initial_points": [point]}).defaults_point == point
    assert load_config(None, {"space.weight_decay": {"uniform": [0.0, 0.1]}}).defaults_point


def test_a_warmup_ratio_outside_0_to_1_is_refused():
    config = Config()
    config.train.warmup_ratio = 1.5
    with pytest.raises(ConfigError, match="train.warmup_ratio is 1.5"):
        check_config(config)
