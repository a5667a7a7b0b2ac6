"""Workload generation: a `WorkloadSpec` and a seeded Generator become a tuple of queries.

Draw order is fixed, so the same spec, library and seed give identical queries: first every
stream's arrivals (in stream order), then each stream's templates and scale factors (in stream
order, for its arrivals that survived the cut), then each query's estimate errors in arrival order.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from lsched.workloads.arrivals import (
    ArrivalProcess,
    Batch,
    Mixture,
    NightlyEtl,
    Periodic,
    Window,
)
from lsched.workloads.spec import (
    AUTO,
    MEASURED,
    StreamSpec,
    WorkloadError,
    WorkloadSpec,
    synthetic_sigma,
)
from lsched.workloads.templates import QueryTemplate, TemplateError, select_templates
from lsched.workloads.trace import (
    ReplayOptions,
    TraceRecord,
    check_template_names,
    read_trace,
    replay_trace,
)
from sim.budget import Budget
from sim.model import QuerySpec


@dataclass(frozen=True, slots=True)
class _Stream:
    """A stream with its patterns resolved against the library and its weights normalised."""

    spec: StreamSpec
    arrivals: ArrivalProcess
    fixed: tuple[QueryTemplate, ...]
    shares: tuple[tuple[QueryTemplate, ...], ...]
    share_p: np.ndarray
    share_sizes: np.ndarray
    scale_factors: np.ndarray
    scale_p: np.ndarray


def _select(
    library: Mapping[str, QueryTemplate],
    patterns: Sequence[str],
    where: str,
    *,
    unique: bool,
    memo: dict[str, list[QueryTemplate]],
) -> list[QueryTemplate]:
    """The templates the patterns match, in pattern order; each once if `unique` (`memo`:
    pattern → matches, so many streams naming one pattern match it once)."""
    chosen: list[QueryTemplate] = []
    for k, pattern in enumerate(patterns):
        try:
            matches = memo.get(pattern)
            if matches is None:
                matches = memo[pattern] = select_templates(library, [pattern])
        except TemplateError:
            raise WorkloadError(
                f"{where}[{k}]: pattern {pattern!r} matches no template"
                f" (the library has {len(library)})"
            ) from None
        chosen += matches
    if unique:
        return list({t.name: t for t in chosen}.values())  # first occurrence's position
    return chosen


def _with_group_size(process: ArrivalProcess, size: int) -> ArrivalProcess:
    """A grouped process without a count sends each template of the fixed list once per group."""
    if size == 0:
        return process
    if isinstance(process, Window):
        return replace(process, process=_with_group_size(process.process, size))
    if isinstance(process, Batch | Periodic | NightlyEtl) and process.count is None:
        return replace(process, count=size)
    return process


def _resolve(spec: WorkloadSpec, library: Mapping[str, QueryTemplate]) -> list[_Stream]:
    streams = []
    memo: dict[str, list[QueryTemplate]] = {}
    for i, stream in enumerate(spec.streams):
        where = f"streams[{i}]"
        # A fixed list may name a template twice on purpose (a dashboard showing it twice).
        fixed = _select(library, stream.templates, f"{where}.templates", unique=False, memo=memo)
        shares = tuple(
            tuple(
                _select(
                    library, share.patterns, f"{where}.mix[{j}].templates", unique=True, memo=memo
                )
            )
            for j, share in enumerate(stream.mix)
        )
        weights = np.array([share.weight for share in stream.mix])
        sf_weights = np.array([sf.weight for sf in stream.scale_factors])
        streams.append(
            _Stream(
                spec=stream,
                arrivals=_with_group_size(stream.arrivals, len(fixed)),
                fixed=tuple(fixed),
                shares=shares,
                share_p=weights / weights.sum() if len(weights) else weights,
                share_sizes=np.array([len(s) for s in shares], dtype=np.int64),
                scale_factors=np.array([sf.value for sf in stream.scale_factors]),
                scale_p=sf_weights / sf_weights.sum(),
            )
        )
    return streams


def workload_templates(
    spec: WorkloadSpec, library: Mapping[str, QueryTemplate]
) -> tuple[QueryTemplate, ...]:
    """Every template the workload can draw: its streams' choices, or the whole library when
    a trace is replayed (trace records map to any template of a similar shape)."""
    if spec.trace is not None:
        return tuple(library.values())
    chosen: dict[str, QueryTemplate] = {}
    for stream in _resolve(spec, library):
        for template in (*stream.fixed, *(t for share in stream.shares for t in share)):
            chosen[template.name] = template
    return tuple(chosen.values())


def _measured_estimates(stream: StreamSpec, template: QueryTemplate) -> bool:
    """Whether a query of `template` in `stream` gets the optimizer's measured estimates."""
    if stream.estimate_error == MEASURED:
        return True
    return stream.estimate_error == AUTO and template.has_measured_estimates


def check_templates(spec: WorkloadSpec, library: Mapping[str, QueryTemplate]) -> None:
    """Fail early (WorkloadError naming the field) if a stream's pattern matches no template,
    or asks for measured estimates of a template that has none."""
    for i, stream in enumerate(_resolve(spec, library)):
        if stream.spec.estimate_error != MEASURED:
            continue
        chosen = [*stream.fixed, *(t for share in stream.shares for t in share)]
        for template in chosen:
            if not template.has_measured_estimates:
                raise WorkloadError(
                    f"streams[{i}].estimate_error: measured, but template {template.name!r} "
                    "has no measured estimates (recalibrate it, or set a number for a "
                    "synthetic error)"
                )


def generate_workload(
    spec: WorkloadSpec, library: Mapping[str, QueryTemplate], rng: np.random.Generator
) -> tuple[QuerySpec, ...]:
    """The workload's queries, numbered 0..n−1 in arrival order; deterministic given `rng`'s seed.

    Arrivals stop at `spec.queries` (all streams together) and before `spec.duration_s`. A
    workload whose streams send nothing in time gives an empty tuple.
    """
    queries = _stream_queries(spec, library, rng) if spec.streams else ()
    if spec.trace is None:
        return queries
    trace = spec.trace
    records = _trace_records(trace.path, trace.max_records, trace.instance_id)
    replayed = replay_trace(
        records,
        library,
        rng,
        estimate_error_sigma=trace.estimate_error,
        time_scale=trace.time_scale,
        work_per_mb_s=trace.work_per_mb_s,
        threads=trace.threads,
        options=ReplayOptions(templates=trace.templates),
    )
    return _merge(queries, replayed, spec)


def _merge(
    generated: Sequence[QuerySpec], replayed: Sequence[QuerySpec], spec: WorkloadSpec
) -> tuple[QuerySpec, ...]:
    """Streams and trace in one arrival order (streams first on ties), cut and renumbered."""
    horizon_s = math.inf if spec.duration_s is None else spec.duration_s
    merged = sorted(
        (q for q in (*generated, *replayed) if q.arrival_s < horizon_s),
        key=lambda q: q.arrival_s,
    )[: spec.queries]
    return tuple(replace(q, query_id=i) for i, q in enumerate(merged))


DRAWS_PER_QUERY = 10.0
"""A stream may draw at most this many random numbers per query its budget allows (on/off
periods, thinning candidates, jittered firings) before it is refused as too costly to draw."""
SHORTEST_HORIZON_S, LONGEST_HORIZON_S = 1e-12, 1e300
"""The range searched for when a stream has sent enough queries (beyond it: never)."""


def check_size(spec: WorkloadSpec, library: Mapping[str, QueryTemplate], budget: Budget) -> None:
    """Refuse a workload that would exceed the budget before any of it is drawn (WorkloadError
    naming the field): more queries than `max_queries`, arrivals needed past `max_sim_time_s`,
    or a stream whose draw would cost more than DRAWS_PER_QUERY per allowed query."""
    queries, duration_s = spec.queries, spec.duration_s
    if queries is not None and queries > budget.max_queries:
        raise WorkloadError(
            f"queries: {queries} is more than the budget's {budget.max_queries} "
            "(simulation.budget.max_queries)"
        )
    if spec.trace is not None and queries is None:
        trace = spec.trace
        records = len(_trace_records(trace.path, trace.max_records, trace.instance_id))
        if records > budget.max_queries:
            raise WorkloadError(
                f"trace.max_records: the trace replays {records} records, more than the "
                f"budget's {budget.max_queries} (set max_records or workload.queries, or raise "
                "simulation.budget.max_queries)"
            )
    if not spec.streams:
        return
    processes = [stream.arrivals for stream in _resolve(spec, library)]
    mixture = Mixture(tuple(processes))
    limit_s = budget.max_sim_time_s
    window_s = limit_s if duration_s is None else min(duration_s, limit_s)
    expected = mixture.expected_count(window_s)
    if queries is None and expected > budget.max_queries:
        raise WorkloadError(
            f"duration_s: the streams send about {expected:.3g} queries in {window_s:g} s, "
            f"more than the budget's {budget.max_queries} (simulation.budget.max_queries)"
        )
    if queries is not None and expected < queries and (duration_s is None or duration_s > limit_s):
        raise WorkloadError(
            f"queries: the streams send about {expected:.3g} of the {queries} queries within "
            f"{limit_s:g} simulated seconds (simulation.budget.max_sim_time_s)"
        )
    allowed = DRAWS_PER_QUERY * budget.max_queries
    total = 0.0
    for i, process in enumerate(processes):
        if duration_s is not None:
            horizon_s = duration_s
            if queries is not None:
                horizon_s = min(horizon_s, _time_to_send(process, queries))
        else:  # each stream draws its first `queries` arrivals, however long they take
            horizon_s = _time_to_send(process, queries or 0)
        cost = min(process.expected_count(horizon_s), queries or math.inf)
        cost += process.draw_overhead(horizon_s)
        total += cost
        if not cost <= allowed:
            raise WorkloadError(
                f"streams[{i}].arrivals: drawing its arrivals would take about {cost:.3g} "
                f"random draws, more than {allowed:.3g} ({DRAWS_PER_QUERY:g} per query of "
                "simulation.budget.max_queries): its rates or periods are out of scale"
            )
    if total > allowed:  # each stream draws its own arrivals before the cut at `queries`
        raise WorkloadError(
            f"streams: drawing the {len(processes)} streams' arrivals would take about "
            f"{total:.3g} random draws, more than {allowed:.3g} ({DRAWS_PER_QUERY:g} per query "
            "of simulation.budget.max_queries)"
        )


def _time_to_send(process: ArrivalProcess, count: int) -> float:
    """When `process` has sent `count` arrivals on average (inf if it never does): a
    bisection over the logarithm of time."""
    low, high = SHORTEST_HORIZON_S, LONGEST_HORIZON_S
    if process.expected_count(high) < count:
        return math.inf
    if process.expected_count(low) >= count:
        return low
    for _ in range(60):
        middle = math.sqrt(low * high)
        if process.expected_count(middle) >= count:
            high = middle
        else:
            low = middle
    return high


def check_trace(spec: WorkloadSpec, library: Mapping[str, QueryTemplate]) -> None:
    """Read the workload's trace now, so a bad log (or a template name the library lacks)
    fails when the scenario loads."""
    if spec.trace is not None:
        records = _trace_records(spec.trace.path, spec.trace.max_records, spec.trace.instance_id)
        check_template_names(records, library)


def file_sha256(path: Path) -> str:
    """A file's SHA-256 (a log, a template file): what ties a run's results to the files it
    read (hashed once per process while the file's size and modification time stay the same)."""
    stat = path.stat()
    return _cached_sha256(path, (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _cached_sha256(path: Path, _stamp: object) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as log:
        for block in iter(lambda: log.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _trace_records(
    path: Path, max_records: int | None, instance_id: str | int | None
) -> tuple[TraceRecord, ...]:
    """A log is read once per process, however many seeds replay it (read again if the file
    changed: its size and modification time are part of the key)."""
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # read_trace names the problem
    return _cached_records(path, max_records, instance_id, stamp)


@lru_cache(maxsize=8)
def _cached_records(
    path: Path, max_records: int | None, instance_id: str | int | None, _stamp: object
) -> tuple[TraceRecord, ...]:
    return tuple(read_trace(path, max_records=max_records, instance_id=instance_id))


def _stream_queries(
    spec: WorkloadSpec, library: Mapping[str, QueryTemplate], rng: np.random.Generator
) -> tuple[QuerySpec, ...]:
    streams = _resolve(spec, library)
    horizon_s = math.inf if spec.duration_s is None else spec.duration_s
    mixture = Mixture(tuple(s.arrivals for s in streams))
    drawn = mixture.arrivals(rng, horizon_s, spec.queries)

    count = len(drawn)
    templates = np.empty(count, dtype=object)
    scale_factors = np.empty(count)
    for i, stream in enumerate(streams):
        where = np.flatnonzero(drawn.sources == i)
        size = len(where)
        if stream.fixed:
            templates[where] = [stream.fixed[k] for k in drawn.slots[where] % len(stream.fixed)]
        else:
            share = rng.choice(len(stream.shares), size=size, p=stream.share_p)
            pick = (rng.random(size) * stream.share_sizes[share]).astype(np.int64)
            templates[where] = [stream.shares[a][b] for a, b in zip(share, pick, strict=True)]
        chosen = rng.choice(len(stream.scale_factors), size=size, p=stream.scale_p)
        scale_factors[where] = stream.scale_factors[chosen]

    queries = []
    for query_id in range(count):
        stream = streams[drawn.sources[query_id]].spec
        template = templates[query_id]
        measured = _measured_estimates(stream, template)
        queries.append(
            template.instantiate(
                query_id,
                float(drawn.times_s[query_id]),
                float(scale_factors[query_id]),
                stream.query_class,
                stream.estimate_noise if measured else synthetic_sigma(stream.estimate_error),
                rng,
                priority=stream.priority,
                deadline_s=stream.deadline_s,
                work_multiplier=stream.work_multiplier,
                measured_estimates=measured,
                parameters=spec.parameters,
            )
        )
    return tuple(queries)


@dataclass(frozen=True, slots=True)
class WorkloadStats:
    """What a generated workload asks of the cluster, for sizing a scenario."""

    queries: int
    span_s: float
    """First to last arrival."""
    total_work_s: float
    """Thread-seconds of true work, all queries together."""
    per_class: tuple[tuple[str, int], ...]
    """(query class, count), most frequent first."""

    @property
    def mean_rate_per_s(self) -> float:
        return (self.queries - 1) / self.span_s if self.span_s > 0 else math.inf

    def offered_load(self, total_threads: int) -> float:
        """Work per thread-second of the arrival span: above 1 the queue can only grow."""
        if self.span_s <= 0:
            return math.inf
        return self.total_work_s / (self.span_s * total_threads)


def workload_stats(queries: Sequence[QuerySpec]) -> WorkloadStats:
    if not queries:
        return WorkloadStats(0, 0.0, 0.0, ())
    arrivals_s = [q.arrival_s for q in queries]
    return WorkloadStats(
        queries=len(queries),
        span_s=max(arrivals_s) - min(arrivals_s),
        total_work_s=sum(q.work_s for q in queries),
        per_class=tuple(Counter(q.query_class for q in queries).most_common()),
    )


def offered_load(queries: Sequence[QuerySpec], threads: int) -> float | None:
    """How loaded a cluster of `threads` will be: ρ = λ · E[single-thread work] / threads, the
    arrival rate λ measured as (n − 1) gaps over the first-to-last span (parallel overheads add
    to it); None for fewer than two queries or a batch (all arrive at once)."""
    if len(queries) < 2:
        return None
    arrivals = [q.arrival_s for q in queries]
    span_s = max(arrivals) - min(arrivals)
    if span_s <= 0:
        return None
    rate_per_s = (len(queries) - 1) / span_s
    return rate_per_s * sum(q.work_s for q in queries) / len(queries) / threads
