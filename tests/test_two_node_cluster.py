"""A real two-node Ray cluster on 127.0.0.1: the search joins it with --address, trials land on
both nodes, checkpoints on storage both reach, a lost worker node and then a lost head
lose no trial and no epoch, a trial that cannot be placed fails with its reason, and the
export works. As the README's cluster section asks, the search keeps its state in an S3 bucket
(the loopback endpoint of tests/conftest.py), which both nodes reach through their environment.

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
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import pytest

from search.connect import free_ports
from search.layout import OPTUNA_DB, RESULT_FILE, STUDY_NAME
from tests.conftest import (
    DEFAULTS_POINT,
    PLANTED_ENV,
    TINY,
    ray_actor_names,
    ray_process_logs,
    run_cli,
    trial_runs,
)
from tests.leaks import assert_no_leaks, files_in, leaks_in
from tests.records import assert_records_agree

# Token auth: `ray start --head` creates a token when none exists; every process shares it.
ENV = {**os.environ, "RAY_AUTH_MODE": "token"}


def _ray_start(*args: str, temp_dir: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        ["ray", "start", "--disable-usage-stats", *args],
        check=True, capture_output=True, text=True, timeout=180, env={**ENV, **(env or {})},
        cwd=temp_dir,
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
def two_nodes(env: dict[str, str]):
    """A head (node A) and a worker node (node B), each one CPU, their processes given `env`,
    torn down on leaving."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are long
    gcs, dashboard, agent_a, agent_b, metrics_a, metrics_b, client = free_ports(7)
    try:
        _ray_start(
            "--head", f"--port={gcs}", "--num-cpus=1", '--resources={"node_a": 1}',
            f"--temp-dir={temp_dir}", f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={agent_a}", f"--metrics-export-port={metrics_a}",
            f"--ray-client-server-port={client}",
            temp_dir=temp_dir, env=env,
        )  # fmt: skip
        _ray_start(
            f"--address=127.0.0.1:{gcs}", "--num-cpus=1", '--resources={"node_b": 1}',
            f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={agent_b}", f"--metrics-export-port={metrics_b}",
            temp_dir=temp_dir, env=env,
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
def cluster(s3):
    with two_nodes(s3.env) as nodes:
        yield nodes


def _workers_by_node(dashboard: str) -> dict[str, str]:
    """RayTrainWorker actor id → the custom resource of the node it ran on (via the state API).
    A worker Ray Train restarted after its node went may still wait for room: no node yet."""
    script = f"""
import json
from ray.util.state import list_actors, list_nodes
nodes = {{n.node_id: [r for r in n.resources_total if r.startswith("node_")][0]
         for n in list_nodes(address="{dashboard}", detail=True)}}
actors = list_actors(address="{dashboard}", detail=True, limit=1000,
                     filters=[("class_name", "=", "RayTrainWorker")])
print(json.dumps({{a.actor_id: nodes[a.node_id] for a in actors if a.node_id}}))
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


@dataclass
class LostNodesSearch:
    """A search on the two-node cluster that lost node B, then its head, and was resumed on a
    replacement cluster: its output folder, its name, its storage in the bucket, the Ray temp
    folders of both clusters, the resumed CLI's result, and the epochs each trial trains."""

    output: Path
    name: str
    storage: str
    temp_dirs: tuple[str, str]
    resumed: subprocess.CompletedProcess
    epochs: int

    @property
    def storage_key(self) -> str:
        """The storage's key in its bucket (s3://BUCKET/KEY)."""
        return self.storage.removeprefix("s3://").split("/", 1)[1]

    @property
    def experiment_key(self) -> str:
        """The key under which the bucket holds this search's Tune experiment and checkpoints."""
        return f"{self.storage_key}/{self.name}"


@pytest.fixture(scope="module")
def lost_nodes_search(cluster, s3, tmp_path_factory) -> LostNodesSearch:
    """Two trials at once, one per node, the first DEFAULTS_POINT, with checkpoints in the
    bucket and secrets planted in the driver's environment. Node B is lost after both trained
    an epoch: the trial there resumes from its checkpoint on node A once the other trial frees
    it. At the next epoch the head goes too, with the driver, killed outright: the whole
    cluster. A new cluster and --resume finish the search. Used by the last tests of this
    module: it takes the module's cluster down."""
    output = tmp_path_factory.mktemp("lost") / "out"
    storage = f"s3://{s3.bucket}/two-nodes"
    # Trials long enough that neither ends before the other has trained an epoch, though one
    # slot's worker may be ready several seconds after the other's on a loaded machine (an
    # epoch of 1,920 messages takes 2 to 3 s on the tiny model there), and that ASHA stops
    # neither.
    epochs = 5
    defaults = DEFAULTS_POINT.replace("epochs: 2", f"epochs: {epochs}")
    env = {**ENV, **PLANTED_ENV, **s3.env}
    _wait_for_both_cpus(cluster["address"])
    search = subprocess.Popen(
        ["python", "-m", "search.run", "--config", str(TINY), "--trials", "2",
         "--max-concurrent", "2", "--output", str(output), "--address", cluster["address"],
         "--set", f"storage={storage}", "--set", f"space.epochs=[{epochs}]",
         "--set", "data.max_rows=3000", "--set", f"search.grace_period={epochs}",
         "--set", f"search.initial_points=[{defaults}]"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
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

    with two_nodes(s3.env) as replacement:
        resumed = run_cli("--resume", str(output), "--address", replacement["address"], env=env)
    name = json.loads((output / "search.json").read_text())["name"]
    temp_dirs = (cluster["temp_dir"], replacement["temp_dir"])
    return LostNodesSearch(output, name, storage, temp_dirs, resumed, epochs)


def test_losing_a_worker_node_then_the_head_loses_no_trial_and_no_epoch(
    lost_nodes_search, s3, monkeypatch
):
    """Both trials, every epoch counted once in Tune's records as in MLflow's and Optuna's,
    one MLflow run each, and the export, scored on test by a Ray task."""
    search = lost_nodes_search
    output, resumed = search.output, search.resumed
    s3.use(monkeypatch)  # the records are read from the bucket
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "search finished: 2 trials" in resumed.stdout
    results = [key for key in s3.keys(search.experiment_key) if key.endswith("/result.json")]
    assert len(results) == 2 and not (output / "ray_results").exists()
    for key in results:
        rows = s3.read(key).decode()
        reported = [json.loads(row)["training_iteration"] for row in rows.splitlines()]
        assert reported == list(range(1, search.epochs + 1)), key
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    runs = trial_runs(output)
    finished = [run.data.tags["trial_name"] for run in runs if run.info.status == "FINISHED"]
    assert len(runs) == 2 and len(set(finished)) == 2, finished  # none lost, none twice
    for run in runs:
        # An epoch the head's loss kept from Tune's stored record is reported again, at its step.
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval_f1")]
        assert sorted(set(steps)) == list(range(1, search.epochs + 1))
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{output / OPTUNA_DB}")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    record = json.loads((output / "best_model" / RESULT_FILE).read_text())
    assert record["checkpoint"].startswith(f"{search.storage}/{search.name}/checkpoints/")
    assert record["search_over_defaults"] is not None  # the defaults' checkpoint, from the bucket
    # On a cluster a Ray task scored the test split, with a trial worker's resources.
    scored_by = ray_process_logs(search.temp_dirs[1]).get(record["test_scored_on"]["pid"])
    assert (scored_by or "").startswith("python-core-worker-"), record["test_scored_on"]
    # A cluster's Train runs watch for drained nodes (a reclaimed spot machine).
    assert "PreemptionWatcher" in ray_actor_names(search.temp_dirs[1])
    assert_records_agree(output)

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(output / "best_model"))
    assert classify("WINNER!! claim your prize")[0]["label"] in ("ham", "spam")

    again = run_cli("--resume", str(output), env=s3.env)
    assert again.returncode == 0
    assert "already finished" in again.stdout and "nothing to do" in again.stdout


def test_the_search_keeps_its_checkpoints_and_tune_state_in_the_bucket(lost_nodes_search, s3):
    """Every trial's best checkpoint, Tune's experiment state and every trial's record are in
    the bucket; nothing of Tune's is only on the driver's disk."""
    search = lost_nodes_search
    prefix = f"{search.experiment_key}/"
    keys = [key.removeprefix(prefix) for key in s3.keys(prefix)]
    for trial_name in (run.data.tags["trial_name"] for run in trial_runs(search.output)):
        trial_id = trial_name.split("_")[2]
        checkpoints = {  # folders, not Train's checkpoint_manager_snapshot.json beside them
            key.split("/")[2]
            for key in keys
            if key.startswith(f"checkpoints/{trial_id}/checkpoint_") and key.count("/") > 2
        }
        assert len(checkpoints) == 1, (trial_id, checkpoints)  # its best, pruned in the bucket
        (folder,) = {key.split("/")[0] for key in keys if key.startswith(f"run_trial_{trial_id}")}
        assert {"params.json", "result.json", "progress.csv"} <= {
            key.split("/")[1] for key in keys if key.startswith(f"{folder}/")
        }
    assert any(key.startswith("experiment_state-") for key in keys)
    assert any(key.startswith("searcher-state-") for key in keys)
    assert "tuner.pkl" in keys
    # What Tune wrote on the driver's disk was uploaded.
    staged = Path(search.temp_dirs[1]) / "session_latest" / "artifacts"
    (driver,) = staged.glob(f"*/{search.name}/driver_artifacts")
    local = {p.relative_to(driver).as_posix() for p in driver.rglob("*") if p.is_file()}
    assert local and local <= set(keys), local - set(keys)


def test_the_s3_secret_key_reaches_no_object_file_or_log(lost_nodes_search, s3):
    """The secret key every request to the bucket is signed with (planted in the nodes' and the
    driver's environments; Tune would copy the driver's into every trial's runtime env), and
    the tokens planted in the driver's, are in no object of the bucket, no file of the output
    folder, and no log or file of either cluster's Ray sessions, through the losses and the
    resume."""
    search = lost_nodes_search
    objects = s3.objects(s3.keys(search.storage_key))
    searched = set()
    console = [("the console", (search.resumed.stdout + search.resumed.stderr).encode())]
    leaks = leaks_in(objects, searched) + leaks_in(
        [*files_in(search.output, *map(Path, search.temp_dirs)), *console], searched
    )
    # Reached: Tune's pickled tuner and trial parameters and its record in the bucket, the
    # checkpoints, the search record, and the log of Ray's runtime env agent.
    reached = {"tuner.pkl", "params.pkl", "result.json", "model.safetensors", "search.json"}
    assert_no_leaks(leaks, searched, reached | {"runtime_env_agent.log"})
