"""The driver: CLI, search space, Tuner, export and the summary."""
