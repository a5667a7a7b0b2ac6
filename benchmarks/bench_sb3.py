"""sb3-contrib's MaskablePPO, default hyperparameters, on the env's defaults: how fast it
collects and what it learns, beside the heuristics, on held-out seeds.

The env is `gym.make(lsched.ENV_ID, scenario=...)` with no options; the model is
`MaskablePPO("MultiInputPolicy", envs)` with every hyperparameter at its default (n_steps
2048 per env, batch 64, 10 epochs, lr 3e-4). `--envs` copies in one process (DummyVecEnv)
batch the policy's forward passes; torch runs on one thread per process (tiny batches).
Collection speed counts env steps over the time spent in `collect_rollouts` only.

Evaluation: the trained policy, greedy (argmax of the masked distribution) and sampled, on
seeds 0..--eval-seeds-1 (never trained on: training resets draw from the scenario's training
range), against random, fifo, fair and tuned on the same seeds (`lsched run` figures).
Prints one JSON line.
Usage: python benchmarks/bench_sb3.py [--scenario tpch-streaming] [--steps 400000]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import lsched
from lsched.runner import simulate_one
from lsched.scenario import TRAIN_SEED_OFFSET, load_scenario

BASELINES = ("random", "fifo", "fair", "tuned")


class CollectionTimer(BaseCallback):
    """Time spent collecting rollouts, and the env steps taken in it."""

    def __init__(self) -> None:
        super().__init__()
        self.collect_s = 0.0
        self.steps = 0
        self._started = 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.collect_s += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        self.steps += self.training_env.num_envs
        return True


def evaluate(model: MaskablePPO, scenario: str, seeds: range, greedy: bool) -> float:
    env = gym.make(lsched.ENV_ID, scenario=scenario)
    latencies: list[float] = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            mask = env.unwrapped.action_masks()
            action, _ = model.predict(obs, action_masks=mask, deterministic=greedy)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        latencies += env.unwrapped.result().latencies_s().tolist()
    return float(np.mean(latencies))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="tpch-streaming")
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--policy",
        choices=("default", "slots"),
        default="default",
        help="default: SB3's MultiInputPolicy; slots: lsched.env.sb3.SlotScoringPolicy",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    envs = make_vec_env(
        lsched.ENV_ID,
        n_envs=args.envs,
        # make_vec_env resets env i with seed + i: from the training range, or the first
        # episodes would replay the held-out seeds the evaluation below uses
        seed=TRAIN_SEED_OFFSET + args.seed,
        env_kwargs={"scenario": args.scenario},
    )
    if args.policy == "slots":
        from lsched.env.sb3 import SlotScoringPolicy

        policy: object = SlotScoringPolicy
    else:
        policy = "MultiInputPolicy"
    model = MaskablePPO(policy, envs, seed=args.seed, verbose=0)
    timer = CollectionTimer()
    started = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=timer)
    train_s = time.perf_counter() - started

    seeds = range(args.eval_seeds)
    scenario = load_scenario(args.scenario)
    baselines = {
        name: float(
            np.concatenate([simulate_one(scenario, name, s).latencies_s() for s in seeds]).mean()
        )
        for name in BASELINES
    }
    greedy = evaluate(model, args.scenario, seeds, greedy=True)
    sampled = evaluate(model, args.scenario, seeds, greedy=False)
    best = min(greedy, sampled)
    inner = envs.envs[0].unwrapped
    print(
        json.dumps(
            {
                "benchmark": "sb3_maskable_ppo",
                "scenario": args.scenario,
                "envs": args.envs,
                "policy": args.policy,
                "steps": timer.steps,
                "observation_values": inner.observation_values,
                "policy_parameters": sum(p.numel() for p in model.policy.parameters()),
                "collect_steps_per_s": round(timer.steps / timer.collect_s),
                "train_wall_s": round(train_s, 1),
                "eval_seeds": args.eval_seeds,
                "mean_latency_s": {
                    "maskable_ppo_greedy": round(greedy, 3),
                    "maskable_ppo_sampled": round(sampled, 3),
                    **{name: round(value, 3) for name, value in baselines.items()},
                },
                "beats_random": best < baselines["random"],
                "beats_fifo": best < baselines["fifo"],
                "vs_fair": round(best / baselines["fair"], 3),
                "within_25pct_of_fair": best <= 1.25 * baselines["fair"],
            }
        )
    )


if __name__ == "__main__":
    main()
