from __future__ import annotations

import numpy as np
import pytest

from trainable.config import ModelConfig
from trainable.metrics import compute_metrics
from trainable.model import load_model, load_tokenizer
from trainable.train_loop import objective


def test_embedded_model_gets_the_label_map():
    cfg = ModelConfig()
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, ["ham", "spam"], tokenizer)
    assert model.config.model_type == "bert"
    assert model.config.id2label == {0: "ham", 1: "spam"}
    assert model.config.label2id == {"ham": 0, "spam": 1}
    assert 22_000_000 < model.num_parameters() < 23_500_000


def test_tiny_model_is_a_small_random_distilbert_with_the_embedded_tokenizer():
    cfg = ModelConfig(tiny=True)
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, ["ham", "spam"], tokenizer)
    assert model.config.model_type == "distilbert"
    assert model.config.vocab_size == len(tokenizer)
    assert model.num_parameters() < 2_000_000
    logits = model(**tokenizer(["free prize"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)


def test_unknown_model_is_a_config_error(tmp_path):
    from trainable.errors import ConfigError

    with pytest.raises(ConfigError, match="could not load tokenizer"):
        load_tokenizer(ModelConfig(name=str(tmp_path / "no-model")))


def test_metrics_score_spam_as_the_positive_class():
    logits = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [0, 1]])
    labels = np.array([1, 0, 0, 1, 1])
    metrics = compute_metrics((logits, labels))
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_objective_breaks_f1_ties_by_lower_loss_without_overturning_f1():
    a = objective({"eval_f1": 0.96, "eval_loss": 0.05}, "eval_f1", "max", "eval_loss")
    b = objective({"eval_f1": 0.96, "eval_loss": 0.20}, "eval_f1", "max", "eval_loss")
    c = objective({"eval_f1": 0.97, "eval_loss": 0.90}, "eval_f1", "max", "eval_loss")
    assert c > a > b
    assert objective({"eval_f1": 0.5}, "eval_f1", "max", None) == 0.5
    assert objective({"eval_loss": 0.3, "x": 1.0}, "eval_loss", "min", "x") > 0.3


def test_a_checkpoint_taken_at_the_end_of_training_gives_back_its_last_evaluation(tmp_path):
    """What a trial restored after it had already finished reports instead of training."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from trainable import data
    from trainable.config import DataConfig
    from trainable.train_loop import finished_metrics

    cfg = ModelConfig(tiny=True)
    tokenizer = load_tokenizer(cfg)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=32,
        eval_strategy="epoch", save_strategy="epoch", report_to="none", use_cpu=True,
    )  # fmt: skip
    Trainer(
        model=load_model(cfg, ["ham", "spam"], tokenizer), args=args,
        train_dataset=splits["train"], eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
    ).train()  # fmt: skip
    first, last = sorted(tmp_path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert finished_metrics(first) is None
    final = finished_metrics(last)
    assert final["epoch"] == 2 and 0 <= final["eval_f1"] <= 1 and final["eval_loss"] > 0


def test_a_refit_stops_after_the_selected_epoch_on_the_schedule_the_trial_had(tmp_path):
    """A trial of 3 epochs whose best checkpoint was epoch 1 is refit for 1 epoch, its learning
    rate decayed as the trial's was after epoch 1, not annealed to zero."""
    import math

    from transformers import DataCollatorWithPadding, Trainer

    from trainable import data
    from trainable.config import Config, DataConfig
    from trainable.train_loop import Hyperparameters, StopAfterEpochs, build_training_args

    cfg = Config(model=ModelConfig(tiny=True))
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    hp = Hyperparameters(learning_rate=1e-3, batch_size=32, epochs=3)
    trainer = Trainer(
        model=load_model(cfg.model, ["ham", "spam"], tokenizer),
        args=build_training_args(cfg, hp, str(tmp_path), per_epoch=False),
        train_dataset=splits["train"], data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[StopAfterEpochs(1)],
    )  # fmt: skip
    trainer.train()
    steps_per_epoch = math.ceil(len(splits["train"]) / 32)
    assert trainer.state.global_step == steps_per_epoch
    assert trainer.state.max_steps == 3 * steps_per_epoch
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(1e-3 * 2 / 3)
    assert not list(tmp_path.glob("checkpoint-*"))  # a refit saves once, at its end, itself


def test_a_trial_trains_to_the_same_weights_every_time(tmp_path):
    """Same config, seed and hyperparameters, same model: the classification head is seeded
    before it exists, not only the training loop."""
    import torch

    from trainable import data
    from trainable.config import Config, DataConfig
    from trainable.train_loop import Hyperparameters, build_trainer

    cfg = Config(model=ModelConfig(tiny=True), seed=7)
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    hp = Hyperparameters(learning_rate=1e-3, batch_size=32, epochs=1)
    trained = []
    for run in range(2):
        torch.manual_seed(run)  # whatever the process did before must not matter
        trainer = build_trainer(cfg, hp, {"train": splits["train"]}, str(tmp_path / str(run)), [])
        trainer.train()
        trained.append(trainer.model.state_dict())
    assert trained[0].keys() == trained[1].keys()
    for name, weights in trained[0].items():
        assert torch.equal(weights, trained[1][name]), name
