"""Which failures of a trial's Train run are worth another try.

Ray Train restarts a run whose workers raised, up to `resources.max_failures` times, from the
last checkpoint. An out-of-memory error would come back on every try (same batch size, same
model, and on a shared GPU the same neighbours), and so would a user error (a precision the
GPU cannot do), so these end their trial on the first.

Ray 2.60 takes no failure policy from its caller: the Train run's controller is built with
`create_failure_policy(failure_config)` inside `DataParallelTrainer.fit`, through
`_initialize_and_run_controller`, where `one_try_for_recurring`'s subclass swaps in its own.
"""

from __future__ import annotations

from ray.train import FailureConfig
from ray.train.v2._internal.execution.failure_handling import FailureDecision
from ray.train.v2._internal.execution.failure_handling.default import DefaultFailurePolicy
from ray.train.v2.api.exceptions import TrainingFailedError, WorkerGroupError

from trainable.errors import UserError

RECURRING = (MemoryError, UserError)


class RecurringFailsOnce(DefaultFailurePolicy):
    """Ray Train's default policy, except that a worker's MemoryError (trainable/train_loop.py
    raises one for torch.OutOfMemoryError, with its reason) or UserError ends the run at once."""

    def __init__(self, failure_config: FailureConfig):
        super().__init__(failure_config)

    def make_decision(self, training_failed_error: TrainingFailedError) -> FailureDecision:
        if isinstance(training_failed_error, WorkerGroupError) and any(
            isinstance(error, RECURRING) for error in training_failed_error.worker_failures.values()
        ):
            return FailureDecision.RAISE
        return super().make_decision(training_failed_error)


def one_try_for_recurring(trainer_class: type) -> type:
    """`trainer_class` (DataParallelTrainer or a subclass) with RecurringFailsOnce as its
    policy."""

    class OneTryForRecurring(trainer_class):
        def _initialize_and_run_controller(self, **controller_init_kwargs):
            policy = RecurringFailsOnce(self.run_config.failure_config)
            return super()._initialize_and_run_controller(
                **{**controller_init_kwargs, "failure_policy": policy}
            )

    return OneTryForRecurring
