"""What a simulation reports: per-query records, the task trace, and summary metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.model import ClusterConfig

TASK_COLUMNS = ("query_id", "pipeline", "task", "node", "thread", "start_s", "end_s")


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One query's life: when it arrived, first ran, finished; slowdown against running alone."""

    query_id: int
    template: str
    query_class: str
    scale_factor: float
    priority: float
    deadline_s: float | None
    arrival_s: float
    start_s: float
    finish_s: float
    latency_s: float
    isolated_s: float
    """Latency of the query alone on the cluster, a lower bound: its critical path, or its
    whole work over every thread when that is longer (sim.bounds.isolated_latency_s)."""
    slowdown: float


@dataclass(frozen=True, slots=True)
class TaskTrace:
    """Column arrays of task executions (one row per task run, or per lost attempt)."""

    query_id: np.ndarray
    pipeline: np.ndarray
    task: np.ndarray
    node: np.ndarray
    thread: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, int, int, int, int, float, float]]) -> TaskTrace:
        if not rows:
            ints = np.zeros(0, dtype=np.int64)
            return cls(ints, ints, ints, ints, ints, np.zeros(0), np.zeros(0))
        table = np.array(rows, dtype=float)
        ints = table[:, :5].astype(np.int64)
        return cls(*(ints[:, i] for i in range(5)), table[:, 5].copy(), table[:, 6].copy())

    def __len__(self) -> int:
        return len(self.query_id)


@dataclass(frozen=True, slots=True)
class LowerBound:
    """No schedule's mean latency can be below `mean_latency_s` (overheads ignored)."""

    mean_isolated_s: float
    fluid_srpt_s: float

    @property
    def mean_latency_s(self) -> float:
        return max(self.mean_isolated_s, self.fluid_srpt_s)


@dataclass(frozen=True, slots=True)
class SimResult:
    cluster: ClusterConfig
    queries: tuple[QueryRecord, ...]
    tasks: TaskTrace
    lost_tasks: TaskTrace
    """Task attempts cut short by node failures; each was re-run."""
    rerun_tasks: int
    decisions: int
    busy_thread_s: float
    """Thread-seconds spent on tasks, lost attempts included."""
    lower_bound: LowerBound
    unfinished: int = 0
    """Queries that had not finished when a partial result was taken (0 for a full run)."""

    def latencies_s(self) -> np.ndarray:
        return np.array([q.latency_s for q in self.queries])

    @property
    def mean_latency_s(self) -> float:
        return float(self.latencies_s().mean()) if self.queries else 0.0

    def latency_percentile_s(self, percent: float) -> float:
        return float(np.percentile(self.latencies_s(), percent)) if self.queries else 0.0

    @property
    def missed_deadlines(self) -> float | None:
        """The share of the queries with a deadline that finished after it (None: no query
        has one)."""
        due = [q for q in self.queries if q.deadline_s is not None]
        if not due:
            return None
        return sum(q.latency_s > q.deadline_s for q in due) / len(due)

    @property
    def mean_slowdown(self) -> float:
        return float(np.mean([q.slowdown for q in self.queries])) if self.queries else 0.0

    @property
    def makespan_s(self) -> float:
        """From the first arrival to the last finish."""
        if not self.queries:
            return 0.0
        return max(q.finish_s for q in self.queries) - min(q.arrival_s for q in self.queries)

    @property
    def utilization(self) -> float:
        """Busy thread-time (lost attempts included) over all thread-time in the makespan."""
        span = self.makespan_s
        if span <= 0:
            return 0.0
        return self.busy_thread_s / (span * self.cluster.total_threads)

    def utilization_over_time(self, bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """(bin start times, busy fraction of all threads in each bin)."""
        if not len(self.tasks):
            return np.zeros(0), np.zeros(0)
        t0 = min(q.arrival_s for q in self.queries)
        t1 = max(q.finish_s for q in self.queries)
        edges = np.linspace(t0, t1, bins + 1)
        busy = np.zeros(bins)
        width = edges[1] - edges[0]
        for start, end in zip(self.tasks.start_s, self.tasks.end_s, strict=True):
            lo = np.clip((start - t0) / width, 0, bins)
            hi = np.clip((end - t0) / width, 0, bins)
            first, last = int(lo), min(int(hi), bins - 1)
            if first == last or first >= bins:
                busy[min(first, bins - 1)] += hi - lo
                continue
            busy[first] += first + 1 - lo
            busy[first + 1 : last] += 1
            busy[last] += hi - last
        return edges[:-1], busy / self.cluster.total_threads
