"""The check every fault test ends with: Tune's results, the Optuna study and the MLflow runs
name the same trials with the same per-epoch scores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import optuna
import pyarrow.fs
import pytest

from search.layout import OPTUNA_DB, SEARCH_FILE, STUDY_NAME
from search.tracking import ABANDONED_TAG
from trainable.storage import resolve, stored_text


def assert_records_agree(output: Path, tracking_uri: str | None = None) -> None:
    search = json.loads((output / SEARCH_FILE).read_text())
    cfg = search["config"]
    metric = f"eval_{cfg['search']['metric']}"
    fs, storage = resolve(cfg["storage"] or str(output / "ray_results"))
    tune = _tune_trials(fs, f"{storage}/{search['name']}", metric)

    client = mlflow.MlflowClient(tracking_uri=tracking_uri or f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(cfg["tracking"]["experiment"])
    runs = client.search_runs(
        [experiment.experiment_id], f"tags.search = '{search['name']}' and tags.trial_name != ''"
    )
    kept = [run for run in runs if ABANDONED_TAG not in run.data.tags]
    assert sorted(run.data.tags["trial_name"].removeprefix("run_trial_") for run in kept) == sorted(
        tune
    ), "MLflow and Tune name different trials"
    for run in kept:
        trial_id = run.data.tags["trial_name"].removeprefix("run_trial_")
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, metric)}
        assert history == pytest.approx(tune[trial_id]["scores"]), f"MLflow's {trial_id} differs"

    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{output / OPTUNA_DB}")
    by_params = {_key(trial["params"]): trial_id for trial_id, trial in tune.items()}
    matched, abandoned = set(), 0
    for trial in study.get_trials(deepcopy=False):
        trial_id = by_params.get(_key(trial.params))
        scores = tune[trial_id]["scores"] if trial_id is not None else None
        if trial_id not in matched and trial.intermediate_values == pytest.approx(scores):
            matched.add(trial_id)
            continue
        # Asked for by a killed driver: its MLflow run is abandoned. The resumed search may ask
        # for the same point again (Optuna's sampler restored as it was before that trial).
        assert trial.state == optuna.trial.TrialState.FAIL and not trial.intermediate_values, (
            f"the study's trial {trial.number} differs from Tune's {trial_id}"
        )
        abandoned += 1
    assert matched == set(tune), "the study lacks trials Tune ran"
    assert abandoned == len(runs) - len(kept)


def _tune_trials(fs: pyarrow.fs.FileSystem, experiment: str, metric: str) -> dict[str, dict]:
    """Trial id → its hyperparameters and its score per epoch, from Tune's result files on
    the search's storage."""
    trials = {}
    for folder in fs.get_file_info(pyarrow.fs.FileSelector(experiment)):
        params = stored_text(fs, f"{folder.path}/params.json")
        if not folder.base_name.startswith("run_trial_") or params is None:
            continue
        params = json.loads(params)
        rows = (stored_text(fs, f"{folder.path}/result.json") or "").splitlines()
        results = [json.loads(row) for row in rows if row.strip()]
        trial_id = folder.base_name.split("_")[2]
        epochs = [r["training_iteration"] for r in results]
        # A trial resumed after the driver went keeps its record: each epoch once, in order.
        assert epochs == list(range(1, len(epochs) + 1)), f"{folder.path}: epochs {epochs}"
        scores = {r["training_iteration"]: r[metric] for r in results if metric in r}
        trials[trial_id] = {"params": params, "scores": scores}
    return trials


def _key(params: dict) -> tuple:
    """The sampled values, numbers as floats (Tune's record and Optuna's may differ in type)."""
    return tuple(
        (name, float(value) if isinstance(value, (int, float)) else value)
        for name, value in sorted(params.items())
    )


# An evaluation's per-example classes, however a record might carry them: a key that names
# them, a string of comma-joined class ids, a list of numbers, or either inside a hex pickle
# (Tune's experiment state keeps some objects so). Bounded below the tiny search's 64
# validation examples, above anything a record legitimately holds.
PER_EXAMPLE = 32
_JOINED_IDS = re.compile(rb"\d+(?:\s*,\s*\d+){%d,}" % (PER_EXAMPLE - 1))
_HEX = re.compile(r"[0-9a-f]{64,}")


def per_example_data(value, where: str = "") -> list[str]:
    """Where a JSON value (nested JSON and hex pickles inside its strings included) carries
    per-example data; empty when it carries scalars only."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if re.search("prediction|reference", str(key), re.IGNORECASE):
                found.append(f"{where}/{key}")
            found += per_example_data(item, f"{where}/{key}")
    elif isinstance(value, list):
        if sum(isinstance(item, (int, float)) for item in value) >= PER_EXAMPLE:
            found.append(f"{where}: a list of {len(value)} numbers")
        for i, item in enumerate(value):
            found += per_example_data(item, f"{where}[{i}]")
    elif isinstance(value, str):
        if value[:1] in "{[":
            try:
                return per_example_data(json.loads(value), f"{where}{{json}}")
            except ValueError:
                pass
        raw = bytes.fromhex(value) if _HEX.fullmatch(value) and len(value) % 2 == 0 else None
        if _JOINED_IDS.search(raw if raw is not None else value.encode()):
            found.append(f"{where}: comma-joined class ids")
    return found


def record_files(experiment: Path) -> dict[str, list[Path]]:
    """A search's records by kind: Tune's (experiment state, each trial's result.json and
    progress.csv), Train's checkpoint snapshots and the checkpoints' trainer_state.json."""
    patterns = {
        "experiment state": "experiment_state*.json",
        "result.json": "run_trial_*/result.json",
        "progress.csv": "run_trial_*/progress.csv",
        "Train snapshot": "checkpoints/*/checkpoint_manager_snapshot.json",
        "trainer_state.json": "checkpoints/*/checkpoint_*/*/trainer_state.json",
    }
    return {kind: list(experiment.glob(pattern)) for kind, pattern in patterns.items()}


def assert_scalars_only(experiment: Path) -> None:
    """No record of the search at `experiment` carries per-example data."""
    for kind, paths in record_files(experiment).items():
        assert paths, f"no {kind} in {experiment}"
        for path in paths:
            text = path.read_text()
            if path.suffix == ".csv":
                documents = [text]
            elif path.name == "result.json":
                documents = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                documents = [json.loads(text)]
            found = [hit for document in documents for hit in per_example_data(document)]
            assert not found, f"{path} carries per-example data: {found[:5]}"


def mlflow_requests(server_log: str) -> list[str]:
    """The REST calls in an `mlflow server` log (uvicorn's access lines), by endpoint:
    `runs/log-batch`, `runs/log-metric`, ..."""
    return re.findall(r'"(?:GET|POST|PATCH|DELETE) /api/2\.0/mlflow/([\w/-]+)', server_log)
