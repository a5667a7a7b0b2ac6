"""Plain data the simulator is built from: the cluster, queries and their pipelines.

Everything here is frozen: a workload generator produces these once, and every scheduler
run on the same seed reads the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
        checks = {
            "nodes": self.nodes >= 1,
            "threads_per_node": self.threads_per_node >= 1,
            "memory_per_node_gb": self.memory_per_node_gb > 0,
            "moving_delay_s": self.moving_delay_s >= 0,
            "warmup_s": self.warmup_s >= 0,
            "parallel_overhead": self.parallel_overhead is None or self.parallel_overhead >= 0,
            "spill_factor": self.spill_factor >= 1,
            "task_skew": self.task_skew >= 0,
            "interference": self.interference >= 0,
            "faults.mean_time_between_failures_s": self.faults.mean_time_between_failures_s >= 0,
            "faults.repair_time_s": self.faults.repair_time_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid cluster setting(s): {', '.join(bad)}")

    @property
    def total_threads(self) -> int:
        return self.nodes * self.threads_per_node


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
