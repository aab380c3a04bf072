"""A real two-node Ray cluster on 127.0.0.1: the search joins it with --address, trials land on
both nodes, checkpoints on the shared storage path, a lost worker node and then a lost head
lose no trial and no epoch, a trial that cannot be placed fails with its reason, and the
export works.

Each node is its own raylet (`ray start --head`, then `ray start --address ...`) with one CPU
and a resource naming it, so two concurrent one-CPU trials can only run one per node.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time

import pandas as pd
import pytest

from search.connect import free_ports
from tests.conftest import TINY, ray_process_logs, run_cli
from tests.records import assert_records_agree

# Token auth: `ray start --head` creates a token when none exists; every process shares it.
ENV = {**os.environ, "RAY_AUTH_MODE": "token"}


def _ray_start(*args: str, temp_dir: str) -> None:
    subprocess.run(
        ["ray", "start", "--disable-usage-stats", *args],
        check=True, capture_output=True, text=True, timeout=180, env=ENV, cwd=temp_dir,
    )  # fmt: skip


def _stop_cluster(temp_dir: str, gcs: int) -> None:
    """Kills this cluster's processes only (`ray stop` would stop every Ray on the machine):
    those started with its temp dir or GCS address, and everything they started."""
    import psutil

    doomed = set()
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if any(temp_dir in part or part.endswith(f":{gcs}") for part in args):
            doomed.add(proc)
            doomed.update(proc.children(recursive=True))
    for proc in doomed:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@contextlib.contextmanager
def two_nodes():
    """A head (node A) and a worker node (node B), each one CPU, torn down on leaving."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are long
    gcs, dashboard, agent_a, agent_b, metrics_a, metrics_b, client = free_ports(7)
    try:
        _ray_start(
            "--head", f"--port={gcs}", "--num-cpus=1", '--resources={"node_a": 1}',
            f"--temp-dir={temp_dir}", f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={agent_a}", f"--metrics-export-port={metrics_a}",
            f"--ray-client-server-port={client}",
            temp_dir=temp_dir,
        )  # fmt: skip
        _ray_start(
            f"--address=127.0.0.1:{gcs}", "--num-cpus=1", '--resources={"node_b": 1}',
            f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={agent_b}", f"--metrics-export-port={metrics_b}",
            temp_dir=temp_dir,
        )  # fmt: skip
        yield {
            "address": f"127.0.0.1:{gcs}",
            "dashboard": f"http://127.0.0.1:{dashboard}",
            "node_b_port": metrics_b,  # names node B's raylet among the processes
            "stop": lambda: _stop_cluster(temp_dir, gcs),
            "temp_dir": temp_dir,
        }
    finally:
        _stop_cluster(temp_dir, gcs)


@pytest.fixture(scope="module")
def cluster():
    with two_nodes() as nodes:
        yield nodes


def _workers_by_node(dashboard: str) -> dict[str, str]:
    """RayTrainWorker actor id → the custom resource of the node it ran on (via the state API)."""
    script = f"""
import json
from ray.util.state import list_actors, list_nodes
nodes = {{n.node_id: [r for r in n.resources_total if r.startswith("node_")][0]
         for n in list_nodes(address="{dashboard}", detail=True)}}
actors = list_actors(address="{dashboard}", detail=True, limit=1000,
                     filters=[("class_name", "=", "RayTrainWorker")])
print(json.dumps({{a.actor_id: nodes[a.node_id] for a in actors}}))
"""
    for _ in range(10):  # the state API can lag the actors' end by a moment
        proc = subprocess.run(
            ["python", "-c", script], capture_output=True, text=True, env=ENV, timeout=120
        )
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        time.sleep(2)
    raise AssertionError(proc.stderr[-3000:])


def test_a_local_storage_path_is_refused_on_a_multi_node_cluster(cluster, tmp_path):
    proc = run_cli(
        "--config", str(TINY), "--output", str(tmp_path / "out"), "--address", cluster["address"],
        env={"RAY_AUTH_MODE": "token"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "2 nodes" in proc.stderr and "storage" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_cluster_without_the_state_api_is_refused(tmp_path):
    """Ray Train frees a trial's CPUs and GPUs after Tune stops it early through the state API,
    which the dashboard serves; without it the next trial would wait forever. Seen on a GPU
    machine whose Ray lacked its [default] extra: the third trial waited, with no error."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    gcs, agent, metrics, client = free_ports(4)
    out = tmp_path / "out"
    try:
        _ray_start(
            "--head", f"--port={gcs}", "--num-cpus=1", "--include-dashboard=false",
            f"--temp-dir={temp_dir}", f"--dashboard-agent-listen-port={agent}",
            f"--metrics-export-port={metrics}", f"--ray-client-server-port={client}",
            temp_dir=temp_dir,
        )  # fmt: skip
        proc = run_cli(
            "--config", str(TINY), "--output", str(out), "--address", f"127.0.0.1:{gcs}",
            env={"RAY_AUTH_MODE": "token"},
        )  # fmt: skip
    finally:
        _stop_cluster(temp_dir, gcs)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stdout, proc.stderr
    assert "without its dashboard" in lines[0] and "ray[default]" in lines[0]
    assert not out.exists()


HOLD_CPUS = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
group = ray.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
ray.get(group.ready())
print("held", flush=True)
time.sleep(600)
"""


def test_a_trial_that_cannot_be_placed_stops_on_ctrl_c_then_fails_with_its_reason(
    cluster, tmp_path
):
    """Another job holds both nodes' CPUs. Ctrl-C while the trial waits keeps the search
    resumable (exit 130), and the resumed trial fails after resources.placement_timeout_s
    with a line naming what it waited for, instead of waiting for ever: a search whose every
    trial failed."""
    blocker = subprocess.Popen(
        ["python", "-c", HOLD_CPUS, cluster["address"]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    output = tmp_path / "out"
    try:
        assert blocker.stdout.readline().strip() == "held", blocker.stderr.read()
        search = subprocess.Popen(
            ["python", "-m", "search.run", "--config", str(TINY), "--trials", "1",
             "--output", str(output), "--address", cluster["address"],
             "--set", f"storage={tmp_path / 'shared'}", "--set", "resources.max_failures=0",
             "--set", "resources.placement_timeout_s=8"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )  # fmt: skip
        for line in search.stdout:
            if "started" in line:
                break
        search.send_signal(signal.SIGINT)
        _, err = search.communicate(timeout=120)
        assert search.returncode == 130, err[-3000:]
        assert f"--resume {output}" in err

        resumed = run_cli("--resume", str(output), env={"RAY_AUTH_MODE": "token"})
    finally:
        blocker.kill()
    # Every trial failed: the search exits 1, names each failed trial with its reason in one
    # line, and exports nothing.
    assert resumed.returncode == 1, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "search failed: no trial finished an epoch; 1 failed" in resumed.stderr
    (trial_id,) = pd.read_csv(output / "report" / "trials.csv", dtype=str)["trial"]
    (reason,) = [line for line in resumed.stderr.splitlines() if f"{trial_id}: " in line]
    assert "could not be placed within 8 s, each asking for {'CPU': 1}" in reason
    assert "resources.placement_timeout_s" in reason
    assert "Traceback" not in resumed.stderr.split("search failed:")[-1]
    assert (output / "report" / "trials.md").read_text().count("errored") == 1
    assert not (output / "best_model").exists()
    assert_records_agree(output)


WAIT_FOR_CPUS = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
deadline = time.monotonic() + 60
while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
print(ray.available_resources().get("CPU", 0))
"""


def _wait_for_both_cpus(address: str) -> None:
    """Until the jobs of earlier tests have given back both nodes' CPUs: the two trials must
    run at once, one per node, not one after the other on the head."""
    proc = subprocess.run(
        ["python", "-c", WAIT_FOR_CPUS, address], capture_output=True, text=True, env=ENV
    )
    assert proc.stdout.strip().splitlines()[-1:] == ["2.0"], proc.stdout + proc.stderr[-3000:]


def _lose_node_b(port: int, log: str) -> None:
    """Node B goes as a reclaimed spot machine does: its raylet and everything under it
    (its training workers among them) killed at once."""
    import psutil

    (raylet,) = [
        p for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "raylet" and any(f"port={port}" in a for a in p.info["cmdline"] or [])
    ]  # fmt: skip
    doomed = [raylet, *raylet.children(recursive=True)]
    workers = [" ".join(p.cmdline()) for p in doomed[1:]]
    assert any("RayTrainWorker" in w for w in workers), f"no worker on B: {workers}\n{log}"
    for proc in doomed:
        proc.kill()


def test_losing_a_worker_node_then_the_head_loses_no_trial_and_no_epoch(cluster, tmp_path):
    """Two trials at once, one per node, with checkpoints on shared storage. Node B is lost
    after both trained an epoch: the trial there resumes from its checkpoint on node A once
    the other trial frees it. At the next epoch the head goes too, with the driver: the whole
    cluster. A new cluster and --resume finish the search: both trials, every epoch counted
    once in Tune's records as in MLflow's and Optuna's, one MLflow run each, and the export.
    Last in this module: it takes the module's cluster down."""
    storage, output = tmp_path / "shared", tmp_path / "out"
    # Trials long enough that neither ends before the other has trained an epoch, though one
    # may start several seconds after the other on a loaded machine (an epoch of 1,920 messages
    # takes about a second on the tiny model), and that ASHA stops neither.
    epochs = 8
    _wait_for_both_cpus(cluster["address"])
    search = subprocess.Popen(
        ["python", "-m", "search.run", "--config", str(TINY), "--trials", "2",
         "--max-concurrent", "2", "--output", str(output), "--address", cluster["address"],
         "--set", f"storage={storage}", "--set", f"space.epochs=[{epochs}]",
         "--set", "data.max_rows=3000", "--set", f"search.grace_period={epochs}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    seen, log = set(), []
    for line in search.stdout:
        log.append(line)
        if f" epoch 1/{epochs}" in line:
            seen.add(line.split("trial ")[1].split(" ")[0])
            if len(seen) == 2:
                break
    _lose_node_b(cluster["node_b_port"], "".join(log))
    for line in search.stdout:
        if " epoch " in line:  # a trial trains on: one trial at least is mid-way
            break
    assert sorted(set(_workers_by_node(cluster["dashboard"]).values())) == ["node_a", "node_b"]
    search.kill()
    cluster["stop"]()
    search.communicate(timeout=60)

    with two_nodes() as replacement:
        resumed = run_cli(
            "--resume", str(output), "--address", replacement["address"],
            env={"RAY_AUTH_MODE": "token"},
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "search finished: 2 trials" in resumed.stdout
    name = json.loads((output / "search.json").read_text())["name"]
    assert (storage / name / "tuner.pkl").is_file() and not (output / "ray_results").exists()
    for result in (storage / name).glob("run_trial_*/result.json"):
        reported = [
            json.loads(row)["training_iteration"] for row in result.read_text().splitlines()
        ]
        assert reported == list(range(1, epochs + 1)), result
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("finetune-hpo").experiment_id], "tags.trial_name != ''"
    )
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    for run in runs:
        # An epoch the head's loss kept from Tune's stored record is reported again, at its step.
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval_f1")]
        assert sorted(set(steps)) == list(range(1, epochs + 1))
    record = json.loads((output / "best_model" / "hpo_result.json").read_text())
    assert record["checkpoint"].startswith(str(storage))
    # On a cluster a Ray task scored the test split, with a trial worker's resources.
    scored_by = ray_process_logs(replacement["temp_dir"]).get(record["test_scored_on"]["pid"])
    assert (scored_by or "").startswith("python-core-worker-"), record["test_scored_on"]
    assert_records_agree(output)

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(output / "best_model"))
    assert classify("WINNER!! claim your prize")[0]["label"] in ("ham", "spam")
