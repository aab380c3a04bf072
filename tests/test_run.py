"""The whole path through the real CLI: Ray, Tune, Train, HF Trainer, MLflow, Optuna, export."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from transformers import pipeline

from search.layout import RESULT_FILE
from search.tracking import PARENT_TAG, SEARCH_TAG
from tests.conftest import EXTRA_SPACE, MLFLOW_REQUESTS, ray_process_logs
from tests.left_behind import PLANTED
from tests.records import assert_records_agree, assert_scalars_only, mlflow_requests
from trainable import data, predictions
from trainable.config_file import config_from_dict
from trainable.work import REFIT_PREFIX, refit_id


def test_cli_prints_the_summary(tiny_search):
    log = (tiny_search / "cli.log").read_text()
    assert "best trial" in log
    assert f"exported model: {tiny_search / 'best_model'}" in log
    assert "disk used: " in log
    assert "MLflow runs: open http://127.0.0.1:" in log
    assert "labels: ham, spam (2 classes, read from the data)" in log
    assert "ranking: validation f1 of spam (max), ties to the better loss" in log
    assert "per class on test, worst first:" in log and "confusion matrix on test" in log
    # The sample is a test text of the rarest class (spam), not a hard-coded text.
    sample = log.split("sample (a test text): ")[1].split(" -> ")[0].removesuffix("...")
    cfg = config_from_dict(json.loads((tiny_search / "search.json").read_text())["config"])
    test = data.prepare(cfg.data, cfg.seed)["test"]
    spam = [row["text"] for row in test if row["label"] == 1]
    assert spam[0].startswith(sample)
    # Live progress: a line per trial event and a tally, not Ray's tables or worker logs.
    assert "trial 1/2 (" in log and "started: learning_rate=" in log
    assert " epoch 1/" in log and "2/2 done |" in log
    assert "Trial status:" not in log
    assert "(RayTrainWorker" not in log
    assert "{'test_loss'" not in log  # no raw metric dicts from the export's evaluation


def test_two_trials_run_at_once_on_two_cpus_sharing_them(tiny_search):
    log = (tiny_search / "cli.log").read_text()
    assert "trials: 2 at once, each 1 worker(s) x 1 CPU" in log
    # The second trial starts before the first one is done: they overlap, and neither waits
    # on CPUs the other's trial function holds.
    assert log.index("trial 2/2 (") < log.index("1/2 done |")


def test_mlflow_holds_one_run_per_trial_with_params_and_eval_metrics(tiny_search, mlflow_server):
    search = json.loads((tiny_search / "search.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=mlflow_server[0])
    experiment = client.get_experiment_by_name("finetune-hpo")
    runs = client.search_runs([experiment.experiment_id], "tags.trial_name != ''")
    assert len(runs) == 2
    assert len({run.data.tags["trial_name"] for run in runs}) == 2
    for run in runs:
        assert run.data.tags[SEARCH_TAG] == search["name"]
        assert run.data.tags[PARENT_TAG] == search["mlflow_run_id"]
        assert set(run.data.params) == {"learning_rate", "batch_size", "epochs", *EXTRA_SPACE}
        assert 1e-4 <= float(run.data.params["learning_rate"]) <= 1e-3
        for key in ("eval_f1", "eval_accuracy", "eval_precision", "eval_recall", "eval_loss"):
            assert key in run.data.metrics
        history = client.get_metric_history(run.info.run_id, "eval_f1")
        assert 1 <= len(history) <= int(run.data.params["epochs"])


def test_each_report_reaches_mlflow_in_one_request(tiny_search):
    """Ray's callback would log a report's ~35 metrics one request each; a trial's report,
    its params and the search run's scores are one `log-batch` request each."""
    requests = mlflow_requests((tiny_search / MLFLOW_REQUESTS).read_text())
    search = json.loads((tiny_search / "search.json").read_text())
    results = list((tiny_search / "ray_results" / search["name"]).glob("run_trial_*/result.json"))
    reports = sum(len(path.read_text().splitlines()) for path in results)
    assert "runs/log-metric" not in requests and "runs/log-parameter" not in requests
    # Each report, each trial's params, the search run's params and its scores (the model's
    # logging adds at most two of its own).
    assert reports + len(results) + 2 <= requests.count("runs/log-batch")
    assert requests.count("runs/log-batch") <= reports + len(results) + 4


def test_best_model_loads_into_a_pipeline_alone(tiny_search):
    model_dir = tiny_search / "best_model"
    files = {path.name for path in model_dir.iterdir()}
    assert "model.safetensors" in files
    assert not any(name.endswith((".bin", ".pkl", ".pt", ".pth")) for name in files)
    classify = pipeline("text-classification", model=str(model_dir))
    predictions = classify(["WINNER!! Claim your prize now", "see you at lunch"])
    assert {p["label"] for p in predictions} <= {"ham", "spam"}
    assert classify.model.config.id2label == {0: "ham", 1: "spam"}


def test_the_exported_model_classifies_a_long_text_cut_at_the_trained_length(tiny_search):
    from tokenizers import Tokenizer

    from search.predict import predict

    model_dir = tiny_search / "best_model"
    trained_at = json.loads((tiny_search / "search.json").read_text())["config"]["model"]
    long_text = " ".join(f"word{i % 300} reply" for i in range(1000))  # 2,000 words
    classify = pipeline("text-classification", model=str(model_dir))
    # transformers' pipeline truncates only when asked, so the README's example asks: without
    # it a text longer than the model's positions fails. When a release truncates by default,
    # this fails and the README's `truncation=True` can go.
    with pytest.raises(RuntimeError, match="must match the size of tensor"):
        classify(long_text)
    assert classify(long_text, truncation=True)[0]["label"] in ("ham", "spam")
    cut = classify.tokenizer(long_text, truncation=True)["input_ids"]
    assert len(cut) == trained_at["max_length"] == 64
    [prediction] = predict(model_dir, [long_text])
    assert prediction.label in ("ham", "spam")
    # The tokenizers library (and servers built on it) cut at the same length unasked.
    backend = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert backend.encode(long_text).ids == cut


def test_export_records_hyperparameters_validation_and_test_metrics(tiny_search):
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    assert set(record["hyperparameters"]) == {"learning_rate", "batch_size", "epochs", *EXTRA_SPACE}
    assert record["hyperparameters"]["batch_size"] in (16, 32)
    assert 1 <= record["best_epoch"] <= record["hyperparameters"]["epochs"]
    assert "eval_f1" in record["validation_metrics"]
    assert record["metric"] == "eval_f1" and record["positive_label"] == "spam"
    test = record["test_metrics"]
    assert {"test_loss", "test_accuracy", "test_precision", "test_recall", "test_f1"} <= set(test)
    assert {"test_macro_f1", "test_mcc", "test_f1_ham", "test_f1_spam"} <= set(test)
    # The scores are scikit-learn's on the exported model's own test predictions, spam positive.
    cfg = config_from_dict(json.loads((tiny_search / "search.json").read_text())["config"])
    texts = data.prepare(cfg.data, cfg.seed)["test"]
    classify = pipeline("text-classification", model=str(tiny_search / "best_model"))
    predicted = [p["label"] for p in classify(list(texts["text"]), truncation=True)]
    truth = [texts.features["label"].int2str(i) for i in texts["label"]]
    assert test["test_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert test["test_f1"] == pytest.approx(f1_score(truth, predicted, pos_label="spam"))
    assert test["test_recall"] == pytest.approx(recall_score(truth, predicted, pos_label="spam"))
    assert (
        record["confusion_matrix"]["matrix"]
        == confusion_matrix(truth, predicted, labels=["ham", "spam"]).tolist()
    )
    assert record["test_per_class"]["spam"]["support"] == truth.count("spam")


def test_tune_optuna_and_mlflow_name_the_same_trials_and_scores(tiny_search, mlflow_server):
    assert_records_agree(tiny_search, tracking_uri=mlflow_server[0])


def test_optuna_study_has_one_trial_per_tune_trial(tiny_search):
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tiny_search / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2
    for trial in trials:
        # tiny.yaml's epochs [1, 2] leave ASHA no rung before the last epoch: every trial runs
        # to its end and is COMPLETE with a score per epoch. A trial ASHA stops is told PRUNED:
        # tests/test_optuna_search.py drives Ray's real searcher through that.
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert sorted(trial.intermediate_values) == list(range(1, trial.params["epochs"] + 1))
        assert trial.value == trial.intermediate_values[trial.params["epochs"]]


def test_only_the_top_trials_best_checkpoint_stays_and_it_is_the_selected_one(tiny_search):
    search = json.loads((tiny_search / "search.json").read_text())
    root = tiny_search / "ray_results" / search["name"] / "checkpoints"
    trial_dirs = [
        path for path in root.iterdir() if path.is_dir() and not path.name.startswith(REFIT_PREFIX)
    ]
    assert len(trial_dirs) == 2
    kept = [
        p
        for p in root.glob("*/checkpoint_*")
        if p.is_dir() and not p.parent.name.startswith(REFIT_PREFIX)
    ]
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    # keep_top_trials=1, and the defaults' trial keeps its best for the test comparison.
    defaults = record["search_over_defaults"]["defaults_trial"]
    assert len(kept) == (1 if defaults == record["trial_id"] else 2)
    assert record["checkpoint"] in map(str, kept)
    assert {p.parent.name for p in kept} == {record["trial_id"], defaults}


def test_records_carry_scores_only_and_each_evaluation_s_predictions_are_a_file(tiny_search):
    """Tune's experiment state, result.json and progress.csv, Train's checkpoint snapshots and
    the checkpoints' trainer_state.json hold no per-example data: each evaluation's predicted
    and true classes are a file per trial and epoch beside the checkpoints, kept when the
    pruner deletes the checkpoint of that epoch."""
    search = json.loads((tiny_search / "search.json").read_text())
    experiment = tiny_search / "ray_results" / search["name"]
    assert_scalars_only(experiment)
    pruned = 0
    for result in experiment.glob("run_trial_*/result.json"):
        trial_id = result.parent.name.split("_")[2]
        for row in map(json.loads, result.read_text().splitlines()):
            epoch = row["training_iteration"]
            references, predicted = predictions.read(
                str(experiment / "checkpoints"), trial_id, epoch
            )
            assert references.dtype == predicted.dtype == np.int16 and len(references) == 64
            # The file is the evaluation's: its predictions give the F1 the trial reported.
            assert row["eval_f1"] == pytest.approx(f1_score(references, predicted), abs=1e-9)
            pruned += not Path(row["checkpoint_path"]).exists()
    assert pruned, "every checkpoint survived: the pruner was not put to the test"


def test_test_scoring_ran_in_the_driver_of_a_search_on_its_own_machine(tiny_search, ray_tmpdir):
    # The search started Ray on this machine, where its trials ran: the driver scored (on a
    # cluster a Ray task does, tests/test_two_node_cluster.py).
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    where = record["test_scored_on"]
    # One process scored the export and the pick's checkpoint, on a CPU as the trials trained.
    assert record["refit_over_pick"]["scored_on"] == where
    assert where["device"] == "cpu"
    assert ray_process_logs(ray_tmpdir).get(where["pid"], "").startswith("python-core-driver-")


def test_the_search_says_whether_it_paid_off(tiny_search, mlflow_server):
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    boot = record["validation_bootstrap"]
    winner = boot["winner"]
    # The bootstrap's full-sample value is the F1 the Trainer reported for the winner's best
    # epoch: the predictions kept are that evaluation's, in the validation split's order.
    assert winner["trial_id"] == record["trial_id"]
    assert winner["value"] == pytest.approx(record["validation_metrics"]["eval_f1"], abs=1e-4)
    assert winner["low"] <= winner["value"] <= winner["high"] and boot["examples"] == 64
    # Kept in a file beside the trial's checkpoints, in the order the Trainer evaluated
    # (length-grouped batches reorder the split): the true classes travel with the
    # predictions, they are the validation split's, and the winner's F1 is theirs.
    search = json.loads((tiny_search / "search.json").read_text())
    cfg = config_from_dict(search["config"])
    splits = data.prepare(cfg.data, cfg.seed)
    storage = tiny_search / "ray_results" / search["name"] / "checkpoints"
    references, predicted = predictions.read(str(storage), winner["trial_id"], record["best_epoch"])
    assert sorted(references.tolist()) == sorted(splits["validation"]["label"])
    assert winner["value"] == pytest.approx(f1_score(references, predicted), abs=1e-9)
    (other,) = boot["difference_to_winner"]
    difference = boot["difference_to_winner"][other]
    assert difference["value"] == pytest.approx(
        boot["others"][other]["value"] - winner["value"], abs=2e-4
    )
    assert (other in boot["tied_with_winner"]) == (difference["low"] <= 0 <= difference["high"])

    # On test, apart: the pick over the defaults' trial, and the refit over the pick. The
    # shared search (seeded) picks the defaults' own trial.
    gain = record["search_over_defaults"]
    # The point omits the declared dimensions: the trial ran without warm-up, on a linear
    # schedule, as the train section and TrainingArguments have it.
    assert gain["defaults_hyperparameters"] == {
        "learning_rate": 1e-3, "batch_size": 16, "epochs": 2,
        "warmup_ratio": 0.0, "lr_scheduler_type": "linear",
    }  # fmt: skip
    assert (gain["defaults_epochs_run"], gain["defaults_epochs"]) == (2, 2)
    assert gain["pick_is_defaults"] and gain["defaults_trial"] == record["trial_id"]
    assert "value" not in gain
    # The refit's gain: the exported model's F1 minus the F1 of the pick's best checkpoint,
    # each scored here by scikit-learn on pipeline predictions.
    refit = record["refit_over_pick"]
    texts = splits["test"]
    truth = [texts.features["label"].int2str(i) for i in texts["label"]]
    classify = pipeline("text-classification", model=str(Path(record["checkpoint"]) / "checkpoint"))
    cut = {"truncation": True, "max_length": cfg.model.max_length}  # as training cut them
    predicted = [p["label"] for p in classify(list(texts["text"]), **cut)]
    pick_f1 = f1_score(truth, predicted, pos_label="spam")
    assert refit["value"] == pytest.approx(record["test_metrics"]["test_f1"] - pick_f1, abs=1e-4)
    assert refit["distinguishable"] == (not refit["low"] <= 0 <= refit["high"])

    log = (tiny_search / "cli.log").read_text()
    assert f"winner {record['trial_id']}: validation f1 {winner['value']:.4f}" in log
    assert "tied with the winner" in log
    assert "the search picked the defaults' own trial (learning_rate=" in log
    assert "the refit over the pick (train + validation against train): test f1 " in log
    parent = mlflow.MlflowClient(tracking_uri=mlflow_server[0]).get_run(search["mlflow_run_id"])
    assert parent.data.metrics["test_refit_over_pick"] == pytest.approx(refit["value"])
    assert "test_search_over_defaults" not in parent.data.metrics
    assert parent.data.metrics["validation_f1_low"] == pytest.approx(winner["low"])
    import pandas as pd

    table = pd.read_csv(tiny_search / "report" / "trials.csv", dtype=str).set_index("trial")
    assert table.loc[record["trial_id"], "tied_with_winner"] == "winner"
    assert table.loc[other, "tied_with_winner"] == (
        "tied" if other in boot["tied_with_winner"] else "no"
    )
    assert (tiny_search / "report" / "intervals.png").read_bytes().startswith(b"\x89PNG")


def test_the_exported_model_is_the_winner_refit_on_train_and_validation(tiny_search):
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    refit, hp = record["refit"], record["hyperparameters"]
    # tiny.yaml: 400 messages, 80 for test; the other 320 held train and validation.
    assert refit["examples"] == 320
    assert refit["epochs"] == record["best_epoch"]
    assert refit["epochs_trained"] == record["best_epoch"]
    assert refit["steps"] == math.ceil(320 / hp["batch_size"]) * record["best_epoch"]
    assert math.isfinite(refit["train_loss"])
    exported = load_file(tiny_search / "best_model" / "model.safetensors")
    selected = load_file(Path(record["checkpoint"]) / "checkpoint" / "model.safetensors")
    assert exported.keys() == selected.keys()
    assert any(not torch.equal(exported[k], selected[k]) for k in exported)
    assert (Path(refit["checkpoint"]) / "checkpoint" / "model.safetensors").is_file()
    assert Path(refit["checkpoint"]).parent.name == refit_id(record["trial_id"], refit["epochs"])
    assert (
        f"refit:      {record['best_epoch']} epochs on train + validation (320 texts)"
        in (tiny_search / "cli.log").read_text()
    )
    # On a warm worker: a process that trained trials, with torch imported once.
    assert refit["worker_pid"] in _trial_worker_pids(tiny_search)


def test_the_refit_starts_on_the_first_free_slot_and_is_kept_only_for_the_pick(tiny_search):
    log = (tiny_search / "cli.log").read_text()
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    pick, refit = record["trial_id"], record["refit"]
    ended = re.findall(r"trial \d+/2 \((\w+)\) (?:finished|stopped|errored)", log)
    planned = re.findall(r"refit of trial (\w+) \(.*\), the best that has ended, starts", log)
    # Two trials on two slots: the first to end leaves its slot free while the other trains
    # (unless Tune saw both end at once), and the refit of it starts there.
    assert planned in ([], ended[:1]), log
    kept = planned == [pick]
    dropped = [f"refit of trial {trial_id} dropped" in log for trial_id in planned]
    assert dropped == [not kept for _ in planned]
    assert refit["started_early"] <= kept
    search = json.loads((tiny_search / "search.json").read_text())
    folders = tiny_search / "ray_results" / search["name"] / "checkpoints"
    refits = {p.parent.name for p in folders.glob(f"{REFIT_PREFIX}*/checkpoint_*")}
    assert refits == {refit_id(pick, refit["epochs"])}


def test_a_placement_group_left_behind_is_removed_before_the_work_after_the_trials(tiny_search):
    log = (tiny_search / "cli.log").read_text()
    planted = log.index(PLANTED)
    removed = log.index("removed a placement group that no trial uses", planted)
    assert "refit failed" not in log
    assert removed < log.index("search finished", planted), log[planted:]


def _trial_worker_pids(output: Path) -> set[int]:
    search = json.loads((output / "search.json").read_text())
    results = (output / "ray_results" / search["name"]).glob("run_trial_*/result.json")
    return {
        json.loads(line)["worker_pid"]
        for result in results
        for line in result.read_text().splitlines()
    }


def test_search_run_holds_report_test_metrics_and_the_registered_model(tiny_search, mlflow_server):
    search = json.loads((tiny_search / "search.json").read_text())
    uri = mlflow_server[0]
    client = mlflow.MlflowClient(tracking_uri=uri)
    parent = client.get_run(search["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[SEARCH_TAG] == search["name"]
    assert {"test_f1", "test_f1_spam", "test_macro_f1"} <= set(parent.data.metrics)
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/trials.csv", "report/history.png", "report/confusion_matrix.png"} <= report
    assert {"report/per_class.csv"} <= report
    # The logged model carries the test scores too, linked as they were logged.
    (logged,) = parent.outputs.model_outputs
    linked = {m.key: m.value for m in client.get_logged_model(logged.model_id).metrics}
    assert linked["test_f1"] == parent.data.metrics["test_f1"]
    assert set(linked) == set(parent.data.metrics)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/spam-classifier/latest")
    predictions = model.predict(["WINNER!! Claim your prize", "see you at lunch"])
    assert set(predictions["label"]) <= {"ham", "spam"}
    assert len(predictions) == 2


def test_planted_secrets_appear_nowhere(tiny_search, mlflow_server):
    """Tokens in the environment never reach params, tags, artifacts, logs or the export."""
    from tests.conftest import SECRETS

    client = mlflow.MlflowClient(tracking_uri=mlflow_server[0])
    experiment = client.get_experiment_by_name("finetune-hpo")
    for run in client.search_runs([experiment.experiment_id]):
        recorded = json.dumps([run.data.params, run.data.tags, run.data.metrics])
        assert not any(secret in recorded for secret in SECRETS.values())
    searched = 0
    for folder in (tiny_search, mlflow_server[1]):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in SECRETS.values()), path
                searched += 1
    assert searched > 20  # the export, report, Tune results, checkpoints, server artifacts


def test_report_has_a_row_per_trial_and_every_plot(tiny_search):
    import pandas as pd

    report = tiny_search / "report"
    table = pd.read_csv(report / "trials.csv")
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tiny_search / 'optuna.db'}")
    assert len(table) == len(study.trials) == 2
    # The declared dimensions are the study's, the table's and the exported record's as the
    # built-ins are, with their types.
    names = ["learning_rate", "batch_size", "epochs", *EXTRA_SPACE]
    assert list(table.columns[1:6]) == names
    assert set(table["lr_scheduler_type"]) <= {"linear", "cosine"}
    for trial in study.trials:
        assert sorted(trial.params) == sorted(names)
        assert 0.0 <= trial.params["warmup_ratio"] <= 0.2
        assert trial.params["lr_scheduler_type"] in ("linear", "cosine")
    record = json.loads((tiny_search / "best_model" / RESULT_FILE).read_text())
    assert list(record["hyperparameters"]) == names
    assert isinstance(record["hyperparameters"]["warmup_ratio"], float)
    assert set(table["status"]) <= {"finished", "stopped early"}
    assert (table["epochs_run"] >= 1).all()
    markdown = (report / "trials.md").read_text().splitlines()
    assert len(markdown) == 2 + len(table)
    for name in ("history", "hyperparameters", "learning_curves", "importance"):
        png = (report / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_report_command_redraws_it(tiny_search, tmp_path):
    import shutil
    import subprocess
    import sys

    import pandas as pd

    copy = tmp_path / "copy"
    shutil.copytree(tiny_search, copy, ignore=shutil.ignore_patterns("report"))
    proc = subprocess.run(
        [sys.executable, "-m", "search.report", str(copy)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (copy / "report" / "learning_curves.png").is_file()
    # The moved folder's own records: the exported model's per-class scores come back too.
    record = json.loads((copy / "best_model" / RESULT_FILE).read_text())
    per_class = pd.read_csv(copy / "report" / "per_class.csv").set_index("label")
    for label, scores in record["test_per_class"].items():
        assert per_class.loc[label].to_dict() == pytest.approx(scores)
