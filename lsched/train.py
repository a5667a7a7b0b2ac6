"""Training moved to `lsched.learn` (config, rollout, imitation, evaluation, state, loop); this
module keeps imports written before the split working. It has no entry point of its own: train
with `lsched train`."""

from lsched.learn import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    POLICY_FILE,
    RolloutResult,
    RolloutTask,
    TrainConfig,
    TrainError,
    config_from_settings,
    integral_in_system,
    return_to_go,
    rollout_group,
    train,
)

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "POLICY_FILE",
    "RolloutResult",
    "RolloutTask",
    "TrainConfig",
    "TrainError",
    "config_from_settings",
    "integral_in_system",
    "return_to_go",
    "rollout_group",
    "train",
]
