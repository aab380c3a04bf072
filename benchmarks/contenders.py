"""The contenders by name, and running one in its own process (light: no heavy imports)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Contender:
    label: str  # its name in the tables
    command: tuple[str, ...]  # its command line after `python -m`


CONTENDERS = {
    "hpo": Contender("finetune-hpo", ("benchmarks.hpo",)),
    "peer": Contender("HF hyperparameter_search", ("benchmarks.peer",)),
    "seed": Contender("seed recipe", ("benchmarks.seed_recipe",)),
    "seed_all": Contender(
        "seed recipe on train + validation", ("benchmarks.seed_recipe", "--all-training-data")
    ),
}


def run_contender(name: str, setting: str, out: Path) -> dict[str, Any]:
    """Runs one contender to its end and reads back its record, with its start and wall time
    (less `analysis_s`, the time it spent on the benchmark's own scoring)."""
    started = time.time()
    command = CONTENDERS[name].command
    subprocess.run(
        [sys.executable, "-m", *command, "--setting", setting, "--out", str(out)], check=True
    )
    result = json.loads((out / f"{name}.json").read_text())
    result["started"] = started
    result["wall_s"] = time.time() - started - result.get("analysis_s", 0)
    return result
