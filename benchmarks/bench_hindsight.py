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

`--method rollout` lifts the restriction to per-query settings that hold for a query's whole
life: a one-step rollout (Bertsekas' policy improvement) with hindsight. At every decision with
a real choice it tries the base rule's pick, the next few queries' pipelines, and half and
double the parallelism limit; it finishes the seed with the base rule after each, and keeps the
one with the least mean latency. Each decision can thus differ from the rule in any way, and the
schedule can only improve on the rule's. `--method both` runs the rollout over the schedule the
local search found.

Usage: python benchmarks/bench_hindsight.py [SCENARIO] [--seeds 2] [--evaluations 2000]
       [--method search|rollout|both] [--workers 2]
Prints one JSON line: per seed, `tuned`, the starting schedule and the best schedule found.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from agents.heuristics import Heuristic, Knobs, load_share
from agents.tuned import PRIORITY_FAMILIES, Candidate
from lsched.runner import build_agent
from lsched.scenario import Scenario, load_scenario
from sim import simulate
from sim.interface import WAIT, Decision, Observation, PipelineView, Scheduler
from sim.model import ClusterConfig, QuerySpec

CAP_LEVELS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
"""Per-query caps the search may choose (clipped to the cluster's threads)."""
WEIGHT_STEP = 0.7
"""Standard deviation of a weight mutation, in log space."""
CAP_MUTATION_SHARE = 0.3
"""Fraction of mutations that change a query's cap instead of its weight."""
ROLLOUT_OTHER_QUERIES = 3
"""Rollout: besides the base rule's pick, try the best pipeline of this many other queries
(those with the least estimated work left)."""


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
    simulations: int
    rollout_choices: dict[str, dict[str, float]] | None = None
    """Rollout only: per kind of option, how often it was kept and what it took off."""

    def as_json(self) -> dict[str, object]:
        figures: dict[str, object] = {
            "seed": self.seed,
            "tuned_mean_latency_s": round(self.tuned_s, 3),
            "start_mean_latency_s": round(self.start_s, 3),
            "hindsight_mean_latency_s": round(self.best_s, 3),
            "hindsight_vs_tuned": round(self.best_s / self.tuned_s - 1, 4),
            "simulations": self.simulations,
        }
        if self.rollout_choices is not None:
            figures["rollout_choices"] = self.rollout_choices
        return figures


def _mean_latency(
    scenario: Scenario, queries: list[QuerySpec], seed: int, scheduler: Scheduler
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


@dataclass(frozen=True, slots=True)
class Schedule:
    """A per-query SRPT schedule: what the local search moves through."""

    weights: dict[int, float]
    caps: dict[int, int]
    adaptive: float | None

    @classmethod
    def uniform(cls, queries: Sequence[QuerySpec], cap: int, adaptive: float | None) -> Schedule:
        """Plain SRPT: every weight 1, every query capped at `cap` (the search's start)."""
        ids = [q.query_id for q in queries]
        return cls(dict.fromkeys(ids, 1.0), dict.fromkeys(ids, cap), adaptive)

    def build(self) -> PerQuerySrpt:
        return PerQuerySrpt(self.weights, self.caps, self.adaptive)


def local_search(
    scenario: Scenario,
    queries: list[QuerySpec],
    seed: int,
    start: Schedule,
    start_s: float,
    evaluations: int,
    search_seed: int = 0,
) -> tuple[Schedule, float]:
    """(1+1) local search over per-query weights and caps on one seed, with the future known."""
    threads = scenario.cluster.total_threads
    levels = sorted({min(level, threads) for level in CAP_LEVELS})
    ids = [q.query_id for q in queries]
    best, current = start, start_s
    rng = np.random.default_rng([search_seed, seed])
    for _ in range(evaluations):
        weights, caps = dict(best.weights), dict(best.caps)
        for query_id in rng.choice(ids, size=min(int(rng.integers(1, 5)), len(ids)), replace=False):
            query_id = int(query_id)
            if rng.random() < CAP_MUTATION_SHARE:
                caps[query_id] = int(rng.choice(levels))
            else:
                weights[query_id] *= math.exp(rng.normal(0.0, WEIGHT_STEP))
        candidate = Schedule(weights, caps, best.adaptive)
        latency = _mean_latency(scenario, queries, seed, candidate.build())
        if latency <= current:
            best, current = candidate, latency
    return best, current


class _Replay:
    """Replays a decision prefix (None: the base rule's own pick), then follows the base rule.

    Decisions are numbered by call; a simulation is deterministic, so replaying the same prefix
    reproduces the same states. After the prefix it notes the first decision with a real choice:
    its position past the prefix and the alternatives to try there.
    """

    def __init__(self, base: Scheduler, prefix: Sequence[Decision | None]) -> None:
        self.base = base
        self.prefix = prefix
        self.calls = 0
        self.next_choice: tuple[int, list[Decision]] | None = None

    def reset(self, cluster: ClusterConfig) -> None:
        self.base.reset(cluster)
        self.calls = 0
        self.next_choice = None

    def decide(self, obs: Observation) -> Decision:
        call = self.calls
        self.calls += 1
        own = self.base.decide(obs)
        if call < len(self.prefix):
            replayed = self.prefix[call]
            return own if replayed is None else replayed
        if self.next_choice is None:
            options = rollout_options(obs, own)
            if len(options) > 1:
                self.next_choice = (call - len(self.prefix), options)
        return own


def rollout_options(obs: Observation, own: Decision) -> list[Decision]:
    """The base rule's pick first, then other queries' pipelines, then other limits."""
    if own.pipeline is None:
        return [own]
    limit = own.limit
    chosen_query = own.pipeline[0]
    best_of_query: dict[int, tuple[tuple[float, float, int], PipelineView]] = {}
    for pipeline in obs.schedulable:
        if pipeline.query_id == chosen_query or pipeline.threads >= limit:
            continue
        query = obs.query(pipeline.query_id)
        key = (query.est_remaining_work_s, query.arrival_s, pipeline.index)
        held = best_of_query.get(pipeline.query_id)
        if held is None or key < held[0]:
            best_of_query[pipeline.query_id] = (key, pipeline)
    others = sorted(best_of_query.values(), key=lambda item: item[0])[:ROLLOUT_OTHER_QUERIES]
    options = [own] + [Decision(p.ref, limit) for _, p in others]
    held_now = obs.pipeline(own.pipeline).threads
    threads = obs.cluster.total_threads
    for other_limit in sorted({max(1, limit // 2), min(threads, limit * 2)}):
        if other_limit != limit and other_limit > held_now:
            options.append(Decision(own.pipeline, other_limit))
    return options


@dataclass(frozen=True, slots=True)
class RolloutResult:
    base_s: float
    best_s: float
    simulations: int
    kept: dict[str, int]
    """Choices by what was kept: the rule's pick, another query, a higher or a lower limit."""
    gain_s: dict[str, float]
    """Mean latency each kind of kept option took off, in total."""


def _kind(option: Decision, own: Decision) -> str:
    if option == own:
        return "rule"
    if option.pipeline != own.pipeline:
        return "other_query"
    return "higher_limit" if option.limit > own.limit else "lower_limit"


def rollout(
    scenario: Scenario,
    queries: list[QuerySpec],
    seed: int,
    base: Callable[[], Scheduler],
) -> RolloutResult:
    """One-step rollout with hindsight: at each real choice keep the option whose completion
    by the base rule has the least mean latency."""

    def finish(prefix: list[Decision | None]) -> tuple[float, tuple[int, list[Decision]] | None]:
        replay = _Replay(base(), prefix)
        return _mean_latency(scenario, queries, seed, replay), replay.next_choice

    committed: list[Decision | None] = []
    base_s, choice = finish(committed)
    current, runs = base_s, 1
    kept = dict.fromkeys(("rule", "other_query", "higher_limit", "lower_limit"), 0)
    gain_s = dict.fromkeys(kept, 0.0)
    while choice is not None:
        skip, options = choice
        committed.extend([None] * skip)
        best: tuple[float, int, tuple[int, list[Decision]] | None] | None = None
        for position, option in enumerate(options):
            latency, following = finish([*committed, None if position == 0 else option])
            runs += 1
            if best is None or latency < best[0]:
                best = (latency, position, following)
        assert best is not None
        latency, position, choice = best
        kind = _kind(options[position], options[0])
        kept[kind] += 1
        gain_s[kind] += current - latency
        current = latency
        committed.append(None if position == 0 else options[position])
    return RolloutResult(base_s, current, runs, kept, gain_s)


def hindsight(
    scenario: Scenario, seed: int, evaluations: int, method: str = "search"
) -> SearchResult:
    """The best schedule of one seed that `method` finds, knowing the seed's future."""
    queries = list(scenario.queries(seed))
    tuned = build_agent(scenario, "tuned")
    tuned_s = _mean_latency(scenario, queries, seed, tuned)
    cap, adaptive = _start_knobs(tuned.chosen.best, scenario.cluster.total_threads)
    start = Schedule.uniform(queries, cap, adaptive)
    start_s = _mean_latency(scenario, queries, seed, start.build())
    best_s, runs, choices = start_s, 1, None
    if method in ("search", "both"):
        start, best_s = local_search(scenario, queries, seed, start, start_s, evaluations)
        runs += evaluations
    if method in ("rollout", "both"):
        improved = rollout(scenario, queries, seed, start.build)
        best_s, runs = improved.best_s, runs + improved.simulations
        choices = {
            kind: {"kept": count, "gain_s": round(improved.gain_s[kind], 3)}
            for kind, count in improved.kept.items()
        }
    return SearchResult(seed, tuned_s, start_s, best_s, runs, choices)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default="tpch-streaming")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--method", choices=("search", "rollout", "both"), default="search")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    seeds = list(range(args.seeds))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(
            pool.map(
                hindsight,
                [scenario] * len(seeds),
                seeds,
                [args.evaluations] * len(seeds),
                [args.method] * len(seeds),
            )
        )
    tuned_s = float(np.mean([r.tuned_s for r in results]))
    best_s = float(np.mean([r.best_s for r in results]))
    print(
        json.dumps(
            {
                "scenario": scenario.name,
                "method": args.method,
                "seeds": len(seeds),
                "evaluations_per_seed": None if args.method == "rollout" else args.evaluations,
                "tuned_mean_latency_s": round(tuned_s, 3),
                "hindsight_mean_latency_s": round(best_s, 3),
                "hindsight_vs_tuned": round(best_s / tuned_s - 1, 4),
                "per_seed": [r.as_json() for r in results],
            }
        )
    )


if __name__ == "__main__":
    main()
