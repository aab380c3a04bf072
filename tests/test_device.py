"""What a trial's GPU can do (trainable/device.py): the precision rule by compute capability."""

from __future__ import annotations

import pytest

from trainable.config_file import load_config
from trainable.device import check_precision, precision_refusal


@pytest.mark.parametrize(
    ("precision", "capability", "refused"),
    [
        ("bf16", (7, 5), True),  # T4: emulated
        ("bf16", (7, 0), True),  # V100: emulated
        ("bf16", (8, 0), False),  # A100
        ("bf16", (9, 0), False),  # H100
        ("fp16", (7, 0), False),
        ("fp32", (6, 0), False),
    ],
)
def test_bf16_is_refused_on_a_gpu_that_would_emulate_it(precision, capability, refused):
    reason = precision_refusal(precision, capability)
    assert (reason is not None) == refused
    if refused:
        assert f"compute capability {capability[0]}.{capability[1]}" in reason
        assert "train.precision=fp16" in reason


def test_a_cpu_trial_is_not_asked_about_its_gpu():
    check_precision(load_config(None, {"train.precision": "bf16", "resources.use_gpu": False}))
