"""Decision latency of the learned scheduler: encode + policy forward, on one CPU core.

120 queries of 10 pipelines each arrive at t=0 on a 64-thread cluster; a policy that finishes
the smallest first (as the SRPT-guided one does) completes a few during the measured decisions,
so the workload starts with 20 spare and `queries_in_system_min` reports that every decision saw
at least 100 queries. Each decision changes thread counts, so the encoder re-reads what it must,
as in a real run. The shipped policy is guided by `tuned`, which schedules as the heuristic it
picked; here SRPT capped at 16 threads stands in for it (its proposal is computed on every
decision, as in a real run). Also times the forward pass alone. Prints one JSON line.
Usage: python benchmarks/bench_policy.py [--queries 120] [--pipelines 10] [--decisions 2000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from agents.heuristics import Knobs, Srpt
from agents.learned.agent import LearnedScheduler, ObservationLimits, feature_sizes
from agents.learned.factory import PRETRAINED, cached_policy
from agents.learned.policy import Policy, PolicyConfig
from sim import ClusterConfig, PipelineSpec, QuerySpec, Simulation

CLUSTER = ClusterConfig(nodes=8, threads_per_node=8)


def workload(queries: int, pipelines: int, rng: np.random.Generator) -> list[QuerySpec]:
    """Random plan DAGs (each pipeline feeds a later one), long enough to stay in the system."""
    specs = []
    for query_id in range(queries):
        plan = []
        for index in range(pipelines):
            parents = tuple(int(p) for p in rng.choice(index, size=min(index, 2), replace=False))
            tasks = int(rng.integers(20, 200))
            work = tasks * 50.0
            plan.append(PipelineSpec(index, parents, tasks, work, work * rng.lognormal(0, 0.5)))
        specs.append(QuerySpec(query_id, f"t{query_id % 20}", "adhoc", 0.0, tuple(plan)))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--pipelines", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--untrained", action="store_true", help="random weights, not shipped")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if PRETRAINED.exists() and not args.untrained:
        policy, _ = cached_policy(str(PRETRAINED))
    else:
        sizes = feature_sizes()
        torch.manual_seed(0)
        policy = Policy(PolicyConfig(sizes.pipeline, sizes.query, sizes.global_))
    scheduler = LearnedScheduler(policy, ObservationLimits(), guide=Srpt(Knobs(max_parallelism=16)))
    rng = np.random.default_rng(0)
    simulation = Simulation(workload(args.queries, args.pipelines, rng), CLUSTER, rng)
    scheduler.reset(CLUSTER)

    decide_s, in_system = [], []
    observation = simulation.advance()
    while observation is not None and len(decide_s) < args.decisions:
        started = time.perf_counter()
        decision = scheduler.decide(observation)
        decide_s.append(time.perf_counter() - started)
        in_system.append(len(observation.queries))
        simulation.apply(decision)
        observation = simulation.advance()

    assert observation is not None, "the workload finished before the measured decisions"
    step, _, _ = scheduler.observe(observation)
    batch = step.to_batch()
    forward_s = []
    with torch.inference_mode():
        for _ in range(200):
            started = time.perf_counter()
            policy(batch)
            forward_s.append(time.perf_counter() - started)
    decide_ms = np.array(decide_s) * 1e3
    print(
        json.dumps(
            {
                "queries_in_system_min": int(min(in_system)),
                "pipelines_in_system": len(step.pipeline_x),
                "decisions": len(decide_ms),
                "decide_p50_ms": round(float(np.percentile(decide_ms, 50)), 3),
                "decide_p99_ms": round(float(np.percentile(decide_ms, 99)), 3),
                "decide_max_ms": round(float(decide_ms.max()), 3),
                "forward_p50_ms": round(float(np.percentile(forward_s, 50)) * 1e3, 3),
                "forward_p99_ms": round(float(np.percentile(forward_s, 99)) * 1e3, 3),
                "parameters": sum(p.numel() for p in policy.parameters()),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
