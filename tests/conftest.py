"""Shared fixtures: the tiny config, small data files, and one real 2-trial search via the CLI."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from search.connect import free_ports

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"

# Nothing in the suite may reach a hub: offline failures must be fast and clear.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The suite runs on two pytest-xdist workers (pyproject.toml). A test sharing one of these
# searches, or the two-node cluster, runs on the worker that made it: each is made once.
SHARED = ("tiny_search", "topic_search", "cluster", "warm_searches")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        for name in SHARED:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    module: str = "search.run",
):
    """Runs `python -m search.run ...` as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# The first trial of the shared search, as the shipped configs run the HF Trainer's defaults.
# It omits the search's declared dimensions (EXTRA_SPACE): the trial takes their defaults.
DEFAULTS_POINT = "{learning_rate: 1.0e-3, batch_size: 16, epochs: 2}"
# Declared beside the built-ins in the shared search: a range and a choice.
EXTRA_SPACE = {
    "warmup_ratio": "{uniform: [0.0, 0.2]}",
    "lr_scheduler_type": "{choice: [linear, cosine]}",
}
# Planted in the search's environment; no file, log, param or tag may ever contain them.
PLANTED_ENV = {
    "MLFLOW_TRACKING_TOKEN": "planted-mlflow-token-5f1c",
    "DATABRICKS_TOKEN": "planted-databricks-token-9a2e",
    "AWS_SECRET_ACCESS_KEY": "planted-aws-secret-77d0",
}
# Planted in the user info of --tracking-uri (http://user:password@host), a form MLflow accepts
# and the unauthenticated test server ignores.
URI_PASSWORD = "planted-uri-password-3b9c"
SECRETS = {**PLANTED_ENV, "the tracking URI's password": URI_PASSWORD}
MLFLOW_REQUESTS = "mlflow_server.log"  # in tiny_search's output: the server's log of the search


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 with a SQLite backend; yields (uri, its folder)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    (port,) = free_ports(1)
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded machine starts it slowly
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "mlflow server did not start:\n" + (root / "server.log").read_text()
                    )
                time.sleep(1)
        yield uri, root
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


S3_BUCKET = "finetune-hpo-tests"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    env: dict[str, str]  # what the search's processes need to reach the endpoint
    bucket: str = S3_BUCKET

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, **_boto_credentials(self.env))

    def keys(self, prefix: str = "") -> list[str]:
        """Every object's key under `prefix` in the bucket, as S3 lists them."""
        pages = self.client().get_paginator("list_objects_v2")
        pages = pages.paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        return next(self.objects([key]))[1]

    def objects(self, keys: list[str]):
        """(key, content) of each object named, read through one client."""
        client = self.client()
        for key in keys:
            yield key, client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, body: bytes) -> str:
        """Uploads `body` as `key`; returns its s3:// URI."""
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"

    def use(self, monkeypatch) -> None:
        """This process reaches the endpoint, as the search's processes do."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)


def _boto_credentials(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="session")
def s3() -> S3Endpoint:
    """A real S3 endpoint on 127.0.0.1 (moto's server, in a thread of this process), holding
    the bucket S3_BUCKET. A search reaches it as it would any S3-compatible store: through
    AWS_ENDPOINT_URL and credentials in its environment (the planted secret key)."""
    from moto.server import ThreadedMotoServer

    (port,) = free_ports(1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "finetune-hpo-tests",
        "AWS_SECRET_ACCESS_KEY": PLANTED_ENV["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance role to look for on loopback
    }
    endpoint = S3Endpoint(url, env)
    endpoint.client().create_bucket(Bucket=S3_BUCKET)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    try:
        yield endpoint
    finally:
        server.stop()


def trial_runs(output: Path) -> list:
    """The MLflow runs of the trials of the search in `output` (its own SQLite store)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("finetune-hpo")
    return client.search_runs([experiment.experiment_id], "tags.trial_name != ''")


def ray_process_logs(temp_dir: Path) -> dict[int, str]:
    """The pid of every driver and worker process of the Ray sessions under `temp_dir` → the
    name of its log (python-core-driver-... or python-core-worker-...)."""
    return {
        int(path.name.removesuffix(".log").split("_")[-1]): path.name
        for path in Path(temp_dir).glob("**/logs/python-core-*.log")
    }


def ray_actor_names(temp_dir: Path) -> set[str]:
    """The class of every actor the Ray sessions under `temp_dir` ran, as their worker logs
    name them."""
    return {
        line.split(":actor_name:")[1].strip()
        for log in Path(temp_dir).glob("**/logs/worker-*.out")
        for line in log.read_text(errors="replace").splitlines()
        if ":actor_name:" in line
    }


@pytest.fixture(scope="session")
def ray_tmpdir():
    """Ray's temp folder for the CLI searches, so that a test can read their session logs: short,
    as Ray's unix sockets live under it and their paths may not pass 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory, mlflow_server, ray_tmpdir) -> Path:
    """One real search of the tiny model: 2 trials at once sharing the CPUs as the default config
    does, the first one DEFAULTS_POINT, EXTRA_SPACE beside the built-ins, local Ray, logged to
    the MLflow server through a URI with a user and password, with secrets planted in its
    environment, its winner refit on train + validation, though a placement group left behind
    as the trials end holds every CPU (tests/left_behind.py). Ray and every other temp file of
    the search live in ray_tmpdir. Returns its output folder."""
    output = tmp_path_factory.mktemp("search") / "out"
    uri = mlflow_server[0].replace("http://", f"http://someuser:{URI_PASSWORD}@")
    server_log = mlflow_server[1] / "server.log"
    logged_before = server_log.stat().st_size
    proc = run_cli(
        "--config", str(TINY), "--trials", "2", "--output", str(output),
        "--tracking-uri", uri, "--set", "search.keep_top_trials=1",
        "--set", "search.refit=true", "--max-concurrent", "2",
        "--set", f"search.initial_points=[{DEFAULTS_POINT}]",
        *(arg for name, space in EXTRA_SPACE.items() for arg in ("--set", f"space.{name}={space}")),
        "--set", "resources.cpus_per_worker=null",
        # Unremoved, the planted group would hold the refit's CPUs until this fails it.
        "--set", "resources.placement_timeout_s=180",
        env={**PLANTED_ENV, "RAY_TMPDIR": str(ray_tmpdir), "TMPDIR": str(ray_tmpdir)},
        module="tests.left_behind",
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"search failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    (output / "cli.log").write_text(proc.stdout + proc.stderr)
    # The server's access lines while the search ran: what it asked of MLflow.
    with open(server_log, "rb") as log:
        log.seek(logged_before)
        (output / MLFLOW_REQUESTS).write_bytes(log.read())
    return output
