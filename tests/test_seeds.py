"""search.repeats: the seeds' reports combined, and a seed that trains one epoch per call
training as it would have in one go. The CLI path is tested by the 3-class search
(tests/test_multiclass.py)."""

from __future__ import annotations

import pytest
import torch
from transformers.trainer_utils import get_last_checkpoint

from trainable import data
from trainable.callbacks import StopAfterEpochs
from trainable.config import Config, DataConfig, ModelConfig, SearchConfig
from trainable.config_checks import check_config
from trainable.errors import ConfigError
from trainable.model import load_tokenizer
from trainable.seeds import SEEDS, combine, spread_key
from trainable.task import resolve
from trainable.trainer import build_trainer


def test_scores_are_averaged_work_added_and_the_rest_is_the_first_seeds():
    first = {"epoch": 2.0, "step": 20, "loss": 0.3, "eval_f1": 0.9, "eval_loss": 0.2,
             "time_train_s": 10.0, "tokens_trained": 1000, "loop_started_at": 1.0e9}  # fmt: skip
    second = {**first, "loss": 0.5, "eval_f1": 0.8, "eval_loss": 0.4, "time_train_s": 12.0,
              "loop_started_at": 2.0e9}  # fmt: skip
    combined = combine([first, second], "f1")
    assert combined["eval_f1"] == pytest.approx(0.85)
    assert combined["eval_loss"] == pytest.approx(0.3) and combined["loss"] == pytest.approx(0.4)
    assert combined["time_train_s"] == 22.0 and combined["tokens_trained"] == 2000
    assert combined["epoch"] == 2.0 and combined["step"] == 20
    assert combined["loop_started_at"] == 1.0e9
    assert combined[SEEDS] == 2
    assert combined[spread_key("f1")] == pytest.approx(0.0707, abs=1e-4)


def test_repeats_need_one_worker_per_trial():
    cfg = Config(search=SearchConfig(repeats=2))
    cfg.resources.num_workers = 2
    with pytest.raises(ConfigError, match="resources.num_workers to 1"):
        check_config(cfg)
    with pytest.raises(ConfigError, match="search.repeats is 0"):
        check_config(Config(search=SearchConfig(repeats=0)))


def test_a_seed_trained_an_epoch_per_call_ends_with_the_weights_of_one_run(tmp_path):
    """What trainable.seeds relies on: each call resumes from the seed's last checkpoint, with
    its optimizer, schedule and random state, so the pauses change nothing."""
    cfg = resolve(
        Config(model=ModelConfig(tiny=True), search=SearchConfig(repeats=2)), ["ham", "spam"]
    )
    tokenizer = load_tokenizer(cfg.model)
    splits = data.tokenize(data.prepare(DataConfig(max_rows=200), seed=0), tokenizer, 32)
    hp = {"learning_rate": 1e-3, "batch_size": 16, "epochs": 2}

    in_one_go = build_trainer(cfg, hp, splits, str(tmp_path / "one"), [])
    in_one_go.train()

    paused = tmp_path / "paused"
    checkpoint = None
    for epoch in (1, 2):
        trainer = build_trainer(cfg, hp, splits, str(paused), [StopAfterEpochs(epoch)])
        trainer.train(resume_from_checkpoint=checkpoint)
        checkpoint = get_last_checkpoint(str(paused))
    assert trainer.state.global_step == in_one_go.state.global_step
    expected = in_one_go.model.state_dict()
    for name, weights in trainer.model.state_dict().items():
        assert torch.allclose(weights, expected[name], atol=1e-6), name
