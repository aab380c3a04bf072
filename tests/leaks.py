"""Where the tests look for planted secrets: files, stored objects and the console."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.conftest import SECRETS


def files_under(folder: Path):
    for root, _, names in os.walk(folder):  # not into links: session_latest is one
        for name in names:
            path = Path(root) / name
            if path.is_file():  # not Ray's sockets
                yield path


def leaks_in(stored: Iterable[tuple[str, bytes]], searched: set[str]) -> list[str]:
    """`secret in place` for each planted secret found in the (place, content) pairs; adds each
    place's base name to `searched`."""
    leaks = []
    for place, data in stored:
        searched.add(place.rsplit("/", 1)[-1])
        leaks += [f"{name} in {place}" for name, s in SECRETS.items() if s.encode() in data]
    return leaks


def files_in(*folders: Path) -> Iterator[tuple[str, bytes]]:
    for folder in folders:
        for path in files_under(folder):
            yield str(path), path.read_bytes()


def assert_no_leaks(leaks: list[str], searched: set[str], reached: set[str]) -> None:
    """No secret found, in a search that reached every place named in `reached`."""
    assert reached <= searched, reached - searched
    assert not leaks, "\n".join(leaks)
