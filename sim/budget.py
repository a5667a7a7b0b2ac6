"""The simulation budget: how much one run may cost before it is refused or stopped.

Every bound is a knob (a scenario's `simulation.budget:` section) whose default is far above
every bundled scenario (the largest: etl-memory's 194,000 events and 12,332 tasks in one
query; diurnal-mixed's 464 queries and 3,577 simulated seconds; 32 threads). `check_size`
refuses a run from its expected size before anything is drawn (so a file whose run would
exhaust memory or never end fails at once, naming the knob), and `Simulation` enforces the
event and simulated-time bounds while it runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from sim.model import ClusterConfig, QuerySpec

MAX_ATTEMPT_EXPONENT = 50.0
"""exp() of a larger value is infinite for every purpose here (expected attempts of a task
that outlasts its node's up-time)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Upper bounds on one simulation run."""

    max_events: int = 20_000_000
    """Simulated events (task ends, arrivals, failures, repairs): about 100 times the largest
    bundled run, a few minutes of simulation and a few GB of task durations at most."""
    max_sim_time_s: float = 1e7
    """Simulated seconds (about 116 days; the longest bundled run is about an hour)."""
    max_queries: int = 20_000
    """Queries in one workload draw (bundled: at most 464)."""
    max_threads: int = 4_096
    """nodes × threads_per_node (bundled: at most 32)."""
    max_tasks_per_query: int = 1_000_000
    """Tasks (morsels) of one query (bundled: at most 12,332)."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"budget {item.name}: must be a number > 0, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"budget {item.name}: must be finite, got {value!r}")


class BudgetExceeded(ValueError):
    """A run that would exceed (or exceeded) its budget; `knob` names the bound to raise."""

    def __init__(self, knob: str, problem: str) -> None:
        self.knob = knob
        self.problem = problem
        super().__init__(f"{problem} (budget {knob}; raise it if the run is meant to be this big)")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.knob, self.problem)


def check_size(queries: Sequence[QuerySpec], cluster: ClusterConfig, budget: Budget) -> None:
    """Refuse a run whose expected size exceeds the budget, before any duration is drawn.

    Expected events are the tasks times their expected attempts (a task of duration d on a
    node failing every m seconds on average survives with probability exp(-d/m)) plus two
    per node failure; the expected horizon is the last arrival plus the work spread over the
    threads that are up. Both ignore overheads, so they under-estimate: a run that passes can
    still stop at the bound while running.
    """
    threads = cluster.total_threads
    if threads > budget.max_threads:
        raise BudgetExceeded(
            "max_threads",
            f"{cluster.nodes} nodes × {cluster.threads_per_node} threads = {threads} threads, "
            f"more than {budget.max_threads}",
        )
    if len(queries) > budget.max_queries:
        raise BudgetExceeded(
            "max_queries", f"{len(queries)} queries, more than {budget.max_queries}"
        )
    faults = cluster.faults
    mtbf = faults.mean_time_between_failures_s if faults.enabled else math.inf
    availability = mtbf / (mtbf + faults.repair_time_s) if faults.enabled else 1.0
    events = float(len(queries))
    work_s = 0.0
    last_arrival_s = 0.0
    for query in queries:
        tasks = query.num_tasks
        if tasks > budget.max_tasks_per_query:
            raise BudgetExceeded(
                "max_tasks_per_query",
                f"query {query.query_id} ({query.template} at scale factor "
                f"{query.scale_factor:g}) has {tasks} tasks, more than "
                f"{budget.max_tasks_per_query}",
            )
        last_arrival_s = max(last_arrival_s, query.arrival_s)
        for pipeline in query.pipelines:
            task_s = pipeline.work_s / pipeline.num_tasks
            attempts = math.exp(min(task_s / mtbf, MAX_ATTEMPT_EXPONENT))
            events += pipeline.num_tasks * attempts
            work_s += pipeline.work_s * attempts
    if not math.isfinite(work_s):
        raise BudgetExceeded("max_sim_time_s", "the workload's total work is not finite")
    horizon_s = last_arrival_s + work_s / (threads * availability)
    if horizon_s > budget.max_sim_time_s:
        raise BudgetExceeded(
            "max_sim_time_s",
            f"the run would last at least {horizon_s:.3g} simulated seconds, more than "
            f"{budget.max_sim_time_s:g}",
        )
    if faults.enabled:
        events += 2 * cluster.nodes * horizon_s / (mtbf + faults.repair_time_s)
    if events > budget.max_events:
        raise BudgetExceeded(
            "max_events",
            f"the run would take about {events:.3g} simulated events, more than "
            f"{budget.max_events}",
        )
