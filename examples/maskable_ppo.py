"""Train sb3-contrib's MaskablePPO on an lsched scenario, unchanged, and compare it with fair.

    python examples/maskable_ppo.py --scenario tpch-streaming --steps 200000

The env is used exactly as `gym.make` builds it: MaskablePPO reads `env.action_masks()`
through the vector env, the Dict of flat Boxes goes to SB3's default MultiInputPolicy. Eight
copies in one process (DummyVecEnv) batch the policy's forward passes: most of a step's time
on a CPU is the network, not the simulator. Held-out seeds 0.. are never trained on (training
resets draw seeds from the scenario's training range).
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import lsched
from lsched.arguments import positive_int, scenario_argument
from lsched.runner import simulate_one
from lsched.scenario import TRAIN_SEED_OFFSET


def evaluate(model: MaskablePPO, scenario: str, seeds: range) -> float:
    """Mean query latency of the greedy policy over `seeds` (queries of every seed pooled)."""
    env = gym.make(lsched.ENV_ID, scenario=scenario)
    latencies: list[float] = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            mask = env.unwrapped.action_masks()
            action, _ = model.predict(obs, action_masks=mask, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        latencies += env.unwrapped.result().latencies_s().tolist()
    return float(np.mean(latencies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tpch-streaming", type=scenario_argument)
    parser.add_argument("--steps", type=positive_int, default=200_000)
    parser.add_argument("--envs", type=positive_int, default=8)
    parser.add_argument("--n-steps", type=positive_int, default=2048, help="MaskablePPO's n_steps")
    parser.add_argument("--eval-seeds", type=positive_int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)  # tiny batches: one thread is faster than two that contend
    envs = make_vec_env(
        lsched.ENV_ID,
        n_envs=args.envs,
        # make_vec_env resets env i with seed + i: from the training range, or the first
        # episodes would replay the held-out seeds the evaluation below uses
        seed=TRAIN_SEED_OFFSET + args.seed,
        env_kwargs={"scenario": args.scenario},
    )
    model = MaskablePPO("MultiInputPolicy", envs, n_steps=args.n_steps, seed=args.seed, verbose=0)
    model.learn(total_timesteps=args.steps)
    seeds = range(args.eval_seeds)
    sc = envs.get_attr("scenario")[0]
    fair = np.concatenate([simulate_one(sc, "fair", s).latencies_s() for s in seeds]).mean()
    print(
        json.dumps(
            {
                "example": "maskable_ppo",
                "scenario": args.scenario,
                "steps": args.steps,
                "mean_latency_s": round(evaluate(model, args.scenario, seeds), 3),
                "fair_mean_latency_s": round(float(fair), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
