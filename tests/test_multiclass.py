"""Your own data with three and four classes, through the real CLI: labels read from the data,
ranked by macro-F1, per-class scores and a confusion matrix that scikit-learn agrees with. The
three-class search trains each configuration with two seeds (search.repeats), and its first
trial diverges (its loss turns NaN) beside a second that trains normally; the four-class
search trains each trial data-parallel on two workers."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, pipeline

from search.confusion import top_confusions, worst_first
from search.layout import RESULT_FILE
from tests.conftest import TINY, run_cli
from tests.records import assert_records_agree, assert_scalars_only
from trainable import data
from trainable.config_file import config_from_dict

TOPICS = {
    "sports": "goal match team score league coach player win season stadium",
    "tech": "laptop software code chip cloud app server update battery screen",
    "food": "pasta recipe dinner bread cheese soup spicy oven salad dessert",
    "travel": "flight hotel beach passport train museum island tour luggage map",
}
FILLER = "the a today really new great my our this that is was with for".split()
DIVERGING_LR = 1e30


def write_topics(path, topics, per_class=60, seed=0):
    """A CSV of short messages whose topic shows in their words (columns text, topic)."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "topic"])
        for i in range(per_class * len(topics)):
            topic = topics[i % len(topics)]
            words = rng.sample(TOPICS[topic].split(), 3) + rng.sample(FILLER, 4)
            rng.shuffle(words)
            writer.writerow([" ".join(words), topic])
    return path


@pytest.fixture(scope="module", params=[3, 4], ids=["3 classes", "4 classes"])
def topic_search(request, tmp_path_factory):
    topics = list(TOPICS)[: request.param]
    folder = tmp_path_factory.mktemp(f"topics{request.param}")
    source = write_topics(folder / "topics.csv", topics)
    output = folder / "out"
    if request.param == 4:
        # Data-parallel: 2 Ray Train workers x 1 CPU, over gloo.
        how = [
            "--trials", "1", "--set", "resources.num_workers=2",
            "--set", "space.learning_rate=[2e-3, 5e-3]",
        ]  # fmt: skip
    else:
        # Two seeds of each configuration, one after the other; two trials at once, the first
        # with a learning rate that overflows the weights within a step or two, so that its
        # loss turns NaN. Both come from initial_points, in that order.
        points = (
            f"[{{learning_rate: {DIVERGING_LR:.1e}, batch_size: 16, epochs: 2}},"
            " {learning_rate: 5.0e-3, batch_size: 16, epochs: 2}]"
        )
        how = [
            "--trials", "2", "--max-concurrent", "2", "--set", "search.repeats=2",
            "--set", "space.learning_rate=[2.0e-3, 1.0e+31]",
            "--set", f"search.initial_points={points}",
            "--set", "resources.max_failures=0",  # a retry would overflow the same way
        ]  # fmt: skip
    proc = run_cli(
        "--config", str(TINY), "--data", str(source), "--label-column", "topic",
        "--output", str(output), "--set", "space.epochs=[2]", *how,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"search failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}")
    return output, sorted(topics), proc.stdout


def _finished_result(output: Path, record: dict) -> list[dict]:
    """The exported trial's reports, from Tune's record of it."""
    search = json.loads((output / "search.json").read_text())
    experiment = output / "ray_results" / search["name"]
    (result,) = experiment.glob(f"run_trial_{record['trial_id']}_*/result.json")
    return [json.loads(row) for row in result.read_text().splitlines()]


def test_labels_come_from_the_data_and_trials_rank_by_macro_f1(topic_search):
    output, labels, log = topic_search
    assert f"labels: {', '.join(labels)} ({len(labels)} classes, read from the data)" in log
    assert "ranking: validation macro_f1 (max), ties to the better loss" in log
    record = json.loads((output / "best_model" / RESULT_FILE).read_text())
    assert record["metric"] == "eval_macro_f1" and record["mode"] == "max"
    assert record["labels"] == labels and record["positive_label"] is None
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{output / 'optuna.db'}")
    (trial,) = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    # What Optuna was told is the macro-F1 of the epoch, not one class's F1.
    assert trial.value == pytest.approx(record["validation_metrics"]["eval_macro_f1"])
    assert "eval_f1" not in record["validation_metrics"]
    assert {f"eval_f1_{label}" for label in labels} <= set(record["validation_metrics"])
    # One report per epoch, whether one worker trained or two (rank 0 reports for both).
    search = json.loads((output / "search.json").read_text())
    # Two workers' or two seeds' records carry scores only (the predictions are files).
    assert_scalars_only(output / "ray_results" / search["name"])
    rows = _finished_result(output, record)
    assert [row["training_iteration"] for row in rows] == [1, 2]
    workers = search["config"]["resources"]["num_workers"]
    assert f"each {workers} worker(s) x 1 CPU" in log
    # Two workers train one model in a torch process group; one trains alone, with none.
    assert {row["ddp_processes"] for row in rows} == {workers if workers > 1 else 0}
    # The bootstrap resamples the macro-F1 of the winner's kept validation predictions (of its
    # first seed, whose checkpoint exports: test_two_seeds_...).
    winner = record["validation_bootstrap"]["winner"]
    if search["config"]["search"]["repeats"] == 1:
        assert winner["value"] == pytest.approx(trial.value, abs=1e-4)
    assert winner["low"] <= winner["value"] <= winner["high"]
    # No defaults' trial to compare with: none was asked for, or it diverged before evaluating.
    assert record["search_over_defaults"] is None
    missing = "no defaults' trial (search.initial_points is empty)"
    if search["config"]["search"]["initial_points"]:
        missing = "the defaults' trial kept no checkpoint (it failed or stopped before an"
    assert record["search_over_defaults_missing"].startswith(missing)
    assert f"the search's pick over the defaults: {missing}" in log


def test_two_seeds_report_their_mean_each_epoch_and_the_first_seed_exports(topic_search):
    output, labels, log = topic_search
    search = json.loads((output / "search.json").read_text())
    if search["config"]["search"]["repeats"] == 1:
        pytest.skip("this search trains one seed per trial, on two workers")
    record = json.loads((output / "best_model" / RESULT_FILE).read_text())
    rows = _finished_result(output, record)
    (best,) = [row for row in rows if row["checkpoint_path"] == record["checkpoint"]]
    # The reported checkpoint holds each seed's HF checkpoint, with its own evaluations.
    seed_scores = []
    for seed_dir in ("checkpoint", "seed-1"):
        state = json.loads(
            (Path(record["checkpoint"]) / seed_dir / "trainer_state.json").read_text()
        )
        (evaluation,) = [
            log
            for log in state["log_history"]
            if log.get("epoch") == best["epoch"] and "eval_loss" in log
        ]
        seed_scores.append(evaluation)
    first, second = seed_scores
    assert first["eval_loss"] != second["eval_loss"]  # two seeds, two trainings
    for key in ("eval_macro_f1", "eval_loss", "eval_accuracy"):
        assert best[key] == pytest.approx((first[key] + second[key]) / 2), key
    assert best["seeds"] == 2
    assert best["seed_sd_macro_f1"] == pytest.approx(
        abs(first["eval_macro_f1"] - second["eval_macro_f1"]) / 2**0.5
    )
    # Optuna and ASHA were told the mean; the interval is of the first seed, which exports.
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{output / 'optuna.db'}")
    (trial,) = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert trial.intermediate_values[round(best["epoch"])] == pytest.approx(best["eval_macro_f1"])
    winner = record["validation_bootstrap"]["winner"]
    assert winner["value"] == pytest.approx(first["eval_macro_f1"], abs=1e-4)
    assert "trials rank by the mean of 2 seeds; each interval is of a trial's first seed" in log
    exported = AutoModelForSequenceClassification.from_pretrained(output / "best_model")
    first_seed = AutoModelForSequenceClassification.from_pretrained(
        Path(record["checkpoint"]) / "checkpoint"
    )
    for name, weights in first_seed.state_dict().items():
        assert torch.equal(weights, exported.state_dict()[name]), name


def test_a_diverging_trial_fails_alone_and_the_search_goes_on(topic_search):
    output, labels, log = topic_search
    search = json.loads((output / "search.json").read_text())
    if not search["config"]["search"]["initial_points"]:
        pytest.skip("no trial of this search diverges")
    assert "search finished: 2 trials" in log
    trials = pd.read_csv(output / "report" / "trials.csv", dtype=str).set_index("trial")
    assert sorted(trials["status"]) == ["errored", "finished"]
    (nan_trial,) = trials.index[trials["status"] == "errored"]
    assert float(trials.loc[nan_trial, "learning_rate"]) == DIVERGING_LR
    summary = log.split("failed trials (1):")[1]
    assert nan_trial in summary and "non-finite training loss" in summary
    record = json.loads((output / "best_model" / RESULT_FILE).read_text())
    assert record["hyperparameters"]["learning_rate"] == 5e-3
    assert record["trial_id"] != nan_trial
    assert_records_agree(output)


def test_test_scores_and_confusion_matrix_are_scikit_learns_on_the_exported_model(topic_search):
    output, labels, _ = topic_search
    record = json.loads((output / "best_model" / RESULT_FILE).read_text())
    cfg = config_from_dict(json.loads((output / "search.json").read_text())["config"])
    test = data.prepare(cfg.data, cfg.seed)["test"]
    classify = pipeline("text-classification", model=str(output / "best_model"))
    predicted = [labels.index(p["label"]) for p in classify(list(test["text"]))]
    truth = list(test["label"])
    assert record["confusion_matrix"] == {
        "labels": labels,
        "matrix": confusion_matrix(truth, predicted, labels=range(len(labels))).tolist(),
    }
    scores = record["test_metrics"]
    assert scores["test_macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert scores["test_accuracy"] == pytest.approx(np.mean(np.equal(truth, predicted)))
    assert "test_f1" not in scores  # no positive class among several
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=range(len(labels)), zero_division=0
    )
    for i, label in enumerate(labels):
        assert record["test_per_class"][label] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )


def test_outputs_carry_the_per_class_scores_and_names_fit_the_data(topic_search):
    output, labels, log = topic_search
    for label in labels:
        assert f"    {label} " in log  # the per-class table of the summary
    assert "confusion matrix on test (rows: true class, columns: predicted)" in log
    sample = log.split("sample (a test text): ")[1].split(" -> ")[0]
    assert sample in (output.parent / "topics.csv").read_text()
    assert "WINNER" not in log
    report = output / "report"
    assert (report / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    # The per-class table worst first; the most frequent confusions in hpo_result.json, the
    # report and the summary, as the test split's confusion matrix has them.
    record = json.loads((output / "best_model" / RESULT_FILE).read_text())
    per_class = pd.read_csv(report / "per_class.csv")
    assert list(per_class["label"]) == worst_first(record["test_per_class"])
    matrix = record["confusion_matrix"]["matrix"]
    assert record["top_confusions"] == top_confusions(matrix, labels)
    confusions = pd.read_csv(report / "top_confusions.csv", dtype={"true": str, "predicted": str})
    assert confusions.to_dict("records") == record["top_confusions"]
    for c in record["top_confusions"]:
        assert f"    {c['true']} -> {c['predicted']}: {c['count']} (" in log
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("finetune-hpo")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    search = json.loads((output / "search.json").read_text())
    parent = client.get_run(search["mlflow_run_id"])
    assert {f"test_f1_{label}" for label in labels} | {"test_macro_f1"} <= set(parent.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "test_confusion_matrix.json" in artifacts
    assert client.get_registered_model("topics-classifier").name == "topics-classifier"
