"""Observation features: one fixed-shape, padded encoding of an `Observation`.

The Gymnasium environment and the learned policy both encode through `encode`, so a policy
trained in the environment reads exactly what it will read when it schedules. Rows are the
queries in the system in arrival order (row r is the r-th oldest query); columns are a query's
pipelines in plan order. Padding is zero and every padded axis has a validity mask.

Workload awareness comes from `FeatureState`: it remembers, for one episode, when each
template arrived (a sliding window) and how long its finished instances took (read from
`obs.completed`, the query log), so a query carries "how often did my template arrive lately"
and "how long did my template's past instances take".

Encoding is incremental: static per-query data (plan, estimates, DAG) is written once when a
query first appears and shifted when queries leave; per-pipeline counters are re-read only for
queries whose progress or thread count changed since the last call, and within those only for
their frontier (ready, unfinished pipelines). Without node failures a query's pipelines cannot
change without one of those two changing; with failures every query is re-checked. A call takes
about 50-70 µs with 50 queries of 10 pipelines all running on one core.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

import numpy as np

from sim.interface import Observation, QueryView
from sim.operators import OPERATORS as VOCABULARY

FEATURE_SCHEMA_VERSION = 1
"""Bumped whenever a feature is added, removed, reordered or rescaled; checkpoints record it."""

PIPELINE_FEATURES: tuple[str, ...] = (
    "est_remaining_work",  # estimated thread-seconds left / work_scale_s
    "est_work",  # estimated total thread-seconds / work_scale_s
    "tasks_left",  # tasks not yet started / tasks_scale
    "tasks_running",  # / tasks_scale
    "num_tasks",  # / tasks_scale
    "progress",  # tasks done / tasks
    "threads",  # threads bound / cluster threads
    "ready",  # 1: parents finished and not finished itself
    "running",  # 1: at least one thread bound
    "finished",  # 1: every task done
    "depth",  # pipelines on the longest path to the result / depth_scale
    "memory",  # memory_gb / memory per node
)
"""Columns of `pipelines[q, p, :]`."""

QUERY_FEATURES: tuple[str, ...] = (
    "age",  # (now - arrival) / time_scale_s
    "est_remaining_work",  # / work_scale_s
    "est_work",  # / work_scale_s
    "progress",  # tasks done / tasks
    "threads",  # threads bound / cluster threads
    "priority",  # as given by the workload
    "scale_factor",  # / scale_factor_scale
    "has_deadline",  # 1 when the query has a deadline
    "deadline_slack",  # (arrival + deadline - now) / time_scale_s; 0 without a deadline
    "num_pipelines",  # / limits.max_pipelines_per_query
    "template_recent_arrivals",  # arrivals of its template in the last window_s / count_scale
    "template_completed",  # finished instances of its template so far / count_scale
    "template_mean_latency",  # their mean latency / time_scale_s; 0 before the first one
    "age_over_template_latency",  # age / that mean latency; 0 before the first one
)
"""Columns of `queries[q, :]`."""

GLOBAL_FEATURES: tuple[str, ...] = (
    "free_threads",  # / cluster threads
    "memory_used",  # used / cluster memory
    "nodes_up",  # fraction of nodes up
    "queries_in_system",  # / limits.max_queries
    "arrival_rate",  # arrivals in the last window_s / window_s × time_scale_s
    "time_of_day_sin",  # sin(2π now / day_s)
    "time_of_day_cos",  # cos(2π now / day_s)
)
"""Entries of `global`."""

OPERATORS: tuple[str, ...] = (
    "other",
    "hash_build",
    "aggregate",
    "sort",
    "cte",
    "window",
    "result",
    "union",
    "limit",
)
"""`operator[q, p]` is the index of the pipeline's breaker here; unknown names map to "other".

The learned policy's fixed encoding (part of FEATURE_SCHEMA_VERSION), not the vocabulary: that
is sim.operators.OPERATORS. The names it has no slot for are UNENCODED_OPERATORS."""
UNENCODED_OPERATORS = frozenset(VOCABULARY - set(OPERATORS))
"""Breakers of the vocabulary that encode as "other" in this schema (top_n, join_build,
delim_join: 11% of bundled pipelines); a slot for them needs the next schema version and a
retrained policy."""

_OPERATOR_ID = {name: index for index, name in enumerate(OPERATORS)}
_P = {name: index for index, name in enumerate(PIPELINE_FEATURES)}
_Q = {name: index for index, name in enumerate(QUERY_FEATURES)}
_G = {name: index for index, name in enumerate(GLOBAL_FEATURES)}
_SIGNATURE = attrgetter("progress", "threads")
_PIPELINE_COUNTERS = attrgetter("tasks_done", "tasks_running", "threads", "is_ready", "is_finished")


class Limits(Protocol):
    """The padded sizes (a scenario's `env:` section, `lsched.scenario.EnvLimits`)."""

    max_queries: int
    max_pipelines_per_query: int


class FeatureLimitError(ValueError):
    """The workload outgrew a padded size; names the scenario knob to raise."""

    def __init__(self, knob: str, problem: str) -> None:
        self.knob = knob
        self.problem = problem
        super().__init__(f"{knob}: {problem}")


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Normalisation scales and windows: each feature is divided by its scale to sit near [0, 1]."""

    work_scale_s: float = 100.0
    """Thread-seconds of estimated work that encode as 1.0."""
    time_scale_s: float = 60.0
    """Seconds (age, latency, slack) that encode as 1.0."""
    tasks_scale: float = 100.0
    """Task counts that encode as 1.0."""
    depth_scale: float = 10.0
    """Plan depth (pipelines to the result) that encodes as 1.0."""
    scale_factor_scale: float = 10.0
    """Query scale factor that encodes as 1.0."""
    count_scale: float = 10.0
    """Template arrival and completion counts that encode as 1.0."""
    window_s: float = 600.0
    """Sliding window of the arrival-rate and template-recurrence estimates."""
    day_s: float = 86_400.0
    """Period of the time-of-day features (simulated time 0 is midnight)."""
    query_classes: tuple[str, ...] = ()
    """Vocabulary of `query_class`: class i encodes as i + 1; unknown classes as 0."""

    def __post_init__(self) -> None:
        for name in (
            "work_scale_s",
            "time_scale_s",
            "tasks_scale",
            "depth_scale",
            "scale_factor_scale",
            "count_scale",
            "window_s",
            "day_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"FeatureConfig.{name} must be > 0 (got {getattr(self, name)!r})")


class FeatureState:
    """Preallocated buffers and one episode's history; `reset()` before every episode.

    `encode` returns these buffers themselves: they are valid until the next `encode` or
    `reset`; copy what you keep.
    """

    def __init__(self, limits: Limits, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.max_queries = nq = int(limits.max_queries)
        self.max_pipelines = npp = int(limits.max_pipelines_per_query)
        if nq < 1 or npp < 1:
            raise ValueError("limits.max_queries and limits.max_pipelines_per_query must be >= 1")
        self._class_id = {name: i + 1 for i, name in enumerate(self.config.query_classes)}

        # What `encode` returns (see `observation_shapes`).
        self.pipelines = np.zeros((nq, npp, len(PIPELINE_FEATURES)), np.float32)
        self.queries = np.zeros((nq, len(QUERY_FEATURES)), np.float32)
        self.globals = np.zeros(len(GLOBAL_FEATURES), np.float32)
        self.pipeline_mask = np.zeros((nq, npp), bool)
        self.query_mask = np.zeros(nq, bool)
        self.schedulable = np.zeros((nq, npp), bool)
        self.adjacency = np.zeros((nq, npp, npp), bool)
        self.operator = np.zeros((nq, npp), np.int32)
        self.query_class = np.zeros(nq, np.int32)
        self.query_ids = np.full(nq, -1, np.int64)
        """Query id of each row (-1: empty)."""
        self.arrival_s = np.zeros(nq)
        """Arrival time of each row's query (0: empty)."""

        # Static per-row data, written on arrival and shifted on departure.
        self._num_tasks = np.zeros((nq, npp))
        self._inv_tasks = np.zeros((nq, npp))  # 1 / num_tasks (0 in padding)
        self._work_per_task = np.zeros((nq, npp))  # est_work / num_tasks / work_scale_s
        self._inv_total_tasks = np.zeros(nq)
        self._deadline_at_s = np.zeros(nq)
        self._has_deadline = np.zeros(nq)
        self._template = np.zeros(nq, np.int64)
        self._inv_template_latency = np.zeros(nq)  # 1 / mean latency of the template's past
        # Per-pipeline counters: tasks done, tasks running, threads, ready, finished.
        self._counters = np.zeros((nq, npp, 5))
        self._rows = (
            self.pipelines,
            self.queries,
            self.pipeline_mask,
            self.schedulable,
            self.adjacency,
            self.operator,
            self.query_class,
            self.query_ids,
            self.arrival_s,
            self._num_tasks,
            self._inv_tasks,
            self._work_per_task,
            self._inv_total_tasks,
            self._deadline_at_s,
            self._has_deadline,
            self._template,
            self._inv_template_latency,
            self._counters,
        )
        self.reset()

    def reset(self) -> None:
        """Forget the episode: rows, template history and the arrival window."""
        for array in self._rows:
            array[...] = 0
        self.query_ids[...] = -1
        self.globals[...] = 0
        self.query_mask[...] = False
        self._ids: list[int] = []
        self._sizes: list[int] = []  # pipelines of each row's query
        self._frontier: list[list[int]] = []  # per row: its ready, unfinished pipelines
        self._width = 0  # the most pipelines of any query in the system
        self._signatures: list[tuple[float, int]] = []
        self._deadlines = 0
        self.num_queries = 0
        self._template_ids: dict[str, int] = {}
        self._recent_arrivals = np.zeros(16)
        self._completed_count = np.zeros(16)
        self._latency_sum_s = np.zeros(16)
        self._window: deque[tuple[float, int]] = deque()  # (arrival_s, template), oldest first
        self._counted: set[int] = set()  # queries whose arrival the window has counted
        self._seen_completed = 0
        self._history_changed = True

    # ----------------------------------------------------------------- history
    def template_id(self, template: str) -> int:
        """This episode's index of a template (assigned on first sight)."""
        index = self._template_ids.get(template)
        if index is None:
            index = self._template_ids[template] = len(self._template_ids)
            if index >= len(self._recent_arrivals):
                grow = len(self._recent_arrivals)
                self._recent_arrivals = np.concatenate([self._recent_arrivals, np.zeros(grow)])
                self._completed_count = np.concatenate([self._completed_count, np.zeros(grow)])
                self._latency_sum_s = np.concatenate([self._latency_sum_s, np.zeros(grow)])
        return index

    def template_stats(self, template: str) -> tuple[int, int, float]:
        """(arrivals in the window, finished instances, their mean latency in s) as last encoded."""
        index = self._template_ids.get(template)
        if index is None:
            return (0, 0, 0.0)
        count = int(self._completed_count[index])
        mean = float(self._latency_sum_s[index] / count) if count else 0.0
        return (int(self._recent_arrivals[index]), count, mean)

    @property
    def recent_arrivals(self) -> int:
        """Arrivals in the window, as last encoded."""
        return len(self._window)

    @property
    def row_ids(self) -> list[int]:
        """Query id of each occupied row, oldest first (row r holds row_ids[r])."""
        return self._ids

    def _record_history(self, obs: Observation, now_s: float) -> None:
        completed = obs.completed
        if len(completed) > self._seen_completed:
            for record in completed[self._seen_completed :]:
                index = self.template_id(record.template)
                self._completed_count[index] += 1
                self._latency_sum_s[index] += record.finish_s - record.arrival_s
            self._seen_completed = len(completed)
            self._history_changed = True
        window = self._window
        horizon_s = now_s - self.config.window_s
        while window and window[0][0] <= horizon_s:
            self._recent_arrivals[window.popleft()[1]] -= 1
            self._history_changed = True


def observation_shapes(limits: Limits) -> dict[str, tuple[int, ...]]:
    """Shape of every array `encode` returns, for building observation spaces."""
    nq, npp = int(limits.max_queries), int(limits.max_pipelines_per_query)
    return {
        "pipelines": (nq, npp, len(PIPELINE_FEATURES)),
        "pipeline_mask": (nq, npp),
        "schedulable": (nq, npp),
        "adjacency": (nq, npp, npp),
        "operator": (nq, npp),
        "queries": (nq, len(QUERY_FEATURES)),
        "query_mask": (nq,),
        "query_class": (nq,),
        "global": (len(GLOBAL_FEATURES),),
    }


def encode(obs: Observation, limits: Limits, state: FeatureState) -> dict[str, np.ndarray]:
    """The padded arrays of `obs` (see `observation_shapes`); they are `state`'s own buffers.

    - pipelines[q, p, :] (float32): PIPELINE_FEATURES of pipeline p of the q-th oldest query.
    - pipeline_mask[q, p]: the pipeline exists. schedulable[q, p]: a legal decision target.
    - adjacency[q, i, j]: pipeline j is a parent of pipeline i (j must finish before i starts).
    - operator[q, p] (int32): index in OPERATORS. query_class[q] (int32): see FeatureConfig.
    - queries[q, :] (float32): QUERY_FEATURES. query_mask[q]: the row holds a query.
    - global (float32): GLOBAL_FEATURES.

    Raises FeatureLimitError when the queries in the system or a plan exceed `limits`.
    """
    if limits.max_queries != state.max_queries or (
        limits.max_pipelines_per_query != state.max_pipelines
    ):
        raise ValueError("encode: limits differ from those the FeatureState was built with")
    cluster = obs.cluster
    now_s = obs.now_s
    views = list(obs.queries)
    count = len(views)
    if count > state.max_queries:
        raise FeatureLimitError(
            "env.max_queries",
            f"{count} queries are in the system at t={now_s:.3f}s but the observation holds "
            f"{state.max_queries}; raise env.max_queries in the scenario",
        )
    ids = [view.query_id for view in views]
    if ids != state._ids:
        _restructure(state, views, ids, now_s, 1.0 / cluster.memory_per_node_gb)
    state._record_history(obs, now_s)

    signatures = list(map(_SIGNATURE, views))
    if cluster.faults.enabled:  # a failure moves counters without moving the signature
        changed: Sequence[int] = range(count)
    else:
        old = state._signatures
        changed = [row for row in range(count) if signatures[row] != old[row]]
    state._signatures = signatures
    per_thread = 1.0 / cluster.total_threads
    if changed:
        _read_counters(state, views, changed)
        _pipeline_dynamics(state, changed[0], changed[-1] + 1, per_thread)
    if state._history_changed:
        _template_features(state, count)
    _query_features(state, count, now_s)
    _global_features(state, obs, count, now_s)
    return {
        "pipelines": state.pipelines,
        "pipeline_mask": state.pipeline_mask,
        "schedulable": state.schedulable,
        "adjacency": state.adjacency,
        "operator": state.operator,
        "queries": state.queries,
        "query_mask": state.query_mask,
        "query_class": state.query_class,
        "global": state.globals,
    }


# --------------------------------------------------------------------------- internals
def _restructure(
    state: FeatureState, views: list[QueryView], ids: list[int], now_s: float, memory_scale: float
) -> None:
    """Drop rows of finished queries (keeping arrival order) and write rows of new ones."""
    old_ids = state._ids
    old_count = len(old_ids)
    present = set(ids)
    keep = [row for row, query_id in enumerate(old_ids) if query_id in present]
    kept = len(keep)
    if [old_ids[row] for row in keep] != ids[:kept]:
        keep, kept = [], 0  # not the arrival-ordered prefix we rely on: rebuild every row
    if kept < old_count:
        first = next((row for row, old in enumerate(keep) if row != old), kept)
        if first < kept:
            index = np.asarray(keep[first:])
            for array in state._rows:
                array[first:kept] = array[index]
        for array in state._rows:
            array[kept:old_count] = 0
        state.query_ids[kept:old_count] = -1
    signatures = [state._signatures[row] for row in keep]
    sizes = [state._sizes[row] for row in keep]
    frontier = [state._frontier[row] for row in keep]
    for row in range(kept, len(views)):
        _write_static(state, row, views[row], now_s, memory_scale)
        signatures.append((-1.0, -1))  # never equal: the counters get read this encode
        sizes.append(len(views[row].pipelines))
        frontier.append(list(range(sizes[-1])))  # read every pipeline once
    state._signatures = signatures
    state._sizes = sizes
    state._frontier = frontier
    state._width = max(sizes, default=0)
    state._ids = ids
    state.num_queries = len(views)
    state.query_mask[: len(views)] = True
    state.query_mask[len(views) :] = False
    state._deadlines = int(np.count_nonzero(state._has_deadline[: len(views)]))


def _write_static(
    state: FeatureState, row: int, query: QueryView, now_s: float, memory_scale: float
) -> None:
    """A new query's plan and estimates; also counts its arrival in the recurrence window."""
    pipelines = query.pipelines
    size = len(pipelines)
    if size > state.max_pipelines:
        raise FeatureLimitError(
            "env.max_pipelines_per_query",
            f"query {query.query_id} ({query.template}) has {size} pipelines but the "
            f"observation holds {state.max_pipelines}; raise env.max_pipelines_per_query",
        )
    config = state.config
    num_tasks = np.asarray([p.num_tasks for p in pipelines], dtype=float)
    est_work_s = np.asarray([p.est_work_s for p in pipelines])
    features = state.pipelines[row]
    features[:size, _P["est_work"]] = est_work_s / config.work_scale_s
    features[:size, _P["num_tasks"]] = num_tasks / config.tasks_scale
    features[:size, _P["depth"]] = np.asarray([p.depth for p in pipelines]) / config.depth_scale
    features[:size, _P["memory"]] = np.asarray([p.memory_gb for p in pipelines]) * memory_scale
    state._num_tasks[row, :size] = num_tasks
    state._inv_tasks[row, :size] = 1.0 / num_tasks
    state._work_per_task[row, :size] = est_work_s / num_tasks / config.work_scale_s
    state._inv_total_tasks[row] = 1.0 / num_tasks.sum()
    state.pipeline_mask[row, :size] = True
    operator_ids = _OPERATOR_ID
    state.operator[row, :size] = [operator_ids.get(p.operator, 0) for p in pipelines]
    adjacency = state.adjacency[row]
    for pipeline in pipelines:
        if pipeline.parents:
            adjacency[pipeline.index, list(pipeline.parents)] = True

    state.query_ids[row] = query.query_id
    state.arrival_s[row] = query.arrival_s
    state.query_class[row] = state._class_id.get(query.query_class, 0)
    if query.deadline_s is not None:
        state._has_deadline[row] = 1.0
        state._deadline_at_s[row] = query.arrival_s + query.deadline_s
    template = state.template_id(query.template)
    state._template[row] = template
    if query.query_id not in state._counted and query.arrival_s > now_s - config.window_s:
        state._counted.add(query.query_id)
        state._window.append((query.arrival_s, template))
        state._recent_arrivals[template] += 1
    state._history_changed = True
    static = state.queries[row]
    static[_Q["est_work"]] = query.est_work_s / config.work_scale_s
    static[_Q["priority"]] = query.priority
    static[_Q["scale_factor"]] = query.scale_factor / config.scale_factor_scale
    static[_Q["has_deadline"]] = float(query.deadline_s is not None)
    static[_Q["num_pipelines"]] = size / state.max_pipelines


def _read_counters(state: FeatureState, views: list[QueryView], changed: Sequence[int]) -> None:
    """Re-read the counters of the changed queries' frontier pipelines, in one numpy write.

    Only a ready, unfinished pipeline's counters can move: one waiting for its parents has
    none yet, a finished one keeps its last. A child joins the frontier when its last parent
    finishes, which shows when that parent is re-read. A new query's frontier starts as all of
    its pipelines, so the first read fills every counter.
    """
    rows: list[int] = []
    columns: list[int] = []
    values: list[tuple[int, int, int, bool, bool]] = []
    read = _PIPELINE_COUNTERS
    for row in changed:
        pipelines = views[row].pipelines
        frontier = state._frontier[row]
        stale = False
        for index in frontier:
            value = read(pipelines[index])
            rows.append(row)
            columns.append(index)
            values.append(value)
            stale = stale or value[4] or not value[3]  # finished, or not ready (a first read)
        if not stale:
            continue
        kept = [i for i in frontier if pipelines[i].is_ready and not pipelines[i].is_finished]
        for index in frontier:
            if not pipelines[index].is_finished:
                continue
            for child in pipelines[index].children:
                view = pipelines[child]
                if view.is_ready and child not in kept:
                    kept.append(child)
                    if child not in frontier:
                        rows.append(row)
                        columns.append(child)
                        values.append(read(view))
        state._frontier[row] = kept
    state._counters[rows, columns] = values


def _pipeline_dynamics(state: FeatureState, lo: int, hi: int, per_thread: float) -> None:
    """Per-pipeline progress features of rows lo..hi-1 from their counters."""
    inv_tasks_scale = 1.0 / state.config.tasks_scale
    width = state._width  # columns beyond the widest plan in the system stay zero
    counters = state._counters[lo:hi, :width]
    done = counters[..., 0]
    running = counters[..., 1]
    threads = counters[..., 2]
    ready = counters[..., 3] - counters[..., 4]  # a finished pipeline was ready: 0/1 stays 0/1
    features = state.pipelines[lo:hi, :width]
    not_done = state._num_tasks[lo:hi, :width] - done
    left = not_done - running
    features[..., _P["est_remaining_work"]] = state._work_per_task[lo:hi, :width] * not_done
    features[..., _P["tasks_left"]] = left * inv_tasks_scale
    features[..., _P["tasks_running"]] = running * inv_tasks_scale
    features[..., _P["progress"]] = done * state._inv_tasks[lo:hi, :width]
    features[..., _P["threads"]] = threads * per_thread
    features[..., _P["ready"]] = ready
    features[..., _P["running"]] = threads > 0
    features[..., _P["finished"]] = counters[..., 4]
    np.logical_and(ready > 0, left > 0, out=state.schedulable[lo:hi, :width])
    rows = state.queries[lo:hi]
    rows[:, _Q["est_remaining_work"]] = features[..., _P["est_remaining_work"]].sum(axis=1)
    rows[:, _Q["progress"]] = done.sum(axis=1) * state._inv_total_tasks[lo:hi]
    rows[:, _Q["threads"]] = threads.sum(axis=1) * per_thread


def _template_features(state: FeatureState, count: int) -> None:
    """Recurrence features of every row, after the template history changed."""
    config = state.config
    template = state._template[:count]
    completed = state._completed_count[template]
    rows = state.queries[:count]
    rows[:, _Q["template_recent_arrivals"]] = state._recent_arrivals[template] / config.count_scale
    rows[:, _Q["template_completed"]] = completed / config.count_scale
    mean_latency_s = state._latency_sum_s[template] / np.maximum(completed, 1.0)
    rows[:, _Q["template_mean_latency"]] = mean_latency_s / config.time_scale_s
    inverse = state._inv_template_latency[:count]
    inverse[...] = 0.0
    np.divide(1.0, mean_latency_s, out=inverse, where=mean_latency_s > 0)
    state._history_changed = False


def _query_features(state: FeatureState, count: int, now_s: float) -> None:
    """Per-query features that move with the clock."""
    if not count:
        return
    rows = state.queries[:count]
    age_s = now_s - state.arrival_s[:count]
    rows[:, _Q["age"]] = age_s / state.config.time_scale_s
    rows[:, _Q["age_over_template_latency"]] = age_s * state._inv_template_latency[:count]
    if state._deadlines:
        slack_s = (state._deadline_at_s[:count] - now_s) * state._has_deadline[:count]
        rows[:, _Q["deadline_slack"]] = slack_s / state.config.time_scale_s


def _global_features(state: FeatureState, obs: Observation, count: int, now_s: float) -> None:
    config = state.config
    cluster = obs.cluster
    values = state.globals
    nodes_up = obs.nodes_up
    values[_G["free_threads"]] = obs.free_threads / cluster.total_threads
    values[_G["memory_used"]] = sum(obs.memory_used_gb) / (
        cluster.memory_per_node_gb * cluster.nodes
    )
    values[_G["nodes_up"]] = sum(nodes_up) / len(nodes_up)
    values[_G["queries_in_system"]] = count / state.max_queries
    values[_G["arrival_rate"]] = len(state._window) * config.time_scale_s / config.window_s
    angle = 2.0 * math.pi * (now_s % config.day_s) / config.day_s
    values[_G["time_of_day_sin"]] = math.sin(angle)
    values[_G["time_of_day_cos"]] = math.cos(angle)


def class_vocabulary(classes: Sequence[str]) -> tuple[str, ...]:
    """A stable vocabulary (sorted, unique) for FeatureConfig.query_classes."""
    return tuple(sorted(set(classes)))
