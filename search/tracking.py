"""MLflow tracking: every trial is one run, logged by Ray's `MLflowLoggerCallback`.

Credentials (MLflow or Databricks tokens) come from the environment only, where MLflow itself
reads them; nothing here copies them into params, tags or files.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ray.air.integrations.mlflow import MLflowLoggerCallback

from search.credentials import redact
from trainable.config import Config
from trainable.errors import SetupError, first_line

SEARCH_TAG = "search"
# MLflow nests a run under the run this tag names; MLflowLoggerCallback has no parent runs of
# its own but passes its tags to every trial run it opens.
PARENT_TAG = "mlflow.parentRunId"
ABANDONED_TAG = "abandoned"
# MLflow 3 opens an experiment without this tag on its GenAI overview (traces, which a search
# has none of); tagged as model training, it opens on the runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


class ResumableMLflowLoggerCallback(MLflowLoggerCallback):
    """Continues a trial's own run when the trial starts again after a restore.

    Ray 2.60's callback keeps its trial-to-run map, `_trial_runs`, in memory only: `setup()`
    empties it and the callback has no `get_state` (the hook ray-project/ray#31957 gave stateful
    callbacks), so a trial resumed by a restarted driver would open a second run. No
    ray-project/ray issue for this was found. The map has no public API; a run put there is the
    one Ray's `log_trial_start` logs to. Each run is tagged with its trial's name (by Ray) and
    the search's: a trial starting without a run here first looks for its own.
    tests/test_ray_contracts.py fails if Ray changes any of this.
    """

    def log_trial_start(self, trial):
        if trial not in self._trial_runs:
            import mlflow

            # Ray's setup() pointed MLflow at this URI, the one a None here falls back to.
            client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
            experiment = client.get_experiment_by_name(self.experiment_name)
            runs = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.trial_name = '{trial}' and "
                f"tags.{SEARCH_TAG} = '{self.tags[SEARCH_TAG]}'",
                max_results=1,
            )
            if runs:
                self._trial_runs[trial] = runs[0].info.run_id
                client.update_run(runs[0].info.run_id, status="RUNNING")
        super().log_trial_start(trial)


def end_abandoned_runs(cfg: Config, search_name: str) -> int:
    """Ends as KILLED the trial runs still running once a resumed search has ended: each belongs
    to a trial a killed driver started after Tune last saved its state, which the resumed search
    never knew of (it ran another in its place). Returns how many."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{SEARCH_TAG} = '{search_name}' and tags.trial_name != '' "
        "and attributes.status = 'RUNNING'",
    )
    for run in runs:
        client.set_tag(run.info.run_id, ABANDONED_TAG, "the driver was killed before Tune saved it")
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def mlflow_callback(cfg: Config, search_name: str, parent_run_id: str) -> MLflowLoggerCallback:
    return ResumableMLflowLoggerCallback(
        tracking_uri=cfg.tracking_uri,
        experiment_name=cfg.tracking.experiment,
        tags={SEARCH_TAG: search_name, PARENT_TAG: parent_run_id},
        save_artifact=False,
    )


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
    for key, value in {
        "model": cfg.model.name,
        "data": cfg.data.source,
        "trials": cfg.search.trials,
        "metric": cfg.search.metric,
        "mode": cfg.search.mode,
        "labels": ", ".join(cfg.data.labels)[:6000],
        "positive_label": cfg.data.positive_label,
    }.items():
        client.log_param(run.info.run_id, key, value)
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
    scores = {**record["test_metrics"], **payoff_metrics(record)}
    now = int(time.time() * 1000)
    client.log_batch(
        run_id, metrics=[mlflow.entities.Metric(k, v, now, 0) for k, v in scores.items()]
    )
    for key in ("validation_bootstrap", "gain_over_defaults"):
        if record.get(key):
            client.log_dict(run_id, record[key], f"{key}.json")
    if record.get("validation_bootstrap"):
        tied = record["validation_bootstrap"]["tied_with_winner"]
        client.set_tag(run_id, "tied_with_winner", ", ".join(tied)[:5000] or "none")
    client.log_dict(run_id, record["test_per_class"], "test_per_class.json")
    client.log_dict(run_id, record["confusion_matrix"], "test_confusion_matrix.json")
    client.set_tag(run_id, "best_trial", record["trial_id"])
    log_model(cfg, run_id, model_dir, record["sample_message"])
    client.set_terminated(run_id, "FINISHED")


def payoff_metrics(record: dict) -> dict[str, float]:
    """The bootstraps' bounds as metrics: the winner's validation interval, the test gain over
    the defaults' trial and its interval."""
    metrics = {}
    boot = record.get("validation_bootstrap")
    if boot:
        for end in ("low", "high"):
            metrics[f"validation_{boot['metric']}_{end}"] = boot["winner"][end]
    gain = record.get("gain_over_defaults")
    if gain:
        metrics["test_gain_over_defaults"] = gain["value"]
        for end in ("low", "high"):
            metrics[f"test_gain_over_defaults_{end}"] = gain[end]
    return metrics


def log_model(cfg: Config, run_id: str, model_dir: Path, example: str) -> None:
    """The exported model in MLflow's transformers flavour, registered when a name is set."""
    from importlib.metadata import version

    import mlflow
    from transformers import pipeline

    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_registry_uri(cfg.tracking_uri)
    classifier = pipeline("text-classification", model=str(model_dir))
    with mlflow.start_run(run_id=run_id):
        mlflow.transformers.log_model(
            classifier,
            name="model",
            task="text-classification",
            input_example=[example],
            registered_model_name=cfg.tracking.registered_model,
            # MLflow's inferred requirements name torchvision, which a text model never needs.
            pip_requirements=[f"{name}=={version(name)}" for name in ("transformers", "torch")],
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

    uri = cfg.tracking_uri
    if cfg.tracking.uri is None:
        return  # the default SQLite store in the output folder, created with it
    try:
        # A reachable server answers at once; an unreachable one would be retried for
        # minutes. Only this check gives up early: the search itself keeps MLflow's retries.
        with _unless_set(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10"):
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:
        reason = first_line(exc)
        raise SetupError(
            f"could not reach the MLflow tracking store {redact(uri)!r} ({reason[:200]}): "
            "start the server, fix --tracking-uri, or set its credentials in the environment"
        ) from None


@contextlib.contextmanager
def _unless_set(**values: str):
    """Environment variables set for the duration of a block, where the user has not set them."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
