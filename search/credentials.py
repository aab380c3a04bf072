"""Credentials stay in the environment: a tracking URI's user info moves into MLflow's own
credential variables at the edge, before the config is stored, printed or shipped to Ray."""

from __future__ import annotations

import dataclasses
import os
from urllib.parse import unquote, urlsplit, urlunsplit

from trainable.config import Config
from trainable.errors import ConfigError

# MLflow sends these to a tracking server as HTTP basic auth.
USERNAME, PASSWORD = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
# Ray Tune copies these from the driver's environment into every trial's runtime env
# (ray/tune/execution/class_cache.py), which a cluster keeps in its GCS, shows on its dashboard,
# and which its runtime env agent logs whole at INFO.
AWS_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}


def move_credentials_to_env(cfg: Config) -> Config:
    """The config with a credential-free tracking URI.

    The user info of `--tracking-uri http://user:password@host` would otherwise be written to
    search.json, the search run's config, Tune's experiment and MLflow's "View run at" lines:
    it goes to MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead, which MLflow reads
    for every request. A resumed search finds those variables where the user exports them.
    """
    if not cfg.tracking.uri:
        return cfg
    credentials, uri = split_credentials(cfg.tracking.uri)
    for name, value in credentials.items():
        if os.environ.get(name, value) != value:
            raise ConfigError(
                f"the tracking URI's user info and {name} in the environment differ: give the "
                f"credentials one way (drop user:password@ from the URI, or unset {name})"
            )
    os.environ.update(credentials)
    return dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, uri=uri))


def keep_aws_keys_on_the_driver() -> None:
    """Tune stops handing the driver's AWS keys to the trials. Their processes use their own
    machine's credentials: on one machine the driver's environment, which Ray's processes
    inherit; on a cluster each node's instance role, or the environment `ray start` was given."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE -= AWS_KEYS


def split_credentials(uri: str) -> tuple[dict[str, str], str]:
    """MLflow's credential variables for the user info in uri, percent-decoded, and uri
    without it."""
    parts, userinfo, host = _userinfo(uri)
    if userinfo is None:
        return {}, uri
    user, _, password = (unquote(part) for part in userinfo.partition(":"))
    if parts.scheme not in ("http", "https"):
        if not password:  # a database user name alone is no secret, and the URI needs it
            return {}, uri
        raise ConfigError(
            f"the {parts.scheme} tracking URI carries a password, which would be stored and "
            "printed with it: leave it out of the URI (PostgreSQL reads PGPASSWORD), or log to "
            "an MLflow server (http://user:password@host, or MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD)"
        )
    credentials = {name: value for name, value in ((USERNAME, user), (PASSWORD, password)) if value}
    return credentials, urlunsplit(parts._replace(netloc=host))


def redact(uri: str) -> str:
    """The URI without credentials a user may have put in it (https://user:token@host), for
    messages: an unencoded @ in the password included."""
    parts, userinfo, host = _userinfo(uri)
    return uri if userinfo is None else urlunsplit(parts._replace(netloc=f"***@{host}"))


def _userinfo(uri: str):
    """The split URI, its user info (None without one) and its host: the host follows the
    last @, so a password's unencoded @ stays in the user info."""
    parts = urlsplit(uri)
    userinfo, at, host = parts.netloc.rpartition("@")
    return parts, (userinfo if at else None), host
