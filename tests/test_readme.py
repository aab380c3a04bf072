"""The README's Python examples are formatted as the project's code is (ruff format), and the
documents (README, BENCHMARKS.md, docs/) speak of the product, not of the work's history."""

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


# The work's history, not the product: working sessions, issue numbers, machines lent for a time.
HISTORY = re.compile(
    r"(?<!Ray's )session(?!_latest| folder|_token)"
    r"|\bissues? #?\d+|\blent\b|\bhelpers?\b|\bthe brief\b|\bthis work\b",
    re.I,
)
DOCUMENTS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_documents_speak_of_the_product_not_of_its_history():
    """Dates and commits say when; Ray's own session folder (`session_latest`) and AWS's session
    token are the only 'session's."""
    found = [
        f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"
        for doc in DOCUMENTS
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert len(DOCUMENTS) >= 4 and not found, "\n".join(found)
    assert "session_latest" in (ROOT / "README.md").read_text()  # the pattern spares it


def test_the_readme_links_the_documents_it_moved_to_docs():
    readme = (ROOT / "README.md").read_text()
    for doc in ("docs/startup.md", "docs/payoff.md", "docs/aws-iam.md"):
        assert f"]({doc})" in readme and (ROOT / doc).exists(), doc
