"""cluster.yaml passes the checks `ray up` makes before it calls AWS, offline.

`ray up` fills in Ray's AWS defaults (prepare_config) and validates the result against Ray's
cluster schema (validate_config). That schema does not look inside node_config, which Ray
hands to EC2 RunInstances as is, so those keys are checked against EC2's own parameter model
(botocore's, shipped with it). Keys under `provider` are not checked by either.
"""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"
GPU_WORKER = "gpu_worker"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Validation must not reach AWS: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("cluster config validation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def cluster() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def ray_up_validate(config: dict[str, Any]) -> None:
    validate_config(prepare_config(copy.deepcopy(config)))


def ec2_errors(node_config: dict[str, Any]) -> str:
    """EC2's RunInstances parameter check of one node_config; an empty string when it passes."""
    session = pytest.importorskip("botocore.session")
    from botocore.validate import ParamValidator

    shape = session.get_session().get_service_model("ec2").operation_model("RunInstances")
    # Ray adds the counts itself when it launches a node.
    params = {**node_config, "MinCount": 1, "MaxCount": 1}
    report = ParamValidator().validate(params, shape.input_shape)
    return report.generate_report() if report.has_errors() else ""


def test_cluster_yaml_passes_ray_up_validation(cluster):
    ray_up_validate(cluster)


@pytest.mark.parametrize(
    "section, key, typo",
    [
        ((), "max_workers", "max_worker"),
        (("available_node_types", GPU_WORKER), "min_workers", "min_worker"),
    ],
)
def test_a_misspelt_key_fails_ray_up_validation(cluster, section, key, typo):
    node = cluster
    for part in section:
        node = node[part]
    node[typo] = node.pop(key)
    with pytest.raises(jsonschema.ValidationError, match=typo):
        ray_up_validate(cluster)


def test_node_configs_are_valid_ec2_launch_parameters(cluster):
    for name, node_type in cluster["available_node_types"].items():
        assert not ec2_errors(node_type["node_config"]), name


def test_a_misspelt_node_config_key_fails_the_ec2_check(cluster):
    node_config = cluster["available_node_types"][GPU_WORKER]["node_config"]
    node_config["InstanceTyp"] = node_config.pop("InstanceType")
    assert "InstanceTyp" in ec2_errors(node_config)


def test_gpu_workers_scale_from_zero_and_offer_a_gpu(cluster):
    assert cluster["head_node_type"] != GPU_WORKER
    worker = cluster["available_node_types"][GPU_WORKER]
    assert worker["min_workers"] == 0
    assert worker["resources"]["GPU"] >= 1
    assert cluster["max_workers"] >= 1
