from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef

from trainable.config import ModelConfig
from trainable.config_checks import check_config
from trainable.metrics import ClassificationMetrics
from trainable.model import load_model, load_tokenizer

BINARY = ClassificationMetrics(["ham", "spam"], "spam")


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


def test_binary_scores_are_about_the_positive_class_with_precision_and_recall_apart():
    # spam is id 1: 3 predicted spam, 2 of them right; 4 real spam, 2 of them caught
    predictions = np.array([1, 1, 1, 0, 0, 0, 0])
    references = np.array([1, 1, 0, 1, 1, 0, 0])
    scores = ClassificationMetrics(["ham", "spam"], "spam").scores(predictions, references)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert scores["precision_spam"] == scores["precision"]
    assert scores["recall_ham"] == pytest.approx(2 / 3)


def test_the_positive_class_may_be_id_0():
    predictions = np.array([0, 0, 0, 1, 1, 1, 1])
    references = np.array([0, 0, 1, 0, 0, 1, 1])
    scores = ClassificationMetrics(["spam", "ham"], "spam").scores(predictions, references)
    assert scores["precision"] == pytest.approx(2 / 3)  # of the 3 predicted spam (id 0)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(f1_score(references, predictions, pos_label=0))


def test_multi_class_scores_are_scikit_learns_and_not_one_class_f1():
    # Every prediction is a wrong class but for class 1: the old F1 of label id 1 scored 1.0.
    predictions = np.array([2, 1, 0, 2, 1, 0])
    references = np.array([0, 1, 2, 0, 1, 2])
    metrics = ClassificationMetrics(["sports", "tech", "food"])
    scores = metrics((np.eye(3)[predictions], references))
    assert "f1" not in scores and "precision" not in scores
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro"))
    assert scores["macro_f1"] == pytest.approx(1 / 3)
    assert scores["weighted_f1"] == pytest.approx(
        f1_score(references, predictions, average="weighted")
    )
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(references, predictions))
    assert (scores["f1_sports"], scores["f1_tech"], scores["f1_food"]) == (0, 1, 0)
    per_class = metrics.per_class({f"test_{k}": v for k, v in scores.items()}, "test", [2, 2, 2])
    assert per_class["tech"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}


def test_balanced_class_weights_make_each_class_weigh_the_same_in_the_loss():
    import torch

    from trainable.loss import BalancedLoss

    train_labels = [0] * 90 + [1] * 10
    loss = BalancedLoss(train_labels, num_classes=2)
    assert loss.weight.tolist() == pytest.approx([100 / (2 * 90), 100 / (2 * 10)])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=loss.weight)
    assert loss({"logits": logits}, labels).item() == pytest.approx(expected.item())
    assert loss({"logits": logits}, labels).item() != pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item()
    )


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
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=BINARY,
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
    from trainable.callbacks import StopAfterEpochs
    from trainable.config import Config, DataConfig
    from trainable.trainer import build_training_args

    cfg = Config(model=ModelConfig(tiny=True))
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    hp = {"learning_rate": 1e-3, "batch_size": 32, "epochs": 3}
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
    from trainable.task import resolve
    from trainable.trainer import build_trainer

    cfg = resolve(Config(model=ModelConfig(tiny=True), seed=7), ["ham", "spam"])
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    hp = {"learning_rate": 1e-3, "batch_size": 32, "epochs": 1}
    trained = []
    for run in range(2):
        torch.manual_seed(run)  # whatever the process did before must not matter
        trainer = build_trainer(cfg, hp, {"train": splits["train"]}, str(tmp_path / str(run)), [])
        trainer.train()
        trained.append(trainer.model.state_dict())
    assert trained[0].keys() == trained[1].keys()
    for name, weights in trained[0].items():
        assert torch.equal(weights, trained[1][name]), name


def test_balanced_class_weights_reach_the_trainer_from_the_config(tmp_path):
    from trainable import data
    from trainable.config import Config, DataConfig, TrainConfig
    from trainable.loss import BalancedLoss
    from trainable.task import resolve
    from trainable.trainer import build_trainer

    cfg = Config(model=ModelConfig(tiny=True), train=TrainConfig(class_weights="balanced"))
    cfg = resolve(check_config(cfg), ["ham", "spam"])
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    hp = {"learning_rate": 1e-3, "batch_size": 32, "epochs": 1}
    trainer = build_trainer(cfg, hp, {"train": splits["train"]}, str(tmp_path), [])
    assert isinstance(trainer.compute_loss_func, BalancedLoss)
    spam_share = sum(splits["train"]["label"]) / len(splits["train"])
    assert trainer.compute_loss_func.weight[1] / trainer.compute_loss_func.weight[0] == (
        pytest.approx((1 - spam_share) / spam_share)
    )
    unweighted = resolve(check_config(Config(model=ModelConfig(tiny=True))), ["ham", "spam"])
    assert (
        build_trainer(
            unweighted, hp, {"train": splits["train"]}, str(tmp_path), []
        ).compute_loss_func
        is None
    )
