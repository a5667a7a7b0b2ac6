"""Plain data the simulator is built from: the cluster, queries and their pipelines.

Everything here is frozen: a workload generator produces these once, and every scheduler
run on the same seed reads the same objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_TASK_SKEW = 4.0
"""Largest `task_skew`: task durations are gamma with shape 1/skew², and beyond this the
draws underflow to 0 often enough that a pipeline's tasks sum to nothing (bundled: 0.3)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """The range a numeric setting may take; checked here and by the scenario schema."""

    low: float
    low_inclusive: bool = True
    high: float | None = None
    """Inclusive upper end; None: any finite number."""

    def holds(self, value: float) -> bool:
        """Within range and finite (no setting here means anything at infinity)."""
        above = value >= self.low if self.low_inclusive else value > self.low
        return above and math.isfinite(value) and (self.high is None or value <= self.high)

    def field_constraints(self) -> dict[str, float]:
        """The range as pydantic Field keywords (ge/gt/le)."""
        low = {"ge": self.low} if self.low_inclusive else {"gt": self.low}
        return low if self.high is None else {**low, "le": self.high}

    def describe(self) -> str:
        text = f"{'>=' if self.low_inclusive else '>'} {self.low:g}"
        return text if self.high is None else f"{text} and <= {self.high:g}"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Node failures: exponential up-times, then a fixed repair time."""

    mean_time_between_failures_s: float = 0.0
    """Mean up-time of a node before it fails; 0 turns faults off."""
    repair_time_s: float = 60.0
    """How long a failed node stays down before its threads can run tasks again."""

    @property
    def enabled(self) -> bool:
        return self.mean_time_between_failures_s > 0.0


FAULT_BOUNDS: Mapping[str, Bound] = {
    "mean_time_between_failures_s": Bound(0.0),
    "repair_time_s": Bound(0.0),
}
"""The one statement of FaultConfig's ranges (scenario files validate against it too)."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The machine: nodes × worker threads, memory, and the costs that make scheduling hard.

    Every cost is a knob a scenario can set; the defaults follow what Decima measured on Spark
    (about 2 s to move an executor to another job and 1 s of warm-up) scaled to an engine
    whose tasks are morsels of a pipeline.
    """

    nodes: int = 2
    threads_per_node: int = 8
    memory_per_node_gb: float = 64.0
    moving_delay_s: float = 2.0
    """Paid by a thread's first task when it switches to a different query."""
    warmup_s: float = 1.0
    """Paid by the first task a thread runs for a pipeline (operator set-up, cold caches)."""
    parallel_overhead: float | None = 0.02
    """Diminishing returns: a task with k threads on its pipeline takes (1 + f·(k−1))×, with f
    this number for every pipeline, or each pipeline's own measured `serial_fraction` if None."""
    spill_factor: float = 2.0
    """Slow-down of a task started on a node whose running pipelines exceed its memory."""
    task_skew: float = 0.3
    """Coefficient of variation of task durations around their pipeline's mean (gamma)."""
    interference: float = 0.0
    """Co-run slow-down: a task started on a node where threads of k other queries are bound
    takes (1 + interference·k)× (shared memory bandwidth and caches); 0 turns it off."""
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        settings = [(name, getattr(self, name), bound) for name, bound in CLUSTER_BOUNDS.items()]
        settings += [
            (f"faults.{name}", getattr(self.faults, name), bound)
            for name, bound in FAULT_BOUNDS.items()
        ]
        bad = [
            f"{name} (must be {bound.describe()})"
            for name, value, bound in settings
            if value is not None and not bound.holds(value)
        ]
        if bad:
            raise ValueError(f"invalid cluster setting(s): {', '.join(bad)}")

    @property
    def total_threads(self) -> int:
        return self.nodes * self.threads_per_node


CLUSTER_BOUNDS: Mapping[str, Bound] = {
    "nodes": Bound(1),
    "threads_per_node": Bound(1),
    "memory_per_node_gb": Bound(0.0, low_inclusive=False),
    "moving_delay_s": Bound(0.0),
    "warmup_s": Bound(0.0),
    "parallel_overhead": Bound(0.0),
    "spill_factor": Bound(1.0),
    "task_skew": Bound(0.0, high=MAX_TASK_SKEW),
    "interference": Bound(0.0),
}
"""The one statement of ClusterConfig's ranges: `__post_init__` checks them and the scenario
schema (lsched.scenario) is built from them. How large a cluster may be is a budget
(sim.budget.Budget.max_threads), not a range."""


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """One pipeline of a query plan: a chain of operators between two pipeline breakers.

    `work_s` is the true total thread-seconds of its tasks; `est_work_s` is what the optimizer
    believes (true × estimation error). Schedulers only ever see the estimate.
    """

    index: int
    parents: tuple[int, ...]
    num_tasks: int
    work_s: float
    est_work_s: float
    memory_gb: float = 0.0
    operator: str = ""
    """What breaks the pipeline (e.g. "hash_build", "aggregate", "sort", "result")."""
    serial_fraction: float = 0.0
    """Amdahl serial fraction f of its tasks: with k threads on the pipeline each task takes
    (1 + f·(k−1))× its single-thread time, so k threads run it k/(1 + f·(k−1))× as fast. Used
    when the cluster's `parallel_overhead` is None (measured scalability). Hidden from
    schedulers, as a database does not know it either."""


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A query instance: a template at a scale factor arriving at a time, with its plan DAG."""

    query_id: int
    template: str
    query_class: str
    arrival_s: float
    pipelines: tuple[PipelineSpec, ...]
    scale_factor: float = 1.0
    priority: float = 1.0
    deadline_s: float | None = None
    """Relative deadline after arrival, if the workload sets one."""
    parameter_draw: int = -1
    """Which of its template's measured parameter draws this instance runs (-1: the default
    parameters): plain data the simulator ignores, which the real-engine runner submits."""
    origin: str = ""
    """Where a replayed query came from (`row 7: daily_sales`: the log's row and fingerprint;
    empty for a generated one): plain data the simulator ignores, which results carry so that
    they join back to the log."""

    @property
    def work_s(self) -> float:
        return sum(p.work_s for p in self.pipelines)

    @property
    def est_work_s(self) -> float:
        return sum(p.est_work_s for p in self.pipelines)

    @property
    def num_tasks(self) -> int:
        return sum(p.num_tasks for p in self.pipelines)


def validate_query(query: QuerySpec) -> None:
    """Reject a malformed plan early: parents must point backwards (a DAG in topological order)."""
    for position, pipeline in enumerate(query.pipelines):
        where = f"query {query.query_id} ({query.template}) pipeline {position}"
        if pipeline.index != position:
            raise ValueError(f"{where}: index {pipeline.index} must equal its position")
        if pipeline.num_tasks < 1:
            raise ValueError(f"{where}: num_tasks must be >= 1")
        if pipeline.work_s <= 0 or pipeline.est_work_s <= 0:
            raise ValueError(f"{where}: work_s and est_work_s must be > 0")
        if pipeline.memory_gb < 0:
            raise ValueError(f"{where}: memory_gb must be >= 0")
        if not 0.0 <= pipeline.serial_fraction <= 1.0:
            raise ValueError(f"{where}: serial_fraction must be within 0..1")
        for parent in pipeline.parents:
            if not 0 <= parent < position:
                raise ValueError(f"{where}: parent {parent} must be an earlier pipeline")
    if not query.pipelines:
        raise ValueError(f"query {query.query_id} ({query.template}) has no pipelines")
    if query.arrival_s < 0:
        raise ValueError(f"query {query.query_id}: arrival_s must be >= 0")
