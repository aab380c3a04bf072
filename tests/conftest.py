"""Shared fixtures: the tiny config, small data files, and one real 2-trial search via the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"

# Nothing in the suite may reach a hub: offline failures must be fast and clear.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900):
    """Runs `python -m search.run ...` as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "search.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory) -> Path:
    """One real search of the tiny model: 2 trials, local Ray, sqlite MLflow. Returns its output."""
    output = tmp_path_factory.mktemp("search") / "out"
    proc = run_cli(
        "--config", str(TINY), "--trials", "2", "--output", str(output),
        "--set", "search.keep_top_trials=1",
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"search failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    (output / "cli.log").write_text(proc.stdout + proc.stderr)
    return output
