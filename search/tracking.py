"""MLflow tracking: every trial is one run, logged by Ray's `MLflowLoggerCallback`.

Credentials (MLflow or Databricks tokens) come from the environment only, where MLflow itself
reads them; nothing here copies them into params, tags or files.
"""

from __future__ import annotations

import os

from ray.air.integrations.mlflow import MLflowLoggerCallback

from trainable.config import Config
from trainable.errors import SetupError

SEARCH_TAG = "search"


def mlflow_callback(cfg: Config, search_name: str) -> MLflowLoggerCallback:
    return MLflowLoggerCallback(
        tracking_uri=cfg.tracking_uri,
        experiment_name=cfg.tracking.experiment,
        tags={SEARCH_TAG: search_name},
        save_artifact=False,
    )


def ui_command(cfg: Config) -> str:
    """How a person opens the runs of this search."""
    uri = redact(cfg.tracking_uri)
    if uri.startswith(("http://", "https://", "databricks")):
        return f"open {uri} (experiment {cfg.tracking.experiment!r})"
    return f"mlflow ui --backend-store-uri {uri}"


def check_tracking(cfg: Config) -> None:
    """Reaches the tracking store before any training starts; raises SetupError if it can't."""
    import mlflow

    # A reachable server answers at once; an unreachable one would be retried for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    uri = cfg.tracking_uri
    if cfg.tracking.uri is None:
        return  # the default SQLite store in the output folder, created with it
    try:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SetupError(
            f"could not reach the MLflow tracking store {redact(uri)!r} ({reason[:200]}): "
            "start the server, fix --tracking-uri, or set its credentials in the environment"
        ) from None


def redact(uri: str) -> str:
    """The URI without credentials a user may have put in it (https://user:token@host)."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
