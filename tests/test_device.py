"""What a trial's GPU can do (trainable/device.py): the precision rule by compute capability."""

from __future__ import annotations

import pytest

from trainable.config_file import load_config
from trainable.device import check_precision, cpu_plan, precision_refusal


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


@pytest.mark.parametrize(
    ("use_gpu", "cpus", "threads", "loaders"),
    [
        (False, 4, 4, 0),  # a CPU trial computes on all it holds
        (True, 1, 1, 1),  # 4 trials on a 4-vCPU g5.xlarge: collate while the GPU works
        (True, 4, 2, 2),
        (True, 16, 14, 2),
    ],
)
def test_a_gpu_trial_collates_in_loader_processes_and_a_cpu_trial_in_its_own(
    use_gpu, cpus, threads, loaders
):
    assert cpu_plan(use_gpu, cpus) == (threads, loaders)


def test_the_trainer_gets_its_loaders_from_the_plan(tmp_path):
    from trainable.trainer import build_training_args

    hp = {"learning_rate": 1e-3, "batch_size": 8, "epochs": 1}
    for use_gpu, loaders in ((True, 1), (False, 0)):
        cfg = load_config(None, {"resources.use_gpu": use_gpu, "resources.cpus_per_worker": 2})
        args = build_training_args(cfg, hp, str(tmp_path))
        assert args.dataloader_num_workers == loaders
        assert args.dataloader_persistent_workers == (loaders > 0)
