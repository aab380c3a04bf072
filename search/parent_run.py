"""The search's own MLflow run, the parent of its trials' runs: opened with the config and the
search's params, closed with the test scores, the payoff's intervals, the report and the model
(registered when a name is set)."""

from __future__ import annotations

from pathlib import Path

from search.tracking import SEARCH_TAG, log_batch
from trainable.config import Config

# MLflow 3 opens an experiment without this tag on its GenAI overview (traces, which a search
# has none of); tagged as model training, it opens on the runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def open_search_run(cfg: Config, search_name: str) -> str:
    """The search's parent run; trial runs nest under it. Returns its run id."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        # With the default SQLite store, artifacts live beside it in the output folder rather
        # than in ./mlruns of whatever folder the search was started from.
        location = None if cfg.tracking.uri else (cfg.output_dir / "mlartifacts").as_uri()
        experiment_id = client.create_experiment(
            cfg.tracking.experiment, location, tags=EXPERIMENT_KIND
        )
    else:
        experiment_id = experiment.experiment_id
        for key, value in EXPERIMENT_KIND.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment_id, key, value)
    run = client.create_run(experiment_id, run_name=search_name, tags={SEARCH_TAG: search_name})
    client.log_dict(run.info.run_id, cfg.to_dict(), "config.json")
    params = {
        "model": cfg.model.name,
        "data": cfg.data.source,
        "trials": cfg.search.trials,
        "metric": cfg.search.metric,
        "mode": cfg.search.mode,
        "labels": ", ".join(cfg.data.labels)[:6000],
        "positive_label": cfg.data.positive_label,
    }
    log_batch(client, run.info.run_id, params=params)
    return run.info.run_id


def close_search_run(
    cfg: Config, run_id: str, record: dict | None, report_dir: Path, model_dir: Path | None
) -> None:
    """Logs the outcome to the parent run: test metrics (per class too), the confusion matrix,
    the report (its plots include the confusion matrix), the model (registered)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    if report_dir.is_dir():
        client.log_artifacts(run_id, str(report_dir), report_dir.name)
    if record is None or model_dir is None:
        client.set_terminated(run_id, "FAILED")
        return
    # The model first: MLflow links the metrics a run already has to a model logged in it with
    # one history request per metric (about 160 at 50 classes); metrics logged after, with the
    # model's id, are linked in the one request that logs them.
    model_id = log_model(cfg, run_id, model_dir, record["sample_message"])
    tags = {"best_trial": record["trial_id"]}
    if record.get("validation_bootstrap"):
        tied = record["validation_bootstrap"]["tied_with_winner"]
        tags["tied_with_winner"] = ", ".join(tied)[:5000] or "none"
    scores = {**record["test_metrics"], **payoff_metrics(record)}
    log_batch(client, run_id, metrics=scores, tags=tags, model_id=model_id)
    for key in ("validation_bootstrap", "search_over_defaults", "refit_over_pick"):
        if record.get(key):
            client.log_dict(run_id, record[key], f"{key}.json")
    client.log_dict(run_id, record["test_per_class"], "test_per_class.json")
    client.log_dict(run_id, record["confusion_matrix"], "test_confusion_matrix.json")
    client.set_terminated(run_id, "FINISHED")


def payoff_metrics(record: dict) -> dict[str, float]:
    """The bootstraps' bounds as metrics: the winner's validation interval, and on test the
    pick's gain over the defaults' trial and the refit's over the pick, with their intervals."""
    metrics = {}
    boot = record.get("validation_bootstrap")
    if boot:
        for end in ("low", "high"):
            metrics[f"validation_{boot['metric']}_{end}"] = boot["winner"][end]
    for key in ("search_over_defaults", "refit_over_pick"):
        gain = record.get(key)
        if gain and "value" in gain:  # none when the pick is the defaults' trial
            metrics[f"test_{key}"] = gain["value"]
            for end in ("low", "high"):
                metrics[f"test_{key}_{end}"] = gain[end]
    return metrics


def log_model(cfg: Config, run_id: str, model_dir: Path, example: str) -> str:
    """The exported model in MLflow's transformers flavour, registered when a name is set;
    returns its MLflow model id."""
    from importlib.metadata import version

    import mlflow
    from transformers import pipeline

    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_registry_uri(cfg.tracking_uri)
    classifier = pipeline("text-classification", model=str(model_dir))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(
            classifier,
            name="model",
            task="text-classification",
            input_example=[example],
            registered_model_name=cfg.tracking.registered_model,
            # MLflow's inferred requirements name torchvision, which a text model never needs.
            pip_requirements=[f"{name}=={version(name)}" for name in ("transformers", "torch")],
        )
    return info.model_id
