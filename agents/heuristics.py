"""Baseline schedulers: the rules a database would ship with, as `sim.interface.Scheduler`s.

Each reads only what an `Observation` shows (the optimizer's estimates, never true work) and
picks among `obs.schedulable`, so one decision costs one pass over the schedulable pipelines.
Per-query keys that cannot change (arrival, estimated size, plan shape) are computed once per
query and forgotten when it finishes.

Priority rules (FIFO, SJF, SRPT, critical path first) hand the best pipeline every free thread
up to `max_parallelism`; share rules (fair, weighted fair) cap each query at its share of the
threads and, unless `work_conserving` is off, hand out the rest rather than leave it idle.
A thread stays with its pipeline until the pipeline runs out of tasks, so shares apply when
threads are handed out.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from agents.context import AgentOptionError
from sim.interface import WAIT, Decision, Observation, PipelineView, QueryView
from sim.model import ClusterConfig


@dataclass(frozen=True, slots=True)
class Knobs:
    """Parallelism settings every heuristic shares."""

    max_parallelism: int | None = None
    """Most threads one pipeline may hold; None: every thread of the cluster."""
    min_parallelism: int = 1
    """Fewest threads a share rule (fair, weighted fair) or random hands a pipeline it picks."""
    work_conserving: bool = True
    """Share rules: give threads beyond every query's share away rather than leave them idle."""
    adaptive_parallelism: float | None = None
    """Priority rules: shrink the cap with the load to ceil(this × threads / queries in the
    system) (never above max_parallelism): all threads to a lone query, a share each when many
    wait. None: a fixed cap. On tpch-streaming, SRPT at 1.0 (cap 16) is 7.9% below SRPT at 16
    (benchmarks/bench_headroom.py)."""
    max_concurrent_queries: int | None = None
    """Admission limit, as WLM's slots: threads go only to the queries already started and,
    while fewer than this many have, to the oldest waiting ones. None: every query."""

    def __post_init__(self) -> None:
        if self.max_parallelism is not None and (
            isinstance(self.max_parallelism, bool)
            or not isinstance(self.max_parallelism, int)
            or self.max_parallelism < 1
        ):
            raise AgentOptionError(
                f"option max_parallelism: must be an integer >= 1 or null "
                f"(got {self.max_parallelism!r})"
            )
        if (
            isinstance(self.min_parallelism, bool)
            or not isinstance(self.min_parallelism, int)
            or self.min_parallelism < 1
        ):
            raise AgentOptionError(
                f"option min_parallelism: must be an integer >= 1 (got {self.min_parallelism!r})"
            )
        if self.max_parallelism is not None and self.min_parallelism > self.max_parallelism:
            raise AgentOptionError(
                f"option min_parallelism: {self.min_parallelism} exceeds max_parallelism "
                f"{self.max_parallelism}"
            )
        if self.adaptive_parallelism is not None and (
            isinstance(self.adaptive_parallelism, bool)
            or not isinstance(self.adaptive_parallelism, int | float)
            or not 0 < self.adaptive_parallelism < math.inf
        ):
            raise AgentOptionError(
                f"option adaptive_parallelism: must be a finite number > 0 or null "
                f"(got {self.adaptive_parallelism!r})"
            )
        if self.max_concurrent_queries is not None and (
            isinstance(self.max_concurrent_queries, bool)
            or not isinstance(self.max_concurrent_queries, int)
            or self.max_concurrent_queries < 1
        ):
            raise AgentOptionError(
                f"option max_concurrent_queries: must be an integer >= 1 or null "
                f"(got {self.max_concurrent_queries!r})"
            )
        if not isinstance(self.work_conserving, bool):
            raise AgentOptionError(
                f"option work_conserving: must be true or false (got {self.work_conserving!r})"
            )


KNOB_NAMES = frozenset(Knobs.__dataclass_fields__)
"""Every shared knob; each heuristic accepts those of them it reads (`Heuristic.knobs_read`)."""
PRIORITY_KNOBS = frozenset(
    {"max_parallelism", "min_parallelism", "adaptive_parallelism", "max_concurrent_queries"}
)
"""What a priority rule reads (min_parallelism floors the adaptive cap)."""
SHARE_KNOBS = frozenset(
    {"max_parallelism", "min_parallelism", "work_conserving", "max_concurrent_queries"}
)
"""What a share rule reads."""


class Heuristic:
    """Shared bookkeeping: the parallelism caps for the cluster and per-query cached keys.

    Every subclass declares `knobs_read`, the `Knobs` fields its decisions read; the registry
    refuses any other knob for it (one line listing the options it takes), so a knob can never
    be set and silently ignored.
    """

    knobs_read: ClassVar[frozenset[str]]
    """The Knobs fields this rule reads (a subset of KNOB_NAMES)."""
    tunable: ClassVar[bool] = True
    """Whether `tuned` may search this family (agents.families.FAMILIES)."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self.knobs = knobs or Knobs()
        self._total = 1
        self._max = 1
        self._min = 1
        self._cache: dict[int, Any] = {}
        """query_id -> whatever a rule precomputes once per query."""
        self._seen_completed = 0

    def reset(self, cluster: ClusterConfig) -> None:
        total = cluster.total_threads
        self._total = total
        self._max = min(self.knobs.max_parallelism or total, total)
        self._min = min(self.knobs.min_parallelism, self._max)
        self._cache.clear()
        self._seen_completed = 0

    def _forget_finished(self, obs: Observation) -> None:
        """Drop cached keys of queries that finished since the last decision (amortised O(1))."""
        completed = obs.completed
        if len(completed) == self._seen_completed:
            return
        cache = self._cache
        for record in completed[self._seen_completed :]:
            cache.pop(record.query_id, None)
        self._seen_completed = len(completed)

    def _admitted(self, obs: Observation) -> set[int] | None:
        """Queries that may get threads under `max_concurrent_queries` (None: all)."""
        slots = self.knobs.max_concurrent_queries
        if slots is None:
            return None
        started = [q.query_id for q in obs.queries if q.started_s is not None]
        if len(started) >= slots:
            return set(started)
        waiting = [q.query_id for q in obs.queries if q.started_s is None]
        return {*started, *waiting[: slots - len(started)]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.knobs})"


def load_share(factor: float, threads: int, queries_in_system: int) -> int:
    """The cap `Knobs.adaptive_parallelism` sets: ⌈factor · threads / queries in the system⌉
    (the epsilon keeps an exact quotient from rounding up)."""
    return ceil(factor * threads / max(queries_in_system, 1) - 1e-9)


class _PriorityRule(Heuristic, ABC):
    """Every free thread, up to `max_parallelism`, to the pipeline with the smallest key."""

    knobs_read = PRIORITY_KNOBS

    def decide(self, obs: Observation) -> Decision:
        self._forget_finished(obs)
        cap = self._max
        factor = self.knobs.adaptive_parallelism
        if factor is not None:
            cap = min(cap, max(self._min, load_share(factor, self._total, len(obs.queries))))
        key = self._key
        admitted = self._admitted(obs)
        best: PipelineView | None = None
        best_key: tuple = ()
        for pipeline in obs.schedulable:
            if pipeline.threads >= cap:
                continue
            if admitted is not None and pipeline.query_id not in admitted:
                continue
            candidate = key(pipeline, obs)
            if best is None or candidate < best_key:
                best, best_key = pipeline, candidate
        if best is None:
            return WAIT
        return Decision((best.query_id, best.index), cap)

    @abstractmethod
    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        """Sort key of a candidate pipeline: the smallest is scheduled."""


class Fifo(_PriorityRule):
    """Oldest query first; within a query, its ready pipelines in plan (DAG) order."""

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        query_key = self._cache.get(pipeline.query_id)
        if query_key is None:
            query = obs.query(pipeline.query_id)
            query_key = self._cache[pipeline.query_id] = (query.arrival_s, query.query_id)
        return (query_key, pipeline.index)


class Sjf(_PriorityRule):
    """Shortest job first: the query with the smallest estimated total work, oldest on ties."""

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        query_key = self._cache.get(pipeline.query_id)
        if query_key is None:
            query = obs.query(pipeline.query_id)
            query_key = (query.est_work_s, query.arrival_s, query.query_id)
            self._cache[pipeline.query_id] = query_key
        return (query_key, pipeline.index)


class Srpt(_PriorityRule):
    """Shortest remaining processing time: the query with the least estimated work left."""

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        query = obs.query(pipeline.query_id)
        return (query.est_remaining_work_s, query.arrival_s, query.query_id, pipeline.index)


class CriticalPathFirst(_PriorityRule):
    """The pipeline heading the longest estimated remaining path to its query's result.

    A path's length is the estimated work left on this pipeline plus the heaviest chain of
    descendants below it; plan depth breaks ties, then query id. Ranks pipelines of all queries
    together, so it keeps the most work in flight rather than finishing queries early.
    """

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        below = self._cache.get(pipeline.query_id)
        if below is None:
            below = self._cache[pipeline.query_id] = _work_below_s(obs.query(pipeline.query_id))
        path_s = pipeline.est_remaining_work_s + below[pipeline.index]
        return (-path_s, -pipeline.depth, pipeline.query_id, pipeline.index)


def _work_below_s(query: QueryView) -> tuple[float, ...]:
    """Per pipeline: estimated work of the heaviest chain of its descendants (0 for the result)."""
    pipelines = query.pipelines
    below = [0.0] * len(pipelines)
    for view in reversed(pipelines):  # children come after their parents
        below[view.index] = max(
            (pipelines[c].est_work_s + below[c] for c in view.children), default=0.0
        )
    return tuple(below)


class WeightedFair(Heuristic):
    """Each query gets threads in proportion to its weight: ceil(threads · w / Σ w in system).

    A query's weight is its class weight (`class_weights`, else `default_weight`), times its
    priority when `use_priority` is on. The least-served query (threads / weight) goes first,
    oldest on ties, its ready pipelines in plan order.
    """

    knobs_read = SHARE_KNOBS

    def __init__(
        self,
        knobs: Knobs | None = None,
        class_weights: Mapping[str, float] | None = None,
        default_weight: float = 1.0,
        use_priority: bool = True,
    ) -> None:
        super().__init__(knobs)
        if class_weights is not None and not isinstance(class_weights, Mapping):
            raise AgentOptionError(
                f"option class_weights: must be a mapping of query class to weight "
                f"(got {class_weights!r})"
            )
        if not isinstance(use_priority, bool):
            raise AgentOptionError(
                f"option use_priority: must be true or false (got {use_priority!r})"
            )
        weights = dict(class_weights or {})
        for name, weight in [*weights.items(), ("<default_weight>", default_weight)]:
            if (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not 0 < weight < math.inf
            ):
                field = "default_weight" if name == "<default_weight>" else f"class_weights.{name}"
                raise AgentOptionError(
                    f"option {field}: must be a finite number > 0 (got {weight!r})"
                )
        self.class_weights: Mapping[str, float] = MappingProxyType(weights)
        self.default_weight = float(default_weight)
        self.use_priority = use_priority
        self._epoch = (-1, -1)
        self._weight_sum = 1.0

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self._epoch = (-1, -1)

    def _weight(self, query: QueryView) -> float:
        weight = self.class_weights.get(query.query_class, self.default_weight)
        if self.use_priority:
            weight *= query.priority
        return max(weight, 1e-12)

    def decide(self, obs: Observation) -> Decision:
        self._forget_finished(obs)
        cache = self._cache
        admitted = self._admitted(obs)
        epoch = (obs.arrivals_so_far, len(obs.completed))
        if epoch != self._epoch:  # the set of queries changed: re-add the weights
            total_weight = 0.0
            for query in obs.queries:
                if admitted is not None and query.query_id not in admitted:
                    continue
                weight = cache.get(query.query_id)
                if weight is None:
                    weight = cache[query.query_id] = self._weight(query)
                total_weight += weight
            self._weight_sum = total_weight
            self._epoch = epoch
        threads_per_weight = self._total / self._weight_sum
        cap, floor = self._max, self._min

        best: PipelineView | None = None
        best_key: tuple = ()
        best_limit = 0
        spare: PipelineView | None = None
        spare_key: tuple = ()
        spare_count = 0
        for pipeline in obs.schedulable:
            if pipeline.threads >= cap:
                continue
            if admitted is not None and pipeline.query_id not in admitted:
                continue
            query = obs.query(pipeline.query_id)
            weight = cache[pipeline.query_id]
            key = (query.threads / weight, query.arrival_s, query.query_id, pipeline.index)
            share = ceil(threads_per_weight * weight - 1e-9)
            limit = min(cap, max(floor, pipeline.threads + share - query.threads))
            if limit > pipeline.threads:
                if best is None or key < best_key:
                    best, best_key, best_limit = pipeline, key, limit
            elif best is None:
                spare_count += 1
                if spare is None or key < spare_key:
                    spare, spare_key = pipeline, key
        if best is not None:
            return Decision((best.query_id, best.index), best_limit)
        if spare is None or not self.knobs.work_conserving:
            return WAIT
        # Every query holds its share: split the idle threads over the pipelines that can use them.
        extra = ceil(obs.free_threads / spare_count)
        return Decision((spare.query_id, spare.index), min(cap, spare.threads + extra))


class Fair(WeightedFair):
    """Equal threads per query in the system: ceil(threads / queries), oldest first on ties."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        super().__init__(knobs, class_weights=None, default_weight=1.0, use_priority=False)


class RandomPick(Heuristic):
    """A schedulable pipeline drawn uniformly, given `max_parallelism` threads (or a random limit).

    The generator's state is kept at construction and restored by `reset`, so every run of the
    same object draws the same stream whatever ran before it.
    """

    knobs_read = frozenset({"max_parallelism", "min_parallelism", "max_concurrent_queries"})
    tunable = False

    def __init__(
        self, rng: np.random.Generator, knobs: Knobs | None = None, random_limit: bool = False
    ) -> None:
        super().__init__(knobs)
        if not isinstance(random_limit, bool):
            raise AgentOptionError(
                f"option random_limit: must be true or false (got {random_limit!r})"
            )
        self.random_limit = random_limit
        """Draw the limit uniformly in [min_parallelism, max_parallelism] instead of the cap."""
        self._rng = rng
        self._initial_state = rng.bit_generator.state

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self._rng.bit_generator.state = self._initial_state

    def decide(self, obs: Observation) -> Decision:
        cap = self._max
        admitted = self._admitted(obs)
        candidates = [
            p
            for p in obs.schedulable
            if p.threads < cap and (admitted is None or p.query_id in admitted)
        ]
        if not candidates:
            return WAIT
        pipeline = candidates[int(self._rng.integers(len(candidates)))]
        limit = cap
        if self.random_limit:
            low = max(self._min, pipeline.threads + 1)
            limit = int(self._rng.integers(low, cap + 1))
        return Decision((pipeline.query_id, pipeline.index), limit)
