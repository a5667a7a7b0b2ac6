"""The one interface between the simulator and schedulers: what a scheduler sees and returns.

A scheduler sees what a real database knows — plan structure, the optimizer's estimates,
progress counters, elapsed time, free threads and memory — never true task durations
(unless the scenario turns on the oracle). The views are live objects owned by the
simulator: read them during `decide`, copy what you want to keep, never mutate them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sim.model import ClusterConfig, QuerySpec

PipelineRef = tuple[int, int]
"""(query_id, pipeline index): how a decision names a pipeline."""


class PipelineView:
    """What a scheduler may know about one pipeline of a running query."""

    __slots__ = (
        "_oracle_work_s",
        "children",
        "depth",
        "est_work_s",
        "index",
        "is_finished",
        "is_ready",
        "limit",
        "memory_gb",
        "num_tasks",
        "operator",
        "parents",
        "query_id",
        "tasks_done",
        "tasks_running",
        "threads",
    )

    def __init__(
        self,
        query_id: int,
        index: int,
        parents: tuple[int, ...],
        num_tasks: int,
        est_work_s: float,
        memory_gb: float,
        operator: str,
    ) -> None:
        self.query_id = query_id
        self.index = index
        self.parents = parents
        self.children: tuple[int, ...] = ()
        self.depth = 0
        """Longest path (in pipelines) from this pipeline to the query's result."""
        self.num_tasks = num_tasks
        self.est_work_s = est_work_s
        self.memory_gb = memory_gb
        self.operator = operator
        self.tasks_done = 0
        self.tasks_running = 0
        self.threads = 0
        """Threads currently bound to this pipeline."""
        self.limit = 0
        """The parallelism limit the scheduler last set (0: never scheduled)."""
        self.is_ready = not parents
        self.is_finished = False
        self._oracle_work_s: float | None = None

    @property
    def ref(self) -> PipelineRef:
        return (self.query_id, self.index)

    @property
    def tasks_left(self) -> int:
        """Tasks not yet started (running tasks excluded)."""
        return self.num_tasks - self.tasks_done - self.tasks_running

    @property
    def est_remaining_work_s(self) -> float:
        """Estimated thread-seconds still to do, assuming equal tasks."""
        return self.est_work_s * (self.num_tasks - self.tasks_done) / self.num_tasks

    @property
    def true_work_s(self) -> float:
        """True work: only available when the scenario enables the oracle."""
        if self._oracle_work_s is None:
            raise PermissionError("true work is hidden: the scenario does not enable the oracle")
        return self._oracle_work_s

    def __repr__(self) -> str:
        return (
            f"PipelineView(q={self.query_id}, p={self.index}, tasks={self.tasks_done}/"
            f"{self.num_tasks}, threads={self.threads}, ready={self.is_ready})"
        )


class QueryView:
    """What a scheduler may know about one query in the system."""

    __slots__ = (
        "_done_tasks",
        "_est_done_s",
        "arrival_s",
        "deadline_s",
        "est_work_s",
        "num_tasks",
        "pipelines",
        "priority",
        "query_class",
        "query_id",
        "scale_factor",
        "started_s",
        "template",
        "threads",
    )

    def __init__(
        self,
        query_id: int,
        template: str,
        query_class: str,
        arrival_s: float,
        scale_factor: float,
        priority: float,
        deadline_s: float | None,
        pipelines: tuple[PipelineView, ...],
    ) -> None:
        self.query_id = query_id
        self.template = template
        self.query_class = query_class
        self.arrival_s = arrival_s
        self.scale_factor = scale_factor
        self.priority = priority
        self.deadline_s = deadline_s
        self.pipelines = pipelines
        self.est_work_s = sum(p.est_work_s for p in pipelines)
        self.num_tasks = sum(p.num_tasks for p in pipelines)
        self.started_s: float | None = None
        self.threads = 0
        self._done_tasks = 0
        self._est_done_s = 0.0

    @property
    def progress(self) -> float:
        """Fraction of the query's tasks finished."""
        return self._done_tasks / self.num_tasks

    @property
    def est_remaining_work_s(self) -> float:
        return max(self.est_work_s - self._est_done_s, 0.0)

    def __repr__(self) -> str:
        return f"QueryView(id={self.query_id}, {self.template}, progress={self.progress:.2f})"


def query_view(spec: QuerySpec, oracle: bool = False) -> QueryView:
    """A fresh view of a query as it arrives: its plan, estimates and nothing done yet (true
    work only with the oracle). The simulator and the real-engine runner both build them here."""
    views = tuple(
        PipelineView(
            spec.query_id, p.index, p.parents, p.num_tasks, p.est_work_s, p.memory_gb, p.operator
        )
        for p in spec.pipelines
    )
    children: list[list[int]] = [[] for _ in views]
    for p in spec.pipelines:
        for parent in p.parents:
            children[parent].append(p.index)
    for view in reversed(views):
        view.children = tuple(children[view.index])
        view.depth = 1 + max((views[c].depth for c in view.children), default=-1)
        if oracle:
            view._oracle_work_s = spec.pipelines[view.index].work_s
    return QueryView(
        spec.query_id,
        spec.template,
        spec.query_class,
        spec.arrival_s,
        spec.scale_factor,
        spec.priority,
        spec.deadline_s,
        views,
    )


@dataclass(frozen=True, slots=True)
class CompletedQuery:
    """A finished query as the database's query log records it."""

    query_id: int
    template: str
    query_class: str
    scale_factor: float
    arrival_s: float
    finish_s: float
    est_work_s: float
    cpu_s: float = math.nan
    """Thread-seconds its tasks ran, as a query log's CPU time records it once the query is
    done (NaN where the engine does not report it): what a runtime predictor learns from."""

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s


class Observation:
    """The read-only state a scheduler decides on. One object, refreshed by the simulator."""

    __slots__ = ("_sim", "cluster", "oracle")

    def __init__(self, sim: SimulationState, cluster: ClusterConfig, oracle: bool) -> None:
        self._sim = sim
        self.cluster = cluster
        self.oracle = oracle

    @property
    def now_s(self) -> float:
        return self._sim.now_s

    @property
    def queries(self) -> Collection[QueryView]:
        """Queries that have arrived and not finished, in arrival order."""
        return self._sim.active_queries.values()

    @property
    def schedulable(self) -> Collection[PipelineView]:
        """Ready pipelines with tasks not yet started: the legal targets of a decision."""
        return self._sim.schedulable.values()

    def query(self, query_id: int) -> QueryView:
        return self._sim.active_queries[query_id]

    def pipeline(self, ref: PipelineRef) -> PipelineView:
        return self._sim.active_queries[ref[0]].pipelines[ref[1]]

    @property
    def free_threads(self) -> int:
        return self._sim.free_threads

    @property
    def free_threads_per_node(self) -> Sequence[int]:
        return self._sim.free_per_node

    @property
    def memory_used_gb(self) -> Sequence[float]:
        return self._sim.memory_used_gb

    @property
    def nodes_up(self) -> Sequence[bool]:
        return self._sim.node_up

    @property
    def completed(self) -> Sequence[CompletedQuery]:
        """The query log so far: what a workload-aware scheduler learns recurrence from."""
        return self._sim.completed

    @property
    def arrivals_so_far(self) -> int:
        return self._sim.arrivals_so_far


class SimulationState(Protocol):
    """What an Observation reads; implemented by the simulator."""

    now_s: float
    active_queries: dict[int, QueryView]
    schedulable: dict[PipelineRef, PipelineView]
    free_threads: int
    free_per_node: list[int]
    memory_used_gb: list[float]
    node_up: list[bool]
    completed: list[CompletedQuery]
    arrivals_so_far: int


@dataclass(frozen=True, slots=True)
class Decision:
    """Bind free threads to a pipeline up to `limit` threads, or wait (pipeline None).

    Setting a limit below the threads a pipeline has releases the surplus after their
    current task. A decision that binds no new thread ends the current round of decisions.
    """

    pipeline: PipelineRef | None
    limit: int = 0
    delay_s: float = 0.0
    """Seconds the threads it binds wait before their first task: the scheduler's own time
    spent deciding, which a query-level scheduler pays on the engine's clock
    (`sim.query_level.QueryLevel.decision_s`); 0 for an engine-internal scheduler."""


WAIT = Decision(None, 0)


@runtime_checkable
class Scheduler(Protocol):
    """Anything that decides. Called whenever threads are free and a pipeline can run."""

    def reset(self, cluster: ClusterConfig) -> None:
        """Forget per-run state before a new simulation."""
        ...

    def decide(self, obs: Observation) -> Decision:
        """Pick one schedulable pipeline and its parallelism limit, or WAIT."""
        ...
