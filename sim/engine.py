"""The discrete-event model: threads running the tasks of pipelines, driven by SimPy.

Control is inverted so that both a plain scheduler loop (`simulate`) and a Gymnasium
environment can drive it: `advance()` runs SimPy until the scheduler must decide and returns
the observation, `apply()` carries out a decision. A thread bound to a pipeline keeps taking
its tasks (morsels) until none are left or its limit shrinks, so the scheduler is asked only
at arrivals, pipeline ends, freed threads and repairs — never per task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import simpy
from simpy.events import NORMAL, Timeout

from sim.bounds import fluid_srpt_mean_latency_s, isolated_latency_s
from sim.budget import Budget, BudgetExceeded, check_size
from sim.interface import (
    CompletedQuery,
    Decision,
    Observation,
    PipelineRef,
    PipelineView,
    QueryView,
    Scheduler,
    query_view,
)
from sim.model import ClusterConfig, QuerySpec, validate_query
from sim.results import LowerBound, QueryRecord, SimResult, TaskTrace


class _Run:
    """Simulator-private state of one pipeline: its hidden task durations and pending tasks."""

    __slots__ = (
        "charged_gb",
        "cpu_s",
        "durations",
        "est_per_task_s",
        "lost",
        "overhead",
        "pending",
        "query",
        "threads_on",
        "view",
    )

    def __init__(
        self, view: PipelineView, query: QueryView, durations: list[float], overhead: float
    ) -> None:
        self.view = view
        self.query = query
        self.durations = durations
        self.overhead = overhead
        """Serial fraction f: a task with k threads on the pipeline takes (1 + f·(k−1))×."""
        self.est_per_task_s = view.est_work_s / view.num_tasks
        """The estimate's share of one task: the progress a finished task credits its query."""
        self.pending = list(range(len(durations) - 1, -1, -1))  # pop() yields task 0 first
        self.threads_on: list[int] = []
        self.charged_gb: list[float] = []
        self.lost: set[int] = set()
        self.cpu_s = 0.0
        """Thread-seconds its task attempts ran (lost ones too): the query log's CPU time."""


class _TaskDue:
    """A task's completion on SimPy's queue: the two fields `Environment.step` reads of an
    event, without a `Timeout`'s bookkeeping — one is made per task, the simulator's
    commonest object (the engine's tests pin the behaviour on the installed SimPy)."""

    __slots__ = ("_ok", "callbacks")

    def __init__(self, callback: Callable[[_TaskDue], None]) -> None:
        self.callbacks = [callback]
        self._ok = True


class _Thread:
    __slots__ = (
        "callback",
        "delay_s",
        "event",
        "held_s",
        "index",
        "last_pipeline",
        "last_query",
        "node",
        "run",
        "started_s",
        "task",
        "warm",
    )

    def __init__(self, index: int, node: int) -> None:
        self.index = index
        self.node = node
        self.run: _Run | None = None
        self.event: _TaskDue | None = None
        self.task = -1
        self.started_s = 0.0
        self.last_query = -1
        self.last_pipeline: _Run | None = None
        self.warm = False
        self.delay_s = 0.0
        """Moving delay owed by the next task after switching queries."""
        self.held_s = 0.0
        """The binding decision's delay (Decision.delay_s), owed by the next task."""
        self.callback = None


class Simulation:
    """One run of a workload on a cluster. Create, then alternate `advance()` and `apply()`."""

    def __init__(
        self,
        queries: Sequence[QuerySpec],
        cluster: ClusterConfig,
        rng: np.random.Generator,
        *,
        oracle: bool = False,
        record_tasks: bool = True,
        budget: Budget | None = None,
    ) -> None:
        for query in queries:
            validate_query(query)
        ids = [q.query_id for q in queries]
        if len(set(ids)) != len(ids):
            raise ValueError("query ids must be unique")
        self.cluster = cluster
        self.oracle = oracle
        self._specs = {q.query_id: q for q in queries}
        self._env = simpy.Environment()
        self._rng = rng
        self.budget = budget or Budget()
        check_size(queries, cluster, self.budget)  # before anything is drawn or allocated
        self._events = 0
        self._durations = _draw_durations(queries, cluster.task_skew, rng)

        # State read through Observation (see sim.interface.SimulationState).
        self.now_s = 0.0
        self.active_queries: dict[int, QueryView] = {}
        self.schedulable: dict[PipelineRef, PipelineView] = {}
        self.free_per_node = [cluster.threads_per_node] * cluster.nodes
        self._node_queries: list[dict[int, int]] | None = (
            [{} for _ in range(cluster.nodes)] if cluster.interference else None
        )
        """Threads bound per query on each node, kept only when interference is modelled."""
        self.free_threads = cluster.total_threads
        self.memory_used_gb = [0.0] * cluster.nodes
        self.node_up = [True] * cluster.nodes
        self.completed: list[CompletedQuery] = []
        self.arrivals_so_far = 0

        self._runs: dict[PipelineRef, _Run] = {}
        self._threads = [
            _Thread(n * cluster.threads_per_node + t, n)
            for n in range(cluster.nodes)
            for t in range(cluster.threads_per_node)
        ]
        self._free: dict[int, _Thread] = {}
        for thread in self._threads:
            thread.callback = partial(self._on_task_done, thread)
            self._free[thread.index] = thread
        self._dirty = False
        self._unfinished = len(queries)
        self._pending_arrivals = len(queries)
        self._running_tasks = 0
        self._decisions = 0
        self._record_tasks = record_tasks
        self._busy_s = 0.0
        self._trace: list[tuple[int, int, int, int, int, float, float]] = []
        self._lost: list[tuple[int, int, int, int, int, float, float]] = []
        self._reruns = 0
        self._first_start: dict[int, float] = {}
        self._finish: dict[int, float] = {}
        self.observation = Observation(self, cluster, oracle)

        for query in sorted(queries, key=lambda q: (q.arrival_s, q.query_id)):
            arrival = Timeout(self._env, query.arrival_s)
            arrival.callbacks.append(partial(self._on_arrival, query))
        if cluster.faults.enabled:
            for node in range(cluster.nodes):
                self._env.process(self._faults(node))

    # ----------------------------------------------------------------- driving
    def advance(self) -> Observation | None:
        """Run until the scheduler must decide (returns the observation) or all queries end."""
        env = self._env
        step = env.step
        # the budget's bounds and the event count as locals: this loop runs once per event
        max_events, max_time_s = self.budget.max_events, self.budget.max_sim_time_s
        events = self._events
        try:
            while True:
                if self._dirty and self.free_threads and self.schedulable:
                    # Settle everything that happens at this instant before asking.
                    now = env.now
                    if env.peek() > now:
                        self.now_s = now
                        return self.observation
                elif not self._unfinished:
                    self.now_s = env.now
                    return None
                events += 1
                if events > max_events or env.now > max_time_s:
                    self._events = events
                    raise self._over_budget()
                try:
                    step()
                except simpy.core.EmptySchedule:
                    raise RuntimeError("simulation stalled with unfinished queries") from None
        finally:
            self._events = events

    def _over_budget(self) -> BudgetExceeded:
        if self._events > self.budget.max_events:
            return BudgetExceeded(
                "max_events",
                f"the run passed {self.budget.max_events} simulated events at "
                f"{self._env.now:.6g} s with {self._unfinished} queries unfinished",
            )
        return BudgetExceeded(
            "max_sim_time_s",
            f"the run passed {self.budget.max_sim_time_s:g} simulated seconds with "
            f"{self._unfinished} queries unfinished",
        )

    def apply(self, decision: Decision) -> int:
        """Carry out a decision; returns the threads it bound. Invalid ones raise ValueError."""
        if not isinstance(decision, Decision):
            raise ValueError(
                f"the scheduler's decide() returned {decision!r}, not a sim.Decision "
                "(Decision(pipeline_ref, limit), or WAIT)"
            )
        self._decisions += 1
        if decision.pipeline is None:
            self._end_round()
            return 0
        ref = decision.pipeline
        view = self.schedulable.get(ref)
        if view is None:
            raise ValueError(self._why_not_schedulable(ref))
        limit = decision.limit
        if not isinstance(limit, _INTEGERS) or not 1 <= limit <= self.cluster.total_threads:
            raise ValueError(
                f"parallelism limit {limit!r} for pipeline {ref} is out of range "
                f"1..{self.cluster.total_threads}"
            )
        delay = decision.delay_s
        if delay and not _positive_seconds(delay):  # checked only when set: most carry none
            raise ValueError(f"decision delay {delay!r} for pipeline {ref} must be >= 0 s")
        view.limit = int(limit)
        run = self._runs[ref]
        want = min(view.limit - view.threads, len(run.pending))
        if want <= 0:
            self._end_round()
            return 0
        chosen = self._pick_threads(run, want)
        for thread in chosen:
            self._bind(thread, run)
            thread.held_s = delay
        self._recharge_memory(run)
        now = self._env.now
        for thread in chosen:
            self._start_task(thread, now)
        return len(chosen)

    def result(self, *, partial: bool = False) -> SimResult:
        """Metrics of the finished run.

        `partial=True` (a run cut short, e.g. an env episode truncated) reports the queries
        that finished and counts the others in `unfinished`; the lower bound then covers the
        finished queries only.
        """
        if self._unfinished and not partial:
            raise RuntimeError(f"{self._unfinished} queries have not finished")
        total_threads = self.cluster.total_threads
        records = []
        finished = {q: spec for q, spec in self._specs.items() if q in self._finish}
        for query_id, spec in sorted(finished.items()):
            isolated = isolated_latency_s(spec, self._durations[query_id], total_threads)
            finish = self._finish[query_id]
            latency = finish - spec.arrival_s
            records.append(
                QueryRecord(
                    query_id=query_id,
                    template=spec.template,
                    query_class=spec.query_class,
                    scale_factor=spec.scale_factor,
                    priority=spec.priority,
                    deadline_s=spec.deadline_s,
                    arrival_s=spec.arrival_s,
                    start_s=self._first_start[query_id],
                    finish_s=finish,
                    latency_s=latency,
                    isolated_s=isolated,
                    slowdown=latency / isolated,
                )
            )
        specs = list(finished.values())
        fluid = fluid_srpt_mean_latency_s(
            [q.arrival_s for q in specs],
            [sum(float(d.sum()) for d in self._durations[q.query_id]) for q in specs],
            total_threads,
        )
        mean_isolated = float(np.mean([r.isolated_s for r in records])) if records else 0.0
        return SimResult(
            cluster=self.cluster,
            queries=tuple(records),
            tasks=TaskTrace.from_rows(self._trace),
            lost_tasks=TaskTrace.from_rows(self._lost),
            rerun_tasks=self._reruns,
            decisions=self._decisions,
            busy_thread_s=self._busy_s,
            lower_bound=LowerBound(mean_isolated_s=mean_isolated, fluid_srpt_s=fluid),
            unfinished=len(self._specs) - len(finished),
        )

    # ------------------------------------------------------------- decisions
    def _end_round(self) -> None:
        if not self._running_tasks and not self._pending_arrivals and all(self.node_up):
            raise ValueError(
                "the scheduler left the whole cluster idle with no arrivals to come: "
                f"{self._unfinished} queries could never finish"
            )
        self._dirty = False

    def _why_not_schedulable(self, ref: object) -> str:
        if not (isinstance(ref, tuple) and len(ref) == 2):
            return f"decision names {ref!r}; expected a (query_id, pipeline_index) pair"
        query = self.active_queries.get(ref[0])
        if query is None:
            return f"pipeline {ref}: query {ref[0]} is not in the system"
        if not 0 <= ref[1] < len(query.pipelines):
            return f"pipeline {ref}: query {ref[0]} has no pipeline {ref[1]}"
        view = query.pipelines[ref[1]]
        if view.is_finished:
            return f"pipeline {ref} has already finished"
        if not view.is_ready:
            return f"pipeline {ref} is not ready: its parent pipelines have not finished"
        return f"pipeline {ref} has no tasks left to start"

    def _pick_threads(self, run: _Run, want: int) -> list[_Thread]:
        """Prefer threads already warm on this pipeline, then on this query, then roomy nodes."""
        query_id = run.view.query_id
        memory = self.memory_used_gb

        def preference(thread: _Thread) -> tuple[int, float, int]:
            affinity = 2 if thread.last_pipeline is run else int(thread.last_query == query_id)
            return (-affinity, memory[thread.node], thread.index)

        free = self._free.values()
        if want == 1 and free:  # the commonest grant; keys are unique, so min is sorted[0]
            return [min(free, key=preference)]
        if want >= len(self._free):
            return sorted(free, key=preference)
        return sorted(free, key=preference)[:want]

    # ------------------------------------------------------------- threads
    def _bind(self, thread: _Thread, run: _Run) -> None:
        del self._free[thread.index]
        self.free_per_node[thread.node] -= 1
        self.free_threads -= 1
        view = run.view
        view.threads += 1
        run.query.threads += 1
        run.threads_on[thread.node] += 1
        thread.run = run
        if self._node_queries is not None:
            bound = self._node_queries[thread.node]
            bound[view.query_id] = bound.get(view.query_id, 0) + 1
        thread.warm = thread.last_pipeline is run
        moved = thread.last_query not in (-1, view.query_id)
        thread.delay_s = self.cluster.moving_delay_s if moved else 0.0
        thread.last_query = view.query_id
        thread.last_pipeline = run

    def _release(self, thread: _Thread) -> None:
        run = thread.run
        assert run is not None
        run.view.threads -= 1
        run.query.threads -= 1
        run.threads_on[thread.node] -= 1
        if self._node_queries is not None:
            bound = self._node_queries[thread.node]
            query_id = run.view.query_id
            if bound[query_id] == 1:
                del bound[query_id]
            else:
                bound[query_id] -= 1
        thread.run = None
        thread.event = None
        if self.node_up[thread.node]:
            self._free[thread.index] = thread
            self.free_per_node[thread.node] += 1
            self.free_threads += 1
        self._recharge_memory(run)
        self._dirty = True

    def _recharge_memory(self, run: _Run) -> None:
        """A pipeline's footprint is split over the nodes its threads run on."""
        memory_gb = run.view.memory_gb
        if not memory_gb:
            return
        threads = run.view.threads
        used = self.memory_used_gb
        charged = run.charged_gb
        for node, count in enumerate(run.threads_on):
            if count:
                share = memory_gb * count / threads
            elif charged[node]:
                share = 0.0
            else:  # neither charged nor running there: nothing changes
                continue
            used[node] += share - charged[node]
            charged[node] = share

    def _start_task(self, thread: _Thread, now: float) -> None:
        run = thread.run
        assert run is not None
        view = run.view
        cluster = self.cluster
        task = run.pending.pop()
        if not run.pending:
            del self.schedulable[view.query_id, view.index]
        duration = run.durations[task]
        if view.threads > 1:
            duration *= 1.0 + run.overhead * (view.threads - 1)
        if self.memory_used_gb[thread.node] > cluster.memory_per_node_gb:
            duration *= cluster.spill_factor
        if self._node_queries is not None:
            duration *= 1.0 + cluster.interference * (len(self._node_queries[thread.node]) - 1)
        if not thread.warm:
            duration += cluster.warmup_s + thread.delay_s
            thread.delay_s = 0.0
            thread.warm = True
        if thread.held_s:
            duration += thread.held_s
            thread.held_s = 0.0
        query = run.query
        if query.started_s is None:  # its first task: none of the query's pipelines ran yet
            query.started_s = now
            self._first_start[view.query_id] = now
        view.tasks_running += 1
        self._running_tasks += 1
        thread.task = task
        thread.started_s = now
        event = _TaskDue(thread.callback)
        self._env.schedule(event, NORMAL, duration)  # type: ignore[arg-type]
        thread.event = event

    def _on_task_done(self, thread: _Thread, event: _TaskDue) -> None:
        if event is not thread.event:  # lost to a node failure
            return
        run = thread.run
        assert run is not None
        view = run.view
        now = self._env.now
        self._busy_s += now - thread.started_s
        run.cpu_s += now - thread.started_s
        if self._record_tasks:
            row = (view.query_id, view.index, thread.task, thread.node, thread.index)
            self._trace.append((*row, thread.started_s, now))
        if run.lost and thread.task in run.lost:
            self._reruns += 1
        view.tasks_done += 1
        view.tasks_running -= 1
        self._running_tasks -= 1
        query = run.query
        query._done_tasks += 1
        query._est_done_s += run.est_per_task_s
        if run.pending and view.threads <= view.limit:
            self._start_task(thread, now)
            return
        self._release(thread)
        if view.tasks_done == view.num_tasks:
            self._finish_pipeline(run)

    # ------------------------------------------------------------- queries
    def _on_arrival(self, spec: QuerySpec, _event: object) -> None:
        query = query_view(spec, self.oracle)
        views = query.pipelines
        nodes = self.cluster.nodes
        uniform = self.cluster.parallel_overhead
        for view, durations in zip(views, self._durations[spec.query_id], strict=True):
            overhead = spec.pipelines[view.index].serial_fraction if uniform is None else uniform
            run = _Run(view, query, durations.tolist(), overhead)
            run.threads_on = [0] * nodes
            run.charged_gb = [0.0] * nodes
            self._runs[view.query_id, view.index] = run
            if view.is_ready:
                self.schedulable[view.query_id, view.index] = view
        self.active_queries[spec.query_id] = query
        self.arrivals_so_far += 1
        self._pending_arrivals -= 1
        self._dirty = True

    def _finish_pipeline(self, run: _Run) -> None:
        view = run.view
        view.is_finished = True
        query = run.query
        pipelines = query.pipelines
        for child_index in view.children:
            child = pipelines[child_index]
            if all(pipelines[p].is_finished for p in child.parents):
                child.is_ready = True
                self.schedulable[child.query_id, child.index] = child
        if all(p.is_finished for p in pipelines):
            now = self._env.now
            del self.active_queries[query.query_id]
            cpu_s = 0.0
            for p in pipelines:
                cpu_s += self._runs.pop((p.query_id, p.index)).cpu_s
            self._finish[query.query_id] = now
            self.completed.append(
                CompletedQuery(
                    query.query_id,
                    query.template,
                    query.query_class,
                    query.scale_factor,
                    query.arrival_s,
                    now,
                    query.est_work_s,
                    cpu_s,
                )
            )
            self._unfinished -= 1

    # ------------------------------------------------------------- faults
    def _faults(self, node: int):
        faults = self.cluster.faults
        while True:
            yield self._env.timeout(self._rng.exponential(faults.mean_time_between_failures_s))
            self._fail(node)
            yield self._env.timeout(faults.repair_time_s)
            self._repair(node)

    def _fail(self, node: int) -> None:
        """Lose every task running on the node; they return to their pipelines to re-run."""
        self.node_up[node] = False
        now = self._env.now
        for thread in self._threads:
            if thread.node != node:
                continue
            if thread.index in self._free:
                del self._free[thread.index]
                self.free_threads -= 1
            run = thread.run
            if run is not None:
                view = run.view
                self._busy_s += now - thread.started_s
                run.cpu_s += now - thread.started_s
                row = (view.query_id, view.index, thread.task, node, thread.index)
                self._lost.append((*row, thread.started_s, now))
                run.lost.add(thread.task)
                run.pending.append(thread.task)
                view.tasks_running -= 1
                self._running_tasks -= 1
                if view.is_ready:
                    self.schedulable[view.query_id, view.index] = view
                self._release(thread)
            thread.last_pipeline = None
            thread.last_query = -1
        self.free_per_node[node] = 0

    def _repair(self, node: int) -> None:
        self.node_up[node] = True
        for thread in self._threads:
            if thread.node == node:
                self._free[thread.index] = thread
        self.free_per_node[node] = self.cluster.threads_per_node
        self.free_threads += self.cluster.threads_per_node
        self._dirty = True


def _draw_durations(
    queries: Sequence[QuerySpec], skew: float, rng: np.random.Generator
) -> dict[int, list[np.ndarray]]:
    """Hidden per-task durations, gamma around each pipeline's mean, rescaled to its true work.

    Drawn once, before any scheduling, in query-id order, so every scheduler faces the same tasks.
    """
    ordered = sorted(queries, key=lambda q: q.query_id)
    counts = np.array([p.num_tasks for q in ordered for p in q.pipelines], dtype=np.int64)
    works = np.array([p.work_s for q in ordered for p in q.pipelines], dtype=float)
    total = int(counts.sum())
    if skew > 0 and total:
        shape = 1.0 / (skew * skew)
        raw = rng.standard_gamma(shape, size=total)
    else:
        raw = np.ones(total)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if total else np.zeros(0, np.int64)
    sums = np.add.reduceat(raw, starts) if total else np.zeros(0)
    scaled = raw * np.repeat(works / sums, counts)
    durations: dict[int, list[np.ndarray]] = {}
    position = 0
    for query in ordered:
        per_pipeline = []
        for pipeline in query.pipelines:
            per_pipeline.append(scaled[position : position + pipeline.num_tasks])
            position += pipeline.num_tasks
        durations[query.query_id] = per_pipeline
    return durations


_INTEGERS = (int, np.integer)
"""What a decision's limit may be (a tuple: `int | np.integer` would build a union per call)."""


def _positive_seconds(value: object) -> bool:
    """A finite number of seconds above 0 (not a bool)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and 0 < value < math.inf


def simulate(
    queries: Sequence[QuerySpec],
    cluster: ClusterConfig,
    scheduler: Scheduler,
    rng: np.random.Generator,
    *,
    oracle: bool = False,
    record_tasks: bool = True,
    budget: Budget | None = None,
) -> SimResult:
    """Run a workload to completion under a scheduler (without a task trace if not recorded);
    `budget` (default: sim.budget.Budget()) bounds its size, before and while it runs."""
    simulation = Simulation(
        queries, cluster, rng, oracle=oracle, record_tasks=record_tasks, budget=budget
    )
    scheduler.reset(cluster)
    observation = simulation.advance()
    while observation is not None:
        simulation.apply(scheduler.decide(observation))
        observation = simulation.advance()
    return simulation.result()
