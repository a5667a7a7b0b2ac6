"""Headroom: how far below `tuned` can *any* policy of a broad heuristic space get on a scenario?

Before asking a learned scheduler for 20% over the best heuristic, check that the 20% exists.
This runs, on the evaluation seeds, a space of schedules much wider than `tuned`'s grid:
every priority/share family at caps from all threads down to 1/16 of them, SRPT with a fair-share
floor per query, SRPT whose cap adapts to the queries in the system (Knobs.adaptive_parallelism,
which `tuned` tries with its `adaptive_factors` option), switches between SRPT and
fair by load, and SRPT on the *true* remaining work (an oracle no database has). It prints one
JSON line: `tuned`, the best variant with and without the oracle, and the simulator's lower bound
(which ignores DAG order, task granularity and every overhead, so it is far from reachable).
Usage: python benchmarks/bench_headroom.py [SCENARIO] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

import numpy as np

from agents.heuristics import Fair, Fifo, Heuristic, Knobs, Sjf, Srpt
from lsched.runner import build_agent
from lsched.scenario import Scenario, load_scenario
from sim import simulate
from sim.interface import WAIT, Decision, Observation, PipelineView, QueryView
from sim.model import ClusterConfig

Factory = Callable[[], Heuristic]


class _SrptVariant(Heuristic):
    """SRPT with an extra no shipped rule has: a per-query fair-share floor, or oracle sizes."""

    def __init__(self, cap: int, *, share_floor: bool = False, oracle: bool = False) -> None:
        super().__init__(Knobs(max_parallelism=cap))
        self.share_floor = share_floor
        self.oracle = oracle

    def _remaining(self, query: QueryView) -> float:
        if not self.oracle:
            return query.est_remaining_work_s
        return sum(p.true_work_s * (1 - p.tasks_done / p.num_tasks) for p in query.pipelines)

    def decide(self, obs: Observation) -> Decision:
        in_system = max(len(obs.queries), 1)
        cap = self._max
        query_cap = max(cap, math.ceil(self._total / in_system)) if self.share_floor else None
        best: PipelineView | None = None
        best_key: tuple = ()
        for pipeline in obs.schedulable:
            query = obs.query(pipeline.query_id)
            if pipeline.threads >= cap or (query_cap and query.threads >= query_cap):
                continue
            key = (self._remaining(query), query.arrival_s, query.query_id, pipeline.index)
            if best is None or key < best_key:
                best, best_key = pipeline, key
        if best is None:
            return WAIT
        limit = cap
        if query_cap is not None:
            owner = obs.query(best.query_id)
            limit = min(cap, best.threads + query_cap - owner.threads)
        return Decision((best.query_id, best.index), limit)


class _Switch(Heuristic):
    """One heuristic while few queries are in the system, another above `queries`."""

    def __init__(self, light: Heuristic, heavy: Heuristic, queries: int) -> None:
        super().__init__()
        self.light, self.heavy, self.queries = light, heavy, queries

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self.light.reset(cluster)
        self.heavy.reset(cluster)

    def decide(self, obs: Observation) -> Decision:
        light, heavy = self.light.decide(obs), self.heavy.decide(obs)  # both keep their caches
        return light if len(obs.queries) <= self.queries else heavy


def variants(threads: int) -> dict[str, tuple[Factory, bool]]:
    """name -> (factory, needs the oracle)."""
    caps = sorted({max(1, threads // d) for d in (1, 2, 4, 8, 16)}, reverse=True)
    space: dict[str, tuple[Factory, bool]] = {}
    for family, cls in (("fifo", Fifo), ("sjf", Sjf), ("srpt", Srpt), ("fair", Fair)):
        for cap in caps:
            space[f"{family} cap {cap}"] = (lambda c=cap, k=cls: k(Knobs(max_parallelism=c)), False)
    for cap in caps[:3]:
        space[f"srpt+share cap {cap}"] = (lambda c=cap: _SrptVariant(c, share_floor=True), False)
        for factor in (1.0, 2.0):
            space[f"srpt adaptive {factor:g}x cap {cap}"] = (
                lambda c=cap, f=factor: Srpt(Knobs(max_parallelism=c, adaptive_parallelism=f)),
                False,
            )
        space[f"oracle srpt cap {cap}"] = (lambda c=cap: _SrptVariant(c, oracle=True), True)
    for queries in (2, 4, 8):
        for cap in caps[1:3]:
            space[f"srpt cap {cap} below {queries} queries, else fair cap {caps[1]}"] = (
                lambda c=cap, q=queries: _Switch(
                    Srpt(Knobs(max_parallelism=c)), Fair(Knobs(max_parallelism=caps[1])), q
                ),
                False,
            )
    return space


def mean_latency(scenario: Scenario, make: Callable[[], object], seeds: list[int], oracle: bool):
    values = [
        simulate(
            scenario.queries(seed),
            scenario.cluster,
            make(),
            scenario.execution_rng(seed),
            oracle=oracle,
            record_tasks=False,
        )
        for seed in seeds
    ]
    return float(np.mean([r.mean_latency_s for r in values])), float(
        np.mean([r.lower_bound.mean_latency_s for r in values])
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default="tpch-streaming")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    seeds = list(range(args.seeds))
    tuned = build_agent(scenario, "tuned")
    tuned_s, bound_s = mean_latency(scenario, lambda: tuned, seeds, scenario.oracle)
    results = {
        name: mean_latency(scenario, make, seeds, oracle)[0]
        for name, (make, oracle) in variants(scenario.cluster.total_threads).items()
    }
    honest = {k: v for k, v in results.items() if not k.startswith("oracle")}
    best = min(honest, key=honest.__getitem__)
    best_any = min(results, key=results.__getitem__)
    print(
        json.dumps(
            {
                "scenario": scenario.name,
                "seeds": len(seeds),
                "variants": len(results),
                "tuned": tuned.describe().split(" (")[0],
                "tuned_mean_latency_s": round(tuned_s, 3),
                "best_variant": best,
                "best_mean_latency_s": round(honest[best], 3),
                "best_vs_tuned": round(honest[best] / tuned_s - 1, 4),
                "best_with_oracle": best_any,
                "best_with_oracle_vs_tuned": round(results[best_any] / tuned_s - 1, 4),
                "lower_bound_mean_latency_s": round(bound_s, 3),
                "all": {k: round(v, 3) for k, v in sorted(results.items(), key=lambda i: i[1])},
            }
        )
    )


if __name__ == "__main__":
    main()
