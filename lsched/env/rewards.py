"""Rewards of the scheduling environment: what a step costs, in query-seconds or misses.

Each reward is computed between two decision points t0 < t1 from the queries in the system at
t1 and those that finished in between, so it never depends on how often the agent is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from sim.bounds import isolated_latency_s
from sim.interface import CompletedQuery
from sim.model import ClusterConfig, QuerySpec

DEFAULT_REWARD_SCALE = 0.01
"""Reward units per query-second: a step costs 0.01 for each second each query waits."""
SLOWDOWN_FLOOR_S = 1e-3
"""Smallest isolated latency a slowdown weight divides by (guards near-empty queries)."""


class Reward(Protocol):
    """One episode's reward; `reset` sees the whole workload (rewards may use true work)."""

    def reset(self, queries: Sequence[QuerySpec], cluster: ClusterConfig) -> None: ...

    def __call__(
        self,
        t0_s: float,
        t1_s: float,
        active_ids: np.ndarray,
        active_arrival_s: np.ndarray,
        completed: Sequence[CompletedQuery],
    ) -> float:
        """Reward for [t0_s, t1_s]: `active_*` are the queries in the system at t1_s, `completed`
        those that finished in between."""
        ...


class LatencyReward:
    """Minus `scale` × ∫ (queries in the system) dt, as in Decima.

    Each query contributes the part of [arrival, finish] inside [t0, t1], so over a whole
    episode the rewards sum to minus `scale` × the total latency of every query.
    """

    def __init__(self, scale: float = DEFAULT_REWARD_SCALE) -> None:
        self.scale = scale

    def reset(self, queries: Sequence[QuerySpec], cluster: ClusterConfig) -> None:
        return None

    def __call__(
        self,
        t0_s: float,
        t1_s: float,
        active_ids: np.ndarray,
        active_arrival_s: np.ndarray,
        completed: Sequence[CompletedQuery],
    ) -> float:
        in_system_s = len(active_arrival_s) * t1_s - float(np.maximum(active_arrival_s, t0_s).sum())
        for record in completed:
            in_system_s += record.finish_s - max(record.arrival_s, t0_s)
        return -self.scale * in_system_s


class SlowdownReward:
    """Like `LatencyReward`, but each query's time counts divided by its isolated latency.

    The isolated latency is the plan alone on the cluster with every task at its pipeline's
    mean true duration — its critical path, or its whole work over every thread when that is
    longer (sim.bounds.isolated_latency_s, skew ignored); over an
    episode the rewards sum to minus `scale` × Σ latency / isolated latency.
    """

    def __init__(self, scale: float = DEFAULT_REWARD_SCALE) -> None:
        self.scale = scale
        self._ids = np.zeros(0, np.int64)
        self._weights = np.zeros(0)
        self._by_id: dict[int, float] = {}

    def reset(self, queries: Sequence[QuerySpec], cluster: ClusterConfig) -> None:
        threads = cluster.total_threads
        by_id = {}
        for query in queries:
            means = [np.full(p.num_tasks, p.work_s / p.num_tasks) for p in query.pipelines]
            by_id[query.query_id] = 1.0 / max(
                isolated_latency_s(query, means, threads), SLOWDOWN_FLOOR_S
            )
        self._by_id = by_id
        self._ids = np.array(sorted(by_id), dtype=np.int64)
        self._weights = np.array([by_id[i] for i in self._ids.tolist()])

    def __call__(
        self,
        t0_s: float,
        t1_s: float,
        active_ids: np.ndarray,
        active_arrival_s: np.ndarray,
        completed: Sequence[CompletedQuery],
    ) -> float:
        weights = self._weights[np.searchsorted(self._ids, active_ids)]
        weighted_s = float((weights * (t1_s - np.maximum(active_arrival_s, t0_s))).sum())
        for record in completed:
            weighted_s += self._by_id[record.query_id] * (
                record.finish_s - max(record.arrival_s, t0_s)
            )
        return -self.scale * weighted_s


class DeadlineReward:
    """Minus `scale` for every query that finishes later than its deadline (none: never late)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._deadline_s: dict[int, float] = {}

    def reset(self, queries: Sequence[QuerySpec], cluster: ClusterConfig) -> None:
        self._deadline_s = {q.query_id: q.deadline_s for q in queries if q.deadline_s is not None}

    def __call__(
        self,
        t0_s: float,
        t1_s: float,
        active_ids: np.ndarray,
        active_arrival_s: np.ndarray,
        completed: Sequence[CompletedQuery],
    ) -> float:
        deadlines = self._deadline_s
        misses = 0
        for record in completed:
            deadline_s = deadlines.get(record.query_id)
            if deadline_s is not None and record.latency_s > deadline_s:
                misses += 1
        return -self.scale * misses


REWARDS: dict[str, Callable[[float], Reward]] = {
    "latency": LatencyReward,
    "slowdown": SlowdownReward,
    "deadline": DeadlineReward,
}
"""Reward name -> constructor taking the scale."""
