"""Bad input through the real CLI: one line naming problem and fix, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from tests.conftest import TINY


def _refuse(tmp_path, capsys, *args, words=()):
    """Runs the tiny search with extra args through the CLI's entry point in this process (the
    path of `python -m search.run` without a new interpreter per case); it must refuse with one
    line and write nothing."""
    from search.run import main

    out = tmp_path / "out"
    code = main(["--config", str(TINY), "--output", str(out), *args])
    captured = capsys.readouterr()
    _assert_refused(subprocess.CompletedProcess([], code, captured.out, captured.err), *words)
    assert not out.exists()


def _assert_refused(proc, *words):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture
def spam_csv(tmp_path):
    def write(rows, name="d.csv"):
        path = tmp_path / name
        pd.DataFrame(rows).to_csv(path, index=False)
        return str(path)

    return write


def _messages(n_ham=40, n_spam=10):
    return [{"text": f"hi {i}", "label": "ham"} for i in range(n_ham)] + [
        {"text": f"win {i}", "label": "spam"} for i in range(n_spam)
    ]


CASES = {
    "missing config": (["--config", "configs/nope.yaml"], ["does not exist"]),
    "unknown key": (["--set", "search.trails=2"], ["did you mean search.trials?"]),
    "inverted lr": (["--set", "space.learning_rate=[1e-3, 1e-5]"], ["inverted"]),
    "zero lr": (["--set", "space.learning_rate=[0, 1e-5]"], ["positive"]),
    "batch below 1": (["--set", "space.batch_size=[0]"], ["space.batch_size"]),
    "epochs below 1": (["--set", "space.epochs=[0, 1]"], ["space.epochs"]),
    "trials below 1": (["--trials", "0"], ["--trials"]),
    "missing data file": (["--set", "data.source=/no/such/file.csv"], ["does not exist"]),
    "storage URI options": (
        ["--set", "storage=s3://b/p?endpoint_override=127.0.0.1:9000"],
        ["AWS_ENDPOINT_URL"],
    ),
    "bad override": (["--set", "search.trials"], ["key.sub=value"]),
    "initial point outside the space": (
        ["--set", "search.initial_points=[{learning_rate: 1.0, batch_size: 16, epochs: 1}]"],
        ["search.initial_points[0]", "outside space.learning_rate"],
    ),
    "initial point missing a value": (
        ["--set", "search.initial_points=[{learning_rate: 1.0e-4}]"],
        ["must give learning_rate, batch_size, epochs"],
    ),
    "space field TrainingArguments lacks": (
        ["--set", "space.warmup_ration={uniform: [0.0, 0.1]}"],
        ["space.warmup_ration is not a TrainingArguments field"],
    ),
    "space value TrainingArguments refuses": (
        ["--set", "space.lr_scheduler_type={choice: [linear, wavy]}"],
        ["space.lr_scheduler_type value 'wavy' is refused by TrainingArguments"],
    ),
    "space range without the defaults' value": (
        [
            *("--set", "space.weight_decay={loguniform: [1e-4, 1e-1]}"),
            "--set",
            "search.initial_points=[{learning_rate: 2.0e-4, batch_size: 16, epochs: 1}]",
        ],
        ["search.initial_points[0] omits weight_decay", "declare a range that holds 0"],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_config_is_refused(case, tmp_path, capsys):
    args, words = CASES[case]
    _refuse(tmp_path, capsys, *args, words=words)


def test_a_trial_larger_than_the_cluster_is_refused_before_it_starts(tmp_path, capsys):
    # Ray starts (in this process), and the check comes before any trial.
    import ray

    try:
        _refuse(tmp_path, capsys, "--set", "resources.cpus_per_worker=64", words=["needs 64 CPUs"])
    finally:
        ray.shutdown()


def test_unparsable_config_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  trials: 2\n  metric: [eval_f1\n")
    _refuse(tmp_path, capsys, "--config", str(bad), words=["not valid YAML", "line"])


@pytest.mark.parametrize(
    ("rows", "overrides", "words"),
    [
        (_messages(), ["--set", "data.text_column=body"], ["no column 'body'", "text_column"]),
        (
            _messages() + [{"text": "x", "label": "eggs"}],
            ["--set", "data.labels=[ham,spam]"],
            ["eggs", "data.labels"],
        ),
        (_messages(n_spam=0), [], ["single class"]),
        (_messages(n_ham=2, n_spam=1), ["--set", "data.max_rows=null"], ["too small"]),
        ([], [], ["empty"]),
    ],
    ids=[
        "missing column",
        "unknown label",
        "single class",
        "too small",
        "empty",
    ],
)
def test_bad_data_is_refused(rows, overrides, words, tmp_path, spam_csv, capsys):
    path = spam_csv(rows) if rows else str(tmp_path / "empty.csv")
    if not rows:
        (tmp_path / "empty.csv").write_text("text,label\n")
    _refuse(tmp_path, capsys, "--data", path, *overrides, words=words)


def test_a_missing_s3_object_or_missing_credentials_are_refused(tmp_path, capsys, s3, monkeypatch):
    import s3fs

    s3.use(monkeypatch)
    missing = f"s3://{s3.bucket}/data/none.parquet"
    _refuse(tmp_path, capsys, "--data", missing, words=[missing, "does not exist"])
    uri = s3.put("data/messages.csv", pd.DataFrame(_messages()).to_csv(index=False).encode())
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()  # the one above holds the credentials
    _refuse(tmp_path, capsys, "--data", uri, words=[uri, "AWS_ACCESS_KEY_ID"])


def test_unreachable_mlflow_and_ray_are_refused_before_training(tmp_path, capsys):
    _refuse(tmp_path, capsys, "--tracking-uri", "http://127.0.0.1:9",
            words=["MLflow", "--tracking-uri"])  # fmt: skip
    _refuse(tmp_path, capsys, "--address", "127.0.0.1:9",
            words=["could not reach Ray", "--address"])  # fmt: skip


def test_output_folder_of_another_search_is_refused(tmp_path, capsys):
    from search.run import main

    out = tmp_path / "out"
    out.mkdir()
    marker = out / "search.json"
    marker.write_text(json.dumps({"name": "earlier"}))
    assert main(["--config", str(TINY), "--output", str(out)]) == 2
    captured = capsys.readouterr()
    _assert_refused(subprocess.CompletedProcess([], 2, captured.out, captured.err),
                    "already holds a search", "--overwrite")  # fmt: skip
    assert json.loads(marker.read_text()) == {"name": "earlier"}


def test_a_model_with_custom_code_is_refused_unless_trusted_by_name(tmp_path, capsys):
    """trust_remote_code stays off: a model folder whose config points at its own Python code
    is refused up front, and that code never runs."""
    from trainable.config import ModelConfig
    from trainable.model import load_tokenizer

    model = tmp_path / "custom-model"
    load_tokenizer(ModelConfig()).save_pretrained(model)
    (model / "custom.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('EXECUTED').write_text('remote code ran')\n"
        "from transformers import PretrainedConfig\n"
        "class CustomConfig(PretrainedConfig):\n"
        "    model_type = 'custom-x'\n"
    )
    auto_map = {"AutoConfig": "custom.CustomConfig"}
    (model / "config.json").write_text(json.dumps({"model_type": "custom-x", "auto_map": auto_map}))
    _refuse(tmp_path, capsys, "--set", f"model.name={model}", "--set", "model.tiny=false",
            words=["custom code", "model.trust_remote_code"])  # fmt: skip
    assert not (model / "EXECUTED").exists()


def _three_classes(n=20):
    return [{"text": f"{word} {i}", "label": word} for i in range(n) for word in ("a", "b", "c")]


@pytest.mark.parametrize(
    ("rows", "overrides", "words"),
    [
        (_messages(), ["--set", "data.labels=[ham,spam,eggs]"], ["eggs", "never occurs"]),
        (_messages(), ["--set", "data.positive_label=eggs"], ["eggs", "not a label"]),
        (_messages(), ["--metric", "auc"], ["search.metric", "macro_f1"]),
        (_three_classes(), ["--metric", "f1"], ["3 classes", "use macro_f1"]),
    ],
    ids=["label never occurs", "positive label not a label", "unknown metric", "f1 of 3 classes"],
)
def test_a_task_the_data_does_not_fit_is_refused(
    rows, overrides, words, tmp_path, spam_csv, capsys
):
    """The CLI's own entry point, in this process: the same path as `python -m search.run`
    without paying for a new interpreter per case."""
    from search.run import main

    out = tmp_path / "out"
    argv = ["--config", "configs/tiny.yaml", "--output", str(out), "--data", spam_csv(rows)]
    assert main([*argv, *overrides]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in captured.out + captured.err
    assert not out.exists()
