"""Training the LSched policy: REINFORCE with Decima's input-dependent baseline.

The package reads in one sitting: `config` (every setting, one dataclass), `rollout` (a group
of rollouts, its rewards and gradient), `imitation` (the warm start), `evaluation` (greedy
validation), `margin` (how sure the policy must be to override its guide), `state`
(checkpoints, resume, metrics) and `loop` (`train`, top to bottom).

First, optionally, a warm start: the policy clones a teacher heuristic (`imitate`, by default
the `tuned` agent) on training workloads, so policy gradient refines a good schedule instead of
discovering one from random play — the 2-core budget allows only ~100 iterations. Or `init`
loads a trained policy instead (fine-tuning it, e.g. the shipped one on a user's workload).
Then one iteration, read top to bottom:
1. For each of `workloads_per_iteration` groups, draw a training workload (a seed from the
   scenario's training range, never an evaluation seed) and an episode of K queries, K growing
   with the curriculum: it ends at the K-th arrival, or once all K finish when they arrive at
   once (`episode_end`).
2. Roll the current policy out `rollouts_per_workload` times on that workload, each with its own
   sampling draws (`rollout_group`, in a worker process). By default the rollouts also share
   the execution noise (every task's duration): common random numbers, so what differs between
   them is only the policy's own decisions (`shared_execution`).
3. Reward is minus the time queries spend in the system: a decision at time t earns the
   return-to-go −∫_t^T N(s) ds, N(s) the queries in system. Its baseline is the mean of the
   *other rollouts'* return-to-go at the same time t (the same arrivals and, by default, the
   same durations, so what differs is the schedule: Decima's input-dependent baseline).
   Advantages are normalised per group.
4. The worker turns (advantage, log π) into a gradient with an entropy bonus; the learner averages
   the groups' gradients, clips, and takes one Adam step.
Every `checkpoint_every` iterations an atomic checkpoint (weights, optimizer, RNG state) is written;
`resume=True` continues from it and ends with the same weights an uninterrupted run would: all
randomness of iteration i is derived from (seed, i), never from state carried between iterations.
The best-validated policy ships; with `margin_grid`, after its deviation margin is chosen
(`margin`): every margin on whole validation workloads, the best worst scenario wins.
"""

from lsched.learn.config import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    POLICY_FILE,
    TrainConfig,
    TrainError,
    config_from_settings,
)
from lsched.learn.loop import iteration_tasks, train
from lsched.learn.rollout import (
    RolloutResult,
    RolloutTask,
    episode_drains,
    integral_in_system,
    return_to_go,
    rollout_group,
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
    "episode_drains",
    "integral_in_system",
    "iteration_tasks",
    "return_to_go",
    "rollout_group",
    "train",
]
