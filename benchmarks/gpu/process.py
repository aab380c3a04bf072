"""A contender's process: its own process group, a time limit, a log, and the few lines of it
worth showing live; with the benchmark's timestamped progress lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

STOP_GRACE_S = 5  # from SIGTERM to SIGKILL, for a contender's whole process group
ECHOED = re.compile(
    r"GPU sharing:|^trials: \d+ at once|\d+/\d+ done \||^search (finished|failed)|^error:"
    r"|^peer: |out of GPU memory"
)
BEGAN = time.monotonic()


def say(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S} +{time.monotonic() - BEGAN:3.0f}s] {text}", flush=True)


def echoed(line: str) -> bool:
    """The contender's lines worth showing live (placement, tallies, failures); the rest stay
    in its log."""
    return bool(ECHOED.search(line))


class Running:
    """A contender's process, leading its own process group (the Ray processes a search starts
    join it), its output going to `log`."""

    def __init__(self, name: str, label: str, cmd: list[str], log: Path):
        self.name, self.label, self.log = name, label, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as sink:
            self.started = time.time()
            self.process = subprocess.Popen(
                cmd,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._done = threading.Event()
        self._echo = threading.Thread(target=self._follow, daemon=True)
        self._echo.start()

    def finish(self, timeout_s: float) -> dict[str, Any]:
        """Waits until `timeout_s` after its start, and stops it there if it still runs."""
        cut_at = None
        try:
            self.process.wait(timeout=max(0.0, self.started + timeout_s - time.time()))
        except subprocess.TimeoutExpired:
            cut_at = time.time()
        ended = time.time()
        self.stop()
        code = self.process.returncode
        how = "stopped at its time budget" if cut_at else f"exited with code {code}"
        say(f"{self.label}: {how} after {ended - self.started:.0f} s (log: {self.log})")
        if code != 0 and not cut_at:
            tail = self.log.read_text(errors="replace").splitlines()[-12:]
            print("\n".join(f"    {line}" for line in tail), flush=True)
        return self.outcome(ended, cut_at)

    def outcome(self, ended: float, cut_at: float | None) -> dict[str, Any]:
        code = None if cut_at else self.process.returncode
        return {"started": self.started, "ended": ended, "cut_at": cut_at, "returncode": code}

    def stop(self) -> None:
        """Ends the whole group, what the driver left behind included."""
        for sig, grace_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                break  # nothing left in the group
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        self._done.set()
        self._echo.join(timeout=3)

    def _follow(self) -> None:
        with self.log.open(errors="replace") as lines:
            pending = ""
            while True:
                pending += lines.readline()
                if pending.endswith("\n"):
                    if echoed(pending):
                        say(f"  {self.name} | {pending.rstrip()}")
                    pending = ""
                elif self._done.is_set():
                    return
                else:
                    time.sleep(0.25)
