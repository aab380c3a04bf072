"""MLflow tracking: every trial is one run, logged by Ray's `MLflowLoggerCallback`, each report
in one request.

Credentials (MLflow or Databricks tokens) come from the environment only, where MLflow itself
reads them; nothing here copies them into params, tags or files.
"""

from __future__ import annotations

import contextlib
import os
import time

from ray._private.dict import flatten_dict
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL, TRAINING_ITERATION

from search.credentials import redact
from trainable.config import Config
from trainable.errors import SetupError, first_line

SEARCH_TAG = "search"
# MLflow nests a run under the run this tag names; MLflowLoggerCallback has no parent runs of
# its own but passes its tags to every trial run it opens.
PARENT_TAG = "mlflow.parentRunId"
ABANDONED_TAG = "abandoned"


def log_batch(
    client,
    run_id: str,
    metrics: dict | None = None,
    params: dict | None = None,
    tags: dict | None = None,
    step: int = 0,
    model_id: str | None = None,
) -> None:
    """Metrics, params and tags in one `log_batch`: one request up to MLflow's limits (1,000
    metrics, 100 params or tags), which MlflowClient.log_batch splits larger batches at.
    `model_id`: an MLflow model of the run the metrics also belong to."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, step, model_id) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def numeric(result: dict) -> dict[str, float]:
    """A report's values that are numbers, as MLflow metrics (as Ray's callback picks them)."""
    metrics = {}
    for key, value in flatten_dict(result).items():
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


class ResumableMLflowLoggerCallback(MLflowLoggerCallback):
    """Continues a trial's own run when the trial starts again after a restore, and logs each
    report (and a trial's params) in one request.

    Ray 2.60's callback keeps its trial-to-run map, `_trial_runs`, in memory only: `setup()`
    empties it and the callback has no `get_state` (the hook ray-project/ray#31957 gave stateful
    callbacks), so a trial resumed by a restarted driver would open a second run. No
    ray-project/ray issue for this was found. The map has no public API; a run put there is the
    one Ray's `log_trial_end` ends. Each run is tagged with its trial's name and the search's:
    a trial starting without a run here first looks for its own.
    tests/test_ray_contracts.py fails if Ray changes any of this.

    Ray 2.60 logs a report's metrics with one `log_metric` request each (and a `get_run` before
    them): about 185 requests per report at 50 classes, on Tune's event loop, 50-100 ms each
    against a remote server. Here a report is one `log_batch` request.
    """

    def _client(self):
        import mlflow

        # Ray's setup() pointed MLflow at this URI, the one a None here falls back to.
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    def log_trial_start(self, trial):
        client = self._client()
        if trial not in self._trial_runs:
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
            else:
                tags = {**self.tags, "trial_name": str(trial)}
                run = self.mlflow_util.start_run(tags=tags, run_name=str(trial))
                self._trial_runs[trial] = run.info.run_id
        if not self.log_params_on_trial_end:
            log_batch(client, self._trial_runs[trial], params=flatten_dict(trial.config))

    def log_trial_result(self, iteration: int, trial, result: dict):
        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        log_batch(self._client(), self._trial_runs[trial], metrics=numeric(result), step=step)


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
