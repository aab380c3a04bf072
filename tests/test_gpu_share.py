"""How many trials share a GPU: the memory estimate, the choice, and the search fitted to a real
local Ray that has GPUs (declared: this machine has none, so Ray only counts them)."""

from __future__ import annotations

import dataclasses

import pytest
import ray

from search.cluster import fit_to_cluster, share_gpus
from search.gpu_probe import GpuProbe, no_node_can
from search.gpu_share import GIB, ModelShape, choose, trial_peak_gib
from trainable.config_file import load_config
from trainable.errors import ConfigError
from trainable.trial import scaling_config

MINILM = ModelShape(parameters=22_713_986, layers=6, hidden=384, heads=12)


# Per layer and example, s*h*(34 + 5*a*s/h) bytes of 16-bit activations (s=128, h=384, a=12).
PER_LAYER = 128 * 384 * (34 + 5 * 12 * 128 / 384)


def test_the_estimate_adds_states_activations_and_the_process_then_a_margin():
    # 16 bytes per parameter; every layer's activations at the training batch.
    states = 22_713_986 * 16
    activations = 6 * 32 * PER_LAYER
    expected = 1.25 * ((states + activations) / GIB + 0.75)
    assert trial_peak_gib(MINILM, 32, 128, "bf16") == pytest.approx(expected)
    fp32 = trial_peak_gib(MINILM, 32, 128, "fp32")
    assert fp32 == pytest.approx(1.25 * ((states + 2 * activations) / GIB + 0.75))
    assert trial_peak_gib(MINILM, 64, 128, "fp32") > fp32 > trial_peak_gib(MINILM, 32, 64, "fp32")


def test_an_evaluation_batch_counts_one_layer_of_activations_when_it_outgrows_training():
    trained = trial_peak_gib(MINILM, 8, 128, "bf16")  # 6 layers x 8 examples
    assert trial_peak_gib(MINILM, 8, 128, "bf16", eval_batch_size=32) == trained  # 1 x 32
    bigger = trial_peak_gib(MINILM, 8, 128, "bf16", eval_batch_size=256)  # 1 x 256
    assert bigger - trained == pytest.approx(1.25 * (256 - 48) * PER_LAYER / GIB)


def test_ddp_buckets_only_for_data_parallel_trials_and_a_second_model_for_repeats():
    alone = trial_peak_gib(MINILM, 32, 128, "bf16")
    ddp = trial_peak_gib(MINILM, 32, 128, "bf16", num_workers=2)
    assert ddp - alone == pytest.approx(1.25 * 22_713_986 * 4 / GIB)
    seeds = trial_peak_gib(MINILM, 32, 128, "bf16", repeats=3)
    assert seeds - alone == pytest.approx(1.25 * 22_713_986 * 12 / GIB)


def test_a_precision_is_refused_only_when_no_probed_gpu_node_can_do_it():
    t4, a100 = GpuProbe(14.0, 15.0, (7, 5)), GpuProbe(70.0, 80.0, (8, 0))
    assert "no GPU node of the cluster can" in no_node_can("bf16", [t4, t4])
    assert no_node_can("bf16", [t4, a100]) is None  # the T4's workers refuse it themselves
    assert no_node_can("bf16", []) is None  # no GPU node up yet
    assert no_node_can("fp16", [t4]) is None


@pytest.mark.parametrize(
    ("asked", "workers", "gpu_gib", "cpus_per_gpu", "cpus_per_worker", "trials"),
    [
        ("auto", 1, 80.0, 16, None, 16),  # 80 * 0.9 // 2.5 = 28 fit in memory; 16 CPUs
        ("auto", 1, 80.0, 16, 4, 4),  # 4 CPUs per worker: 4 per GPU node
        ("auto", 1, 24.0, 4, None, 4),  # an A10G node (g5.xlarge): 8 fit, 4 CPUs
        ("auto", 1, 4.0, 16, None, 1),  # 3.6 usable GiB: one (never none)
        ("auto", 1, None, 16, None, 1),  # no GPU's memory read (none up yet, or no CUDA)
        ("auto", 2, 80.0, 16, None, 1),  # data-parallel trials take whole GPUs
        (3, 1, None, 0, None, 3),  # asked: as asked
    ],
)
def test_the_choice(asked, workers, gpu_gib, cpus_per_gpu, cpus_per_worker, trials):
    share = choose(asked, workers, 2.5, gpu_gib, cpus_per_gpu, cpus_per_worker)
    assert share.trials_per_gpu == trials
    assert share.gpu_per_worker == pytest.approx(1 / trials)
    assert share.reason


def test_trials_per_gpu_must_be_auto_or_a_count_and_whole_gpus_for_data_parallel_trials():
    for value, message in [("some", "use auto or a whole number"), (0, "at least 1")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, {"resources.trials_per_gpu": value})
    with pytest.raises(ConfigError, match="two workers of one trial on one GPU"):
        load_config(None, {"resources.trials_per_gpu": 2, "resources.num_workers": 2})


@pytest.fixture(scope="module")
def ray_with_a_gpu():
    ray.init(num_cpus=8, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _config(**resources):
    overrides = {"search.max_concurrent": 8, "search.trials": 20, "space.batch_size": [8, 32]}
    overrides.update({f"resources.{key}": value for key, value in resources.items()})
    return load_config(None, overrides)


def test_trials_share_the_gpu_as_asked_and_concurrency_counts_gpu_fractions(ray_with_a_gpu):
    cfg, share = share_gpus(_config(trials_per_gpu=4), MINILM)
    fitted = fit_to_cluster(cfg)
    assert share.trials_per_gpu == 4 and fitted.resources.use_gpu
    assert fitted.search.max_concurrent == 4  # 8 asked, 8 CPUs, 1 GPU in quarters
    assert fitted.resources.cpus_per_worker == 2
    assert scaling_config(fitted).resources_per_worker == {"CPU": 2, "GPU": 0.25}


def test_auto_shares_nothing_when_the_gpu_cannot_be_measured(ray_with_a_gpu):
    # Ray was told of a GPU that CUDA cannot see: the probe fails, and one trial gets it whole.
    cfg, share = share_gpus(_config(), MINILM)
    assert share.trials_per_gpu == 1 and "memory could be read" in share.reason
    fitted = fit_to_cluster(cfg)
    assert fitted.search.max_concurrent == 1
    assert scaling_config(fitted).resources_per_worker == {"CPU": 8, "GPU": 1}


def test_without_gpus_nothing_is_shared(ray_with_a_gpu):
    cfg, share = share_gpus(_config(use_gpu=False), MINILM)
    assert share is None and cfg.resources.use_gpu is False
    assert (
        "GPU" not in scaling_config(fit_to_cluster(dataclasses.replace(cfg))).resources_per_worker
    )
