"""Train RLlib's PPO with action masking on an lsched scenario.

    python examples/rllib_ppo.py --scenario tpch-streaming --iterations 20

RLlib's action-masking RLModule reads observations of the form {"observations",
"action_mask"}: `lsched.env.FlatObservation` gives exactly that, so the env goes in with no
connector of its own. The mask is flat over the MultiDiscrete action's parts, as the module's
logits are, so masked logits are pushed to -inf before sampling. The env is registered with
RLlib by a creator function: remote env runners build it from there (importing lsched), so
the gymnasium id needs no module prefix.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import gymnasium as gym
import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
from ray.tune.registry import register_env

import lsched
from lsched.arguments import positive_int, scenario_argument
from lsched.env import FlatObservation


def make_env(config: dict[str, Any]) -> gym.Env:
    return FlatObservation(gym.make(lsched.ENV_ID, **config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tpch-streaming", type=scenario_argument)
    parser.add_argument("--iterations", type=positive_int, default=20)
    parser.add_argument("--batch", type=positive_int, default=4000, help="env steps per iteration")
    parser.add_argument("--env-runners", type=int, default=0, help="0: sample in this process")
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_env("lsched-flat", make_env)
    config = (
        PPOConfig()
        .environment("lsched-flat", env_config={"scenario": args.scenario})
        .env_runners(num_env_runners=args.env_runners)
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=ActionMaskingTorchRLModule,
                model_config={"head_fcnet_hiddens": [64, 64]},
            )
        )
        .training(
            train_batch_size_per_learner=args.batch,
            minibatch_size=min(128, args.batch),
            num_epochs=4,
        )
    )
    algo = config.build_algo()
    returns = []
    for _ in range(args.iterations):
        result = algo.train()
        returns.append(result["env_runners"].get("episode_return_mean"))
    algo.stop()
    ray.shutdown()
    print(
        json.dumps(
            {
                "example": "rllib_ppo",
                "scenario": args.scenario,
                "iterations": args.iterations,
                "episode_return_mean": returns[-1],
            }
        )
    )


if __name__ == "__main__":
    main()
