"""The Gymnasium environment: `gymnasium.make("lsched/QueryScheduling-v0", scenario=...)`.

`import lsched` already registers it (`register_env`, idempotent).
"""

from lsched import ENV_ID, register_env
from lsched.env.core import InvalidActionError, QuerySchedulingEnv
from lsched.env.evaluate import EnvPolicy, evaluate
from lsched.env.rewards import (
    DEFAULT_REWARD_SCALE,
    REWARDS,
    DeadlineReward,
    LatencyReward,
    Reward,
    SlowdownReward,
)
from lsched.env.wrappers import (
    EDGE_FEATURES,
    NODE_FEATURES,
    FlatObservation,
    GraphObservation,
    graph_instance,
)

__all__ = [
    "DEFAULT_REWARD_SCALE",
    "EDGE_FEATURES",
    "ENV_ID",
    "NODE_FEATURES",
    "REWARDS",
    "DeadlineReward",
    "EnvPolicy",
    "FlatObservation",
    "GraphObservation",
    "InvalidActionError",
    "LatencyReward",
    "QuerySchedulingEnv",
    "Reward",
    "SlowdownReward",
    "evaluate",
    "graph_instance",
    "register_env",
]
