"""A progress line for long work counted in texts: `<verb> N of M texts (R/s, about T s left)`,
at most every PROGRESS_EVERY_S, none for work that ends sooner."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PROGRESS_EVERY_S = 10.0


class CountProgress:
    def __init__(self, total: int, verb: str, stream: TextIO | None = None):
        self.total, self.verb, self.stream = total, verb, stream  # None: stdout as it is then
        self.done = 0
        self.started = self.shown = time.monotonic()

    def __call__(self, texts: int) -> None:
        """`texts` more are done."""
        self.done += texts
        now = time.monotonic()
        if now - self.shown < PROGRESS_EVERY_S or self.done >= self.total:
            return
        self.shown = now
        rate = self.done / (now - self.started)
        print(
            f"{self.verb} {self.done:,} of {self.total:,} texts ({rate:,.0f}/s, about "
            f"{(self.total - self.done) / rate:.0f} s left)",
            file=self.stream or sys.stdout,
            flush=True,
        )
