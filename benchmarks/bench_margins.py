"""The shipped policy's deviation margin swept on one scenario's validation workloads.

Runs `tuned` and the shipped `lsched` at each margin (`PolicyOptions.deviation_margin`) on
training-range seeds — the validation seeds margin selection uses (`TrainConfig.
validation_seed_offset`), never the held-out 0..N-1 — and prints one JSON line: each margin's
mean latency against `tuned` in percent. Shows whether a scenario's deviations are gated by
the margin or confident ones (a scenario whose ratio only moves at huge margins).
`--decisions query` runs both in their query-level forms (what `lsched real` runs; the margin
given replaces the checkpoint's `query_deviation_margin`).
Usage: python benchmarks/bench_margins.py SCENARIO [--margins 0,0.5,2,8,16] [--seeds 4]
       [--decisions query]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lsched.learn.config import TrainConfig
from lsched.runner import simulate_one
from lsched.scenario import AgentChoice, load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--margins", default="0,0.5,2,8,16")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--decisions", choices=("pipeline", "query"), default="pipeline")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    margins = [float(m) for m in args.margins.split(",")]
    first = scenario.train_seed_offset + TrainConfig().validation_seed_offset
    seeds = list(range(first, first + args.seeds))
    form = {"decisions": args.decisions}
    agents = [AgentChoice("tuned", form)]
    agents += [AgentChoice("lsched", {**form, "deviation_margin": m}) for m in margins]
    started = time.perf_counter()
    means = {
        agent.label: float(
            np.mean([simulate_one(scenario, agent, seed).mean_latency_s for seed in seeds])
        )
        for agent in agents
    }
    tuned = means["tuned"]
    vs_tuned = {
        str(m): round(100 * (means[a.label] / tuned - 1), 3)
        for m, a in zip(margins, agents[1:], strict=True)
    }
    print(
        json.dumps(
            {
                "scenario": scenario.name,
                "decisions": args.decisions,
                "seeds": seeds,
                "tuned_mean_latency_s": tuned,
                "vs_tuned_pct": vs_tuned,
                "wall_s": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
