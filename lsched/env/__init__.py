"""The Gymnasium environment: `gymnasium.make("lsched/QueryScheduling-v0", scenario=...)`.

Importing this package registers the environment (`register_env`, idempotent).
"""

import gymnasium

from lsched.env.core import ENV_ID, InvalidActionError, QuerySchedulingEnv
from lsched.env.rewards import (
    DEFAULT_REWARD_SCALE,
    REWARDS,
    DeadlineReward,
    LatencyReward,
    Reward,
    SlowdownReward,
)
from lsched.env.wrappers import EDGE_FEATURES, NODE_FEATURES, GraphObservation


def register_env() -> None:
    """Make `ENV_ID` known to gymnasium.make (safe to call more than once)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="lsched.env.core:QuerySchedulingEnv")


register_env()

__all__ = [
    "DEFAULT_REWARD_SCALE",
    "EDGE_FEATURES",
    "ENV_ID",
    "NODE_FEATURES",
    "REWARDS",
    "DeadlineReward",
    "GraphObservation",
    "InvalidActionError",
    "LatencyReward",
    "QuerySchedulingEnv",
    "Reward",
    "SlowdownReward",
    "register_env",
]
