"""Environment steps per second under a random masked policy, on one CPU core.

The policy draws a legal slot (WAIT included) and a thread choice uniformly from the action
mask, so it exercises every path of `step`: applying a decision, advancing the
simulator, encoding features, the reward and the mask. Episodes are reset with seeds 0, 1, ...
until `--steps` steps have run; the time of resets is included. Prints one JSON line.
Usage: python benchmarks/bench_env.py [--scenario tpch-streaming] [--steps 20000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lsched.env import QuerySchedulingEnv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="tpch-streaming")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = QuerySchedulingEnv(args.scenario)
    rng = np.random.default_rng(args.seed)
    choices = env.slots + 1
    steps = episodes = 0
    in_system = 0
    start = time.perf_counter()
    env.reset(seed=args.seed)
    while steps < args.steps:
        mask = env.action_masks()
        legal = np.flatnonzero(mask[:choices])
        threads = np.flatnonzero(mask[choices:])
        action = np.array([legal[rng.integers(len(legal))], threads[rng.integers(len(threads))]])
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        in_system += env._features.num_queries
        if terminated or truncated:
            episodes += 1
            env.reset(seed=args.seed + episodes)
    elapsed_s = time.perf_counter() - start

    print(
        json.dumps(
            {
                "benchmark": "env",
                "scenario": args.scenario,
                "steps": steps,
                "episodes": episodes,
                "steps_per_s": round(steps / elapsed_s),
                "mean_queries_in_system": round(in_system / steps, 1),
                "wall_s": round(elapsed_s, 2),
                "slots": env.slots,
                "observation_values": env.observation_values,
            }
        )
    )


if __name__ == "__main__":
    main()
