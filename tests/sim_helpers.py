"""Small workloads and schedulers for simulator tests, built from sim.model alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim import WAIT, ClusterConfig, Decision, Observation, PipelineSpec, QuerySpec

QUIET = dict(moving_delay_s=0.0, warmup_s=0.0, parallel_overhead=0.0, task_skew=0.0)
"""Cluster costs switched off, so a test can switch on exactly one effect."""


def chain_query(
    query_id: int,
    works_s: Sequence[float],
    tasks: int | Sequence[int] = 1,
    arrival_s: float = 0.0,
    memory_gb: float = 0.0,
    est_factor: float = 1.0,
    template: str = "t",
) -> QuerySpec:
    """A query whose pipelines form a chain 0 -> 1 -> ... (each the parent of the next)."""
    counts = [tasks] * len(works_s) if isinstance(tasks, int) else list(tasks)
    pipelines = tuple(
        PipelineSpec(
            index=i,
            parents=(i - 1,) if i else (),
            num_tasks=counts[i],
            work_s=w,
            est_work_s=w * est_factor,
            memory_gb=memory_gb,
        )
        for i, w in enumerate(works_s)
    )
    return QuerySpec(query_id, template, "adhoc", arrival_s, pipelines)


class FirstCome:
    """Oldest query's first schedulable pipeline, up to a fixed parallelism limit."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.cap = 1

    def reset(self, cluster: ClusterConfig) -> None:
        self.cap = self.limit or cluster.total_threads

    def decide(self, obs: Observation) -> Decision:
        candidates = [p for p in obs.schedulable if p.threads < self.cap]
        if not candidates:
            return WAIT
        best = min(candidates, key=lambda p: (obs.query(p.query_id).arrival_s, p.query_id, p.index))
        return Decision(best.ref, self.cap)


class RandomLimits:
    """Random pipeline and random limit above its current threads: explores odd schedules."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, cluster: ClusterConfig) -> None:
        self.total = cluster.total_threads

    def decide(self, obs: Observation) -> Decision:
        candidates = sorted(
            (p for p in obs.schedulable if p.threads < self.total), key=lambda p: p.ref
        )
        if not candidates:
            return WAIT
        pipeline = candidates[int(self.rng.integers(len(candidates)))]
        limit = int(self.rng.integers(pipeline.threads + 1, self.total + 1))
        return Decision(pipeline.ref, limit)
