"""User errors: each carries a message written for a person; the CLI prints it as one line."""


class UserError(Exception):
    """A mistake the user can fix; never a bug in finetune-hpo."""


class ConfigError(UserError):
    """The configuration (YAML file or CLI override) is wrong."""


class DataError(UserError):
    """The dataset is missing, malformed or unusable."""


class SetupError(UserError):
    """The environment is wrong: unreachable services, missing resources, a busy output folder."""


def first_line(error: object) -> str:
    """The first line of an error's message (its type when it has none): the reason a one-line
    message quotes from a library's exception."""
    lines = _lines(error)
    return lines[0] if lines else type(error).__name__


def last_line(error: object) -> str:
    """The last line of an error's text: for a trial's error, the exception the worker raised,
    not Ray's wrapping of it."""
    lines = _lines(error)
    return lines[-1] if lines else type(error).__name__


def _lines(error: object) -> list[str]:
    return [line.strip() for line in str(error).splitlines() if line.strip()]
