from __future__ import annotations

import json
import os

import pytest

from search.cli import config_from_args, parse_args
from search.credentials import (
    PASSWORD,
    USERNAME,
    move_credentials_to_env,
    redact,
    split_credentials,
)
from search.run import main
from tests.conftest import SECRETS, TINY
from tests.leaks import assert_no_leaks, files_in, leaks_in
from trainable.config_file import load_config
from trainable.errors import ConfigError


@pytest.fixture
def no_mlflow_credentials(monkeypatch):
    """Neither credential variable set, and both restored after the test (which sets them)."""
    for name in (USERNAME, PASSWORD):
        monkeypatch.setenv(name, "recorded")  # so that monkeypatch restores the original
        monkeypatch.delenv(name)


def with_uri(uri: str | None):
    return load_config(TINY, {"tracking.uri": uri})


def test_uri_user_info_moves_to_mlflow_variables(no_mlflow_credentials):
    cfg = move_credentials_to_env(with_uri("https://me:s3cret@mlflow.example.com:5000/x?y=1"))
    assert cfg.tracking.uri == "https://mlflow.example.com:5000/x?y=1"
    assert os.environ[USERNAME] == "me" and os.environ[PASSWORD] == "s3cret"
    assert "s3cret" not in json.dumps(cfg.to_dict())


def test_user_info_is_percent_decoded_and_split_at_the_last_at_sign():
    credentials, uri = split_credentials("http://me%40corp:p%3Aw@d@127.0.0.1:5000")
    assert credentials == {USERNAME: "me@corp", PASSWORD: "p:w@d"}
    assert uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "http://127.0.0.1:5000/ajax@api",  # an at sign in the path is no user info
        "databricks",
        "databricks://profile",
        "sqlite:////tmp/mlflow.db",
        "postgresql://mlflow@db.example.com/mlflow",  # a user name alone is no secret
    ],
)
def test_uri_without_credentials_is_kept(uri, no_mlflow_credentials):
    assert move_credentials_to_env(with_uri(uri)).tracking.uri == uri
    assert USERNAME not in os.environ and PASSWORD not in os.environ


def test_default_tracking_store_is_untouched(no_mlflow_credentials):
    cfg = with_uri(None)
    assert move_credentials_to_env(cfg) is cfg


def test_a_user_alone_sets_only_the_user(no_mlflow_credentials):
    cfg = move_credentials_to_env(with_uri("http://me@127.0.0.1:5000"))
    assert cfg.tracking.uri == "http://127.0.0.1:5000"
    assert os.environ[USERNAME] == "me" and PASSWORD not in os.environ


def test_credentials_already_in_the_environment_must_agree(monkeypatch, no_mlflow_credentials):
    monkeypatch.setenv(PASSWORD, "s3cret")
    cfg = move_credentials_to_env(with_uri("http://me:s3cret@127.0.0.1:5000"))
    assert cfg.tracking.uri == "http://127.0.0.1:5000"
    monkeypatch.setenv(PASSWORD, "other")
    with pytest.raises(ConfigError, match=f"unset {PASSWORD}") as caught:
        move_credentials_to_env(with_uri("http://me:s3cret@127.0.0.1:5000"))
    assert "s3cret" not in str(caught.value) and "other" not in str(caught.value)


def test_a_database_password_in_the_uri_is_refused(no_mlflow_credentials):
    with pytest.raises(ConfigError, match="PGPASSWORD") as caught:
        move_credentials_to_env(with_uri("postgresql://mlflow:s3cret@db.example.com/mlflow"))
    assert "s3cret" not in str(caught.value)
    assert USERNAME not in os.environ and PASSWORD not in os.environ


def test_the_cli_stores_a_credential_free_uri_fresh_and_resumed(tmp_path, no_mlflow_credentials):
    uri = "http://me:s3cret@127.0.0.1:5000"
    args = ["--config", str(TINY), "--output", str(tmp_path), "--tracking-uri", uri]
    cfg = config_from_args(parse_args(args))
    assert cfg.tracking.uri == "http://127.0.0.1:5000" and os.environ[PASSWORD] == "s3cret"
    # A search recorded before credentials moved out of the URI resumes without them in it.
    old = load_config(TINY, {"output": str(tmp_path), "tracking.uri": uri})
    (tmp_path / "search.json").write_text(json.dumps({"config": old.to_dict()}))
    resumed = config_from_args(parse_args(["--resume", str(tmp_path)]))
    assert resumed.tracking.uri == "http://127.0.0.1:5000"


def test_the_cli_refuses_conflicting_credentials_in_one_line(
    monkeypatch, capsys, no_mlflow_credentials
):
    monkeypatch.setenv(USERNAME, "someone-else")
    argv = ["--config", str(TINY), "--tracking-uri", "http://me:s3cret@127.0.0.1:5000"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "s3cret" not in err


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://me:token@mlflow.example.com/path", "https://***@mlflow.example.com/path"),
        ("http://token@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        ("http://127.0.0.1:5000/ajax@api", "http://127.0.0.1:5000/ajax@api"),
        ("sqlite:////tmp/out/mlflow.db", "sqlite:////tmp/out/mlflow.db"),
        ("databricks", "databricks"),
    ],
)
def test_redact_hides_user_info_and_keeps_the_rest(uri, shown):
    assert redact(uri) == shown


def test_redact_hides_a_password_with_an_at_sign():
    assert "ss" not in redact("http://me:p@ss@127.0.0.1:5000").removesuffix("127.0.0.1:5000")


def test_planted_secrets_appear_nowhere(tiny_search, mlflow_server, ray_tmpdir):
    """Tokens planted in the environment and a password in --tracking-uri reach no file the
    search or the MLflow server wrote, no Ray session log, not the CLI's output (cli.log), and no
    MLflow param, tag or model version."""
    import mlflow

    searched = set()
    leaks = leaks_in(files_in(tiny_search, mlflow_server[1], ray_tmpdir), searched)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server[0])
    recorded = [
        repr(run)  # its info, params, tags and metrics, as the server answers them
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id])
    ]
    recorded += [repr(version) for version in client.search_model_versions()]
    assert len(recorded) >= 4  # the search run, 2 trials, the refit, the model version
    leaks += [
        f"{name} in MLflow's records" for name, s in SECRETS.items() if s in "".join(recorded)
    ]
    # The grep reached every place a leak was seen: the console, the search record, Tune's
    # experiment, the search run's config artifact, the server's store, Ray's runtime env agent.
    reached = {"cli.log", "search.json", "tuner.pkl", "config.json", "mlflow.db"}
    assert_no_leaks(leaks, searched, reached | {"runtime_env_agent.log"})
