"""Train sb3-contrib's MaskablePPO on an lsched scenario, unchanged, and compare it with fair
and tuned as `lsched run` compares agents (`lsched.env.evaluate`).

    python examples/maskable_ppo.py --scenario tpch-streaming --steps 200000 --out runs/ppo
    lsched plot runs/ppo --compare tuned,maskable_ppo

The env is used exactly as `gym.make` builds it: MaskablePPO reads `env.action_masks()`
through the vector env, the Dict of flat Boxes goes to SB3's default MultiInputPolicy. Eight
copies in one process (DummyVecEnv) batch the policy's forward passes: most of a step's time
on a CPU is the network, not the simulator. Held-out seeds 0.. are never trained on (the
training envs start in the scenario's training range, and later resets draw from it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import lsched
from lsched.arguments import positive_int, scenario_argument
from lsched.env import evaluate
from lsched.runner import write_results
from lsched.scenario import TRAIN_SEED_OFFSET, load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="tpch-streaming", type=scenario_argument)
    parser.add_argument("--steps", type=positive_int, default=200_000)
    parser.add_argument("--envs", type=positive_int, default=8)
    parser.add_argument("--n-steps", type=positive_int, default=2048, help="MaskablePPO's n_steps")
    parser.add_argument("--eval-seeds", type=positive_int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write a results folder (lsched plot/report)")
    parser.add_argument("--agents", default="fair,tuned", help="agents to compare it with")
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

    # The greedy policy on held-out seeds 0.., beside fair and tuned, as `lsched run` compares
    # agents: the same workloads and execution noise, seed by seed.
    def greedy(observation: dict, mask: np.ndarray) -> np.ndarray:
        return model.predict(observation, action_masks=mask, deterministic=True)[0]

    agents = [name for name in args.agents.split(",") if name]
    report = evaluate(greedy, args.scenario, args.eval_seeds, label="maskable_ppo", agents=agents)
    if args.out is not None:  # then `lsched plot OUT` and `lsched report OUT`, as for a run
        write_results(report, load_scenario(args.scenario), args.out)
    baseline = "tuned" if "tuned" in report.agents else None
    paired = report.paired(baseline)
    print(
        json.dumps(
            {
                "example": "maskable_ppo",
                "scenario": args.scenario,
                "steps": args.steps,
                "mean_latency_s": {a: round(s.mean_latency_s, 3) for a, s in report.agents.items()},
                f"vs_{paired['maskable_ppo'].baseline}": round(paired["maskable_ppo"].ratio - 1, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
