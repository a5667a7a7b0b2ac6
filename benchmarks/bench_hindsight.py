"""Hindsight: how far below `tuned` can a schedule get that knows the whole future of a seed?

bench_headroom.py asks what any *rule* of a broad heuristic space achieves. This asks a harder
question: with every arrival and every true task duration known in advance, how much better can
the schedule of one seed be made? No online scheduler, learned or not, has that knowledge, so
what this finds is an optimistic estimate of the gain a learned policy could hope for.

The schedule is weighted SRPT with a per-query weight and a per-query parallelism cap, under the
load-adaptive share of `tuned`'s best rule (Knobs.adaptive_parallelism). Per-query weights can
put the queries in any order and undo any estimation error, and per-query caps trade speed for
parallel overhead query by query. A (1+1) local search, started from plain SRPT at `tuned`'s cap,
mutates one to four queries at a time and keeps every change that does not lengthen the mean
latency of that very seed (same arrivals, same durations: full hindsight). It is a local search,
so its result is a schedule that exists, not the optimum.

Usage: python benchmarks/bench_hindsight.py [SCENARIO] [--seeds 2] [--evaluations 2000]
       [--workers 2]
Prints one JSON line: per seed, `tuned`, the starting schedule and the best schedule found.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from agents.heuristics import Heuristic, Knobs, load_share
from agents.tuned import PRIORITY_FAMILIES, Candidate
from lsched.runner import build_agent
from lsched.scenario import Scenario, load_scenario
from sim import simulate
from sim.interface import WAIT, Decision, Observation, PipelineView
from sim.model import QuerySpec

CAP_LEVELS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
"""Per-query caps the search may choose (clipped to the cluster's threads)."""
WEIGHT_STEP = 0.7
"""Standard deviation of a weight mutation, in log space."""
CAP_MUTATION_SHARE = 0.3
"""Fraction of mutations that change a query's cap instead of its weight."""


class PerQuerySrpt(Heuristic):
    """SRPT on weight × estimated remaining work, each query capped at its own parallelism.

    With all weights 1 and every cap at `Knobs.max_parallelism` it schedules exactly as
    `Srpt(Knobs(max_parallelism, adaptive_parallelism))`.
    """

    def __init__(
        self,
        weights: dict[int, float],
        caps: dict[int, int],
        adaptive_parallelism: float | None,
    ) -> None:
        super().__init__(Knobs())
        self.weights = weights
        self.caps = caps
        self.adaptive = adaptive_parallelism

    def decide(self, obs: Observation) -> Decision:
        share = self._total
        if self.adaptive is not None:
            share = max(1, load_share(self.adaptive, self._total, len(obs.queries)))
        keys: dict[int, tuple[float, float, int]] = {}
        best: PipelineView | None = None
        best_key: tuple = ()
        for pipeline in obs.schedulable:
            query_id = pipeline.query_id
            if pipeline.threads >= min(self.caps[query_id], share):
                continue
            query_key = keys.get(query_id)
            if query_key is None:
                query = obs.query(query_id)
                weighted = self.weights[query_id] * query.est_remaining_work_s
                query_key = keys[query_id] = (weighted, query.arrival_s, query_id)
            candidate = (query_key, pipeline.index)
            if best is None or candidate < best_key:
                best, best_key = pipeline, candidate
        if best is None:
            return WAIT
        return Decision((best.query_id, best.index), min(self.caps[best.query_id], share))


@dataclass(frozen=True, slots=True)
class SearchResult:
    seed: int
    tuned_s: float
    start_s: float
    best_s: float
    evaluations: int

    def as_json(self) -> dict[str, float | int]:
        return {
            "seed": self.seed,
            "tuned_mean_latency_s": round(self.tuned_s, 3),
            "start_mean_latency_s": round(self.start_s, 3),
            "hindsight_mean_latency_s": round(self.best_s, 3),
            "hindsight_vs_tuned": round(self.best_s / self.tuned_s - 1, 4),
        }


def _mean_latency(
    scenario: Scenario, queries: list[QuerySpec], seed: int, scheduler: Heuristic
) -> float:
    result = simulate(
        queries, scenario.cluster, scheduler, scenario.execution_rng(seed), record_tasks=False
    )
    return result.mean_latency_s


def _start_knobs(best: Candidate, threads: int) -> tuple[int, float | None]:
    """`tuned`'s cap, and its adaptive factor when it picked a priority rule (else 1.0)."""
    cap = best.max_parallelism or threads
    if best.family in PRIORITY_FAMILIES:
        return cap, best.adaptive_parallelism
    return cap, 1.0


def hindsight_search(
    scenario: Scenario, seed: int, evaluations: int, search_seed: int = 0
) -> SearchResult:
    """Local search over per-query weights and caps on one seed, with the future known."""
    queries = list(scenario.queries(seed))
    tuned = build_agent(scenario, "tuned")
    tuned_s = _mean_latency(scenario, queries, seed, tuned)
    threads = scenario.cluster.total_threads
    cap, adaptive = _start_knobs(tuned.chosen.best, threads)
    levels = sorted({min(level, threads) for level in CAP_LEVELS})
    ids = [q.query_id for q in queries]
    weights = dict.fromkeys(ids, 1.0)
    caps = dict.fromkeys(ids, cap)
    start_s = current = _mean_latency(
        scenario, queries, seed, PerQuerySrpt(weights, caps, adaptive)
    )
    rng = np.random.default_rng([search_seed, seed])
    for _ in range(evaluations):
        new_weights, new_caps = dict(weights), dict(caps)
        for query_id in rng.choice(ids, size=min(int(rng.integers(1, 5)), len(ids)), replace=False):
            query_id = int(query_id)
            if rng.random() < CAP_MUTATION_SHARE:
                new_caps[query_id] = int(rng.choice(levels))
            else:
                new_weights[query_id] *= math.exp(rng.normal(0.0, WEIGHT_STEP))
        latency = _mean_latency(
            scenario, queries, seed, PerQuerySrpt(new_weights, new_caps, adaptive)
        )
        if latency <= current:
            weights, caps, current = new_weights, new_caps, latency
    return SearchResult(seed, tuned_s, start_s, current, evaluations)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default="tpch-streaming")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    seeds = list(range(args.seeds))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(
            pool.map(
                hindsight_search,
                [scenario] * len(seeds),
                seeds,
                [args.evaluations] * len(seeds),
            )
        )
    tuned_s = float(np.mean([r.tuned_s for r in results]))
    best_s = float(np.mean([r.best_s for r in results]))
    print(
        json.dumps(
            {
                "scenario": scenario.name,
                "seeds": len(seeds),
                "evaluations_per_seed": args.evaluations,
                "tuned_mean_latency_s": round(tuned_s, 3),
                "hindsight_mean_latency_s": round(best_s, 3),
                "hindsight_vs_tuned": round(best_s / tuned_s - 1, 4),
                "per_seed": [r.as_json() for r in results],
            }
        )
    )


if __name__ == "__main__":
    main()
