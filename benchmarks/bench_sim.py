"""Simulator throughput: tasks and scheduler decisions per second, at 1×, 4× and 16× the size.

The 1× workload is 2,000 queries (~500,000 tasks) on 64 threads under FIFO, at ~80%
utilisation (a load of 0.5 before moving, warm-up and parallelism overheads), with every
effect on by default (per-pipeline serial fractions, co-run interference).
Prints one JSON line. Usage: python benchmarks/bench_sim.py [--scales 1,4,16] [--queries 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace

import numpy as np

from agents.heuristics import Fifo, Knobs
from sim import ClusterConfig, PipelineSpec, QuerySpec, Simulation
from sim.budget import Budget

CLUSTER = ClusterConfig(nodes=8, threads_per_node=8, memory_per_node_gb=64.0)
EFFECTS_ON = replace(CLUSTER, parallel_overhead=None, interference=0.05)
"""Every effect on: each pipeline's own serial fraction and co-run interference."""
SERIAL_FRACTION_RANGE = (0.011, 0.137)
"""Per-pipeline serial fractions are drawn uniformly in DuckDB's measured TPC-H p10-p90."""
MEAN_TASKS_PER_QUERY = 250
MEAN_TASK_S = 2.0
TARGET_LOAD = 0.5
FIFO_MAX_PARALLELISM = 16
"""FIFO with every thread on one pipeline drowns in parallel overhead; a cap keeps it stable."""


def synthetic_workload(
    num_queries: int, rng: np.random.Generator, slowdown: float = 1.0
) -> list[QuerySpec]:
    """Random plan DAGs (4-8 pipelines, each feeding a later one) arriving as a Poisson stream;
    `slowdown` stretches the gaps by the tasks' expected parallel slow-down, so that every
    effect setting runs at the same utilisation (an overloaded queue would time the
    scheduler's scan of a growing backlog, not the simulator)."""
    mean_work_s = MEAN_TASKS_PER_QUERY * MEAN_TASK_S
    gap_s = slowdown * mean_work_s / (CLUSTER.total_threads * TARGET_LOAD)
    arrivals = np.cumsum(rng.exponential(gap_s, num_queries))
    queries = []
    for query_id, arrival in enumerate(arrivals):
        count = int(rng.integers(4, 9))
        shares = rng.dirichlet(np.ones(count))
        pipelines = []
        for index in range(count):
            tasks = max(1, round(shares[index] * MEAN_TASKS_PER_QUERY))
            work = tasks * MEAN_TASK_S
            children_of = () if index == 0 else (int(rng.integers(0, index)),)
            fraction = float(rng.uniform(*SERIAL_FRACTION_RANGE))
            pipelines.append(
                PipelineSpec(index, children_of, tasks, work, work, 0.5, serial_fraction=fraction)
            )
        queries.append(
            QuerySpec(query_id, f"t{query_id % 20}", "adhoc", float(arrival), tuple(pipelines))
        )
    return queries


def measure(num_queries: int, cluster: ClusterConfig, seed: int = 0) -> dict[str, float]:
    fraction = (
        float(np.mean(SERIAL_FRACTION_RANGE))
        if cluster.parallel_overhead is None
        else cluster.parallel_overhead
    )
    slowdown = (1 + fraction * (FIFO_MAX_PARALLELISM - 1)) / (
        1 + CLUSTER.parallel_overhead * (FIFO_MAX_PARALLELISM - 1)
    )
    workload = synthetic_workload(num_queries, np.random.default_rng(seed), slowdown)
    scheduler = Fifo(Knobs(max_parallelism=FIFO_MAX_PARALLELISM))
    started = time.perf_counter()
    # the largest setting (32,000 queries) is beyond the default budget by design
    budget = Budget(max_queries=max(num_queries, Budget().max_queries), max_events=10**9)
    simulation = Simulation(workload, cluster, np.random.default_rng(seed + 1), budget=budget)
    scheduler.reset(cluster)
    obs = simulation.advance()
    while obs is not None:
        simulation.apply(scheduler.decide(obs))
        obs = simulation.advance()
    result = simulation.result()
    elapsed = time.perf_counter() - started
    return {
        "queries": num_queries,
        "tasks": len(result.tasks),
        "decisions": result.decisions,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(len(result.tasks) / elapsed),
        "decisions_per_s": round(result.decisions / elapsed),
        "utilization": round(result.utilization, 3),
        "mean_latency_s": round(result.mean_latency_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument(
        "--effects",
        choices=("all", "uniform"),
        default="all",
        help="all: per-pipeline serial fractions and interference; uniform: the 0.02 model",
    )
    args = parser.parse_args()
    cluster = EFFECTS_ON if args.effects == "all" else CLUSTER
    runs = [measure(args.queries * int(scale), cluster) for scale in args.scales.split(",")]
    base = runs[0]["seconds"] / runs[0]["tasks"]
    figures = {
        "benchmark": "sim",
        "effects": args.effects,
        "threads": CLUSTER.total_threads,
        "runs": runs,
        "cost_per_task_vs_1x": [round(r["seconds"] / r["tasks"] / base, 2) for r in runs],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
