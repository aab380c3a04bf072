"""Two checkouts side by side: another tree's code run beside this one's, each named by its
commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.hpo import running_from

HERE = Path(__file__).resolve().parents[1]  # this tree


def commit(tree: Path) -> str:
    """The tree's commit, marked when it has changes not committed."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True
        ).stdout

    changed = (
        " with changes" if git("status", "--porcelain", "--untracked-files=no").strip() else ""
    )
    return git("rev-parse", "--short", "HEAD").strip() + changed


def json_line(tree: Path, script: Path, args: list[str], env: dict[str, str] | None = None) -> dict:
    """The JSON of the last line `script` (a file) prints when run on `tree`'s code."""
    out = subprocess.run(
        [sys.executable, str(script), *args],
        **running_from(tree, env), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])
