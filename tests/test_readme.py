"""The README's Python examples are formatted as the project's code is (ruff format)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block {i + 1}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_pass_ruff_format(block):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is installed by the dev extra"
    proc = subprocess.run(
        [ruff, "format", "--check", "--diff", "--stdin-filename", "readme_block.py", "-"],
        input=block, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2
