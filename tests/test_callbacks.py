"""Callbacks of the worker loop (trainable/callbacks.py): when a non-finite loss fails a trial."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from trainable.callbacks import NON_FINITE_LOGS_TOLERATED, FiniteLossCallback, diverged
from trainable.config import ModelConfig
from trainable.model import load_model, load_tokenizer


def test_a_trial_diverged_when_its_weights_are_not_finite_or_its_loss_stays_so():
    assert diverged(1, weights_finite=False)
    assert not diverged(1, weights_finite=True)  # a step the fp16 scaler skipped
    assert not diverged(NON_FINITE_LOGS_TOLERATED, weights_finite=True)
    assert diverged(NON_FINITE_LOGS_TOLERATED + 1, weights_finite=True)


@pytest.fixture(scope="module")
def trainer_parts(tmp_path_factory):
    cfg = ModelConfig(tiny=True)
    model = load_model(cfg, ["ham", "spam"], load_tokenizer(cfg))
    args = TrainingArguments(output_dir=str(tmp_path_factory.mktemp("out")), use_cpu=True)
    return model, args


def _log(callback, parts, epoch: int, loss: float) -> None:
    model, args = parts
    state = TrainerState(epoch=float(epoch))
    callback.on_log(args, state, TrainerControl(), logs={"loss": loss}, model=model)


def test_an_overflowing_step_the_scaler_skipped_does_not_fail_the_trial(trainer_parts):
    """The epoch's loss overflowed but the weights did not change: training goes on, and a
    finite loss afterwards starts the count again."""
    callback = FiniteLossCallback()
    for epoch in range(1, NON_FINITE_LOGS_TOLERATED + 1):
        _log(callback, trainer_parts, epoch, math.inf)
    _log(callback, trainer_parts, 3, 0.41)
    for epoch in range(4, 4 + NON_FINITE_LOGS_TOLERATED):
        _log(callback, trainer_parts, epoch, math.inf)
    with pytest.raises(FloatingPointError, match="non-finite training loss .* 3 logged loss"):
        _log(callback, trainer_parts, 9, math.inf)


def test_a_trial_whose_weights_turned_nan_fails_at_its_first_non_finite_loss(trainer_parts):
    model, _ = trainer_parts
    weight = next(model.parameters())
    kept = weight.detach().clone()
    with torch.no_grad():
        weight[0, 0] = math.nan
    try:
        with pytest.raises(FloatingPointError, match=r"loss \(nan\) in epoch 2"):
            _log(FiniteLossCallback(), trainer_parts, 2, math.nan)
    finally:
        with torch.no_grad():
            weight.copy_(kept)
