"""MLflow tracking: every trial is one run, logged by Ray's `MLflowLoggerCallback`.

Credentials (MLflow or Databricks tokens) come from the environment only, where MLflow itself
reads them; nothing here copies them into params, tags or files.
"""

from __future__ import annotations

from ray.air.integrations.mlflow import MLflowLoggerCallback

from trainable.config import Config

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
    uri = cfg.tracking_uri
    if uri.startswith(("http://", "https://", "databricks")):
        return f"open {uri} (experiment {cfg.tracking.experiment!r})"
    return f"mlflow ui --backend-store-uri {uri}"
