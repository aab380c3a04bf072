"""User errors: each carries a message written for a person; the CLI prints it as one line."""


class UserError(Exception):
    """A mistake the user can fix; never a bug in finetune-hpo."""


class ConfigError(UserError):
    """The configuration (YAML file or CLI override) is wrong."""


class DataError(UserError):
    """The dataset is missing, malformed or unusable."""


class SetupError(UserError):
    """The environment is wrong: unreachable services, missing resources, a busy output folder."""
