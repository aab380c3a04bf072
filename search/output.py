"""The output folder: whose search it holds, claimed before a search writes, marked finished."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from search.layout import OWNED, SEARCH_FILE
from trainable.config import Config
from trainable.errors import SetupError


def read_search(output: Path) -> dict[str, Any]:
    marker = output / SEARCH_FILE
    if not marker.is_file():
        raise SetupError(f"{output} holds no search to resume (no {SEARCH_FILE}): check --resume")
    return json.loads(marker.read_text())


def check_output_free(cfg: Config, overwrite: bool) -> None:
    if (cfg.output_dir / SEARCH_FILE).exists() and not overwrite:
        raise SetupError(
            f"output folder {cfg.output_dir} already holds a search: pass --overwrite to "
            "replace it or choose another --output"
        )


def claim_output(cfg: Config, overwrite: bool) -> tuple[str, str]:
    """Makes the output folder this search's own; returns the search's name and MLflow run."""
    from search.parent_run import open_search_run

    out = cfg.output_dir
    if overwrite:
        for name in OWNED:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.search.name or f"{out.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_id = open_search_run(cfg, name)
    record = {"name": name, "mlflow_run_id": run_id, "config": cfg.to_dict()}
    (out / SEARCH_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return name, run_id


def mark_finished(output: Path, record: dict[str, Any]) -> None:
    search = read_search(output)
    search["finished"] = record
    partial = output / f".{SEARCH_FILE}.partial"
    partial.write_text(json.dumps(search, indent=2) + "\n")
    partial.replace(output / SEARCH_FILE)


def disk_usage(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
