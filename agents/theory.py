"""Schedulers from parallel-job scheduling theory, on the estimates a database has.

- `HeSrpt` (Berg, Vesilo, Harchol-Balter 2020, "heSRPT: Parallel scheduling to minimize mean
  slowdown"): with m jobs whose speedup is k^p, ranked from the largest remaining size (i = 1)
  to the smallest (i = m), the optimal allocation gives job i the fraction
  (i/m)^c − ((i−1)/m)^c of the servers, c = 1/(1−p): the smaller a job, the more it gets, and
  every job some. Sizes here are the optimizer's estimated remaining work.
- `LeastParallelizableFirst` and `Serpt` (Berg, Moseley, Wang, Harchol-Balter 2024: with jobs
  of different scalability, least-parallelizable-first is optimal at light load and shortest
  expected remaining processing time at heavy load). Scalability comes from the pipeline's
  breaker type through the database's operator model (`agents.scalability`), never from the
  simulator's hidden serial fraction.

Both priority rules hand a pipeline no more threads than it uses well (`min_marginal_speedup`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agents.context import AgentOptionError
from agents.heuristics import SHARE_KNOBS, Heuristic, Knobs, _PriorityRule, load_share
from agents.scalability import (
    DEFAULT_SERIAL_FRACTION,
    ScalabilityPrior,
    efficient_threads,
    speedup,
)
from sim.interface import WAIT, Decision, Observation, PipelineView, QueryView
from sim.model import ClusterConfig

DEFAULT_MARGINAL_SPEEDUP = 0.5
"""lpf and serpt: a pipeline takes another thread while it adds at least half a thread's
speed (Amdahl with the pipeline's estimated serial fraction)."""


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
    ):
        raise AgentOptionError(f"option {name}: must be a number in 0..1 or null (got {value!r})")


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise AgentOptionError(f"option {name}: must be a number > 0 or null (got {value!r})")


@dataclass(frozen=True, slots=True)
class Scalability:
    """Where an agent's serial fractions come from: its own option, else the prior."""

    serial_fraction: float | None = None
    """One fraction for every pipeline (None: the prior's per-operator value)."""
    prior: ScalabilityPrior | None = None

    def of(self, pipeline: PipelineView, query: QueryView) -> float:
        if self.serial_fraction is not None:
            return float(self.serial_fraction)
        if self.prior is None:
            return DEFAULT_SERIAL_FRACTION
        return self.prior.serial_fraction(pipeline.operator, query.scale_factor, query.query_class)


class CappedPriorityRule(_PriorityRule):
    """A priority rule whose cap may differ per pipeline (`_pipeline_cap`), below the shared
    caps: the pipeline with the smallest key among those under their own cap gets threads, up
    to that cap; when all hold theirs, `fill_idle` hands the best one thread more."""

    fill_idle = False
    """Hand threads beyond every pipeline's own cap away rather than leave them idle. Off: on
    tpch-streaming (seeds 0–2) SERPT had 44.1 s mean latency with it, 39.5 s without."""

    def _prepare(self, obs: Observation) -> None:
        """Per-decision bookkeeping before the candidates are ranked."""
        self._forget_finished(obs)

    def _pipeline_cap(self, pipeline: PipelineView, obs: Observation, cap: int) -> int:
        return cap

    def decide(self, obs: Observation) -> Decision:
        self._prepare(obs)
        cap = self._max
        factor = self.knobs.adaptive_parallelism
        if factor is not None:
            cap = min(cap, max(self._min, load_share(factor, self._total, len(obs.queries))))
        admitted = self._admitted(obs)
        best: PipelineView | None = None
        best_key: tuple = ()
        best_limit = 0
        spare: PipelineView | None = None
        spare_key: tuple = ()
        for pipeline in obs.schedulable:
            if pipeline.threads >= cap:
                continue
            if admitted is not None and pipeline.query_id not in admitted:
                continue
            limit = self._pipeline_cap(pipeline, obs, cap)
            candidate = self._key(pipeline, obs)
            if pipeline.threads < limit:
                if best is None or candidate < best_key:
                    best, best_key, best_limit = pipeline, candidate, limit
            elif best is None and (spare is None or candidate < spare_key):
                spare, spare_key = pipeline, candidate
        if best is not None:
            return Decision((best.query_id, best.index), best_limit)
        if spare is None or not self.fill_idle:
            return WAIT
        # Every pipeline holds the threads it uses well: one more to the best, and so on.
        return Decision((spare.query_id, spare.index), spare.threads + 1)


class _ScalableRule(CappedPriorityRule):
    """A priority rule that also caps each pipeline where another thread stops paying."""

    def __init__(
        self,
        knobs: Knobs | None = None,
        serial_fraction: float | None = None,
        min_marginal_speedup: float | None = DEFAULT_MARGINAL_SPEEDUP,
        fill_idle: bool = False,
        scalability: ScalabilityPrior | None = None,
    ) -> None:
        super().__init__(knobs)
        _check_fraction("serial_fraction", serial_fraction)
        _check_positive("min_marginal_speedup", min_marginal_speedup)
        if not isinstance(fill_idle, bool):
            raise AgentOptionError(f"option fill_idle: must be true or false (got {fill_idle!r})")
        self.fill_idle = fill_idle
        self.scalability = Scalability(serial_fraction, scalability)
        self.min_marginal_speedup = min_marginal_speedup
        """Stop adding threads to a pipeline when the next adds less than this to its speedup
        (Amdahl with its estimated fraction); None: only the shared caps apply."""
        self._pipelines: dict[int, dict[int, tuple[float, int]]] = {}
        """query_id -> pipeline index -> (estimated serial fraction, threads it uses well)."""
        self._times: dict[int, float] = {}
        """Serpt: query_id -> expected remaining time, for the decision being made."""

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self._pipelines.clear()

    def _forget_finished(self, obs: Observation) -> None:
        for record in obs.completed[self._seen_completed :]:
            self._pipelines.pop(record.query_id, None)
        super()._forget_finished(obs)

    def _scaling(self, pipeline: PipelineView, obs: Observation) -> tuple[float, int]:
        """(estimated serial fraction, threads it uses well) of a pipeline, computed once."""
        per_query = self._pipelines.get(pipeline.query_id)
        if per_query is None:
            per_query = self._pipelines[pipeline.query_id] = {}
        known = per_query.get(pipeline.index)
        if known is None:
            fraction = self.scalability.of(pipeline, obs.query(pipeline.query_id))
            most = self._total
            if self.min_marginal_speedup is not None:
                most = efficient_threads(fraction, self.min_marginal_speedup, most)
            known = per_query[pipeline.index] = (fraction, most)
        return known

    def _pipeline_cap(self, pipeline: PipelineView, obs: Observation, cap: int) -> int:
        return min(cap, self._scaling(pipeline, obs)[1])


class LeastParallelizableFirst(_ScalableRule):
    """Least parallelizable first ("inelastic first"): the pipeline with the largest estimated
    serial fraction goes first, capped where threads stop paying; the rest of the threads go
    to the more scalable ones. Ties (one operator type): least estimated remaining work."""

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        fraction, _ = self._scaling(pipeline, obs)
        query = obs.query(pipeline.query_id)
        return (
            -fraction,
            query.est_remaining_work_s,
            query.arrival_s,
            query.query_id,
            pipeline.index,
        )


class Serpt(_ScalableRule):
    """Shortest expected remaining processing time: the query whose estimated remaining work
    would take the least time at the threads its pipelines use well (work / Amdahl speedup),
    so a scalable query goes before a serial one of the same size."""

    def _prepare(self, obs: Observation) -> None:
        super()._prepare(obs)
        self._times.clear()

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        time_s = self._times.get(pipeline.query_id)
        query = obs.query(pipeline.query_id)
        if time_s is None:
            time_s = 0.0
            for view in query.pipelines:
                if view.is_finished:
                    continue
                fraction, most = self._scaling(view, obs)
                time_s += view.est_remaining_work_s / speedup(fraction, most)
            self._times[pipeline.query_id] = time_s
        return (time_s, query.arrival_s, query.query_id, pipeline.index)


class HeSrpt(Heuristic):
    """heSRPT: every query in the system gets its rank's share of the threads,
    N·((i/m)^c − ((i−1)/m)^c) with queries ranked from most estimated remaining work (i = 1)
    to least (i = m) and c = 1/(1−p); its ready pipelines take the share in plan order.

    p is `speedup_exponent`, or (None) the exponent of k^p that matches, at all N threads, the
    Amdahl speedup of the queries' mean estimated serial fraction. Shares are recomputed when
    a query arrives or finishes (between those, heSRPT keeps the ranks). Threads no query's
    share claims go to the smallest queries when `work_conserving` is on.
    """

    knobs_read = SHARE_KNOBS

    def __init__(
        self,
        knobs: Knobs | None = None,
        speedup_exponent: float | None = None,
        serial_fraction: float | None = None,
        scalability: ScalabilityPrior | None = None,
    ) -> None:
        super().__init__(knobs)
        if speedup_exponent is not None and (
            isinstance(speedup_exponent, bool)
            or not isinstance(speedup_exponent, int | float)
            or not 0 <= speedup_exponent < 1
        ):
            raise AgentOptionError(
                f"option speedup_exponent: must be a number in [0, 1) or null "
                f"(got {speedup_exponent!r})"
            )
        _check_fraction("serial_fraction", serial_fraction)
        self.speedup_exponent = speedup_exponent
        self.scalability = Scalability(serial_fraction, scalability)
        self._epoch = (-1, -1)
        self._shares: dict[int, int] = {}
        self._order: dict[int, int] = {}
        """query_id -> rank from the smallest (0) up: the order spare threads go in."""

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self._epoch = (-1, -1)

    def exponent(self, obs: Observation) -> float:
        """p of the speedup curve k^p the allocation assumes."""
        if self.speedup_exponent is not None:
            return float(self.speedup_exponent)
        total = work = 0.0
        for query in obs.queries:
            for view in query.pipelines:
                if not view.is_finished:
                    share = view.est_remaining_work_s
                    total += share * self.scalability.of(view, query)
                    work += share
        fraction = total / work if work > 0 else DEFAULT_SERIAL_FRACTION
        n = self._total
        if n < 2:
            return 0.0
        return min(max(math.log(speedup(fraction, n)) / math.log(n), 0.0), 0.999)

    def shares(self, obs: Observation) -> dict[int, int]:
        """Threads per query id, summing to every thread (cumulative rounding)."""
        admitted = self._admitted(obs)
        queries = [q for q in obs.queries if admitted is None or q.query_id in admitted]
        ranked = sorted(queries, key=lambda q: (-q.est_remaining_work_s, -q.arrival_s, -q.query_id))
        m = len(ranked)
        c = 1.0 / (1.0 - self.exponent(obs))
        total = self._total
        shares = {}
        previous = 0
        for i, query in enumerate(ranked, start=1):
            upto = round(total * (i / m) ** c)
            shares[query.query_id] = upto - previous
            previous = upto
        self._order = {q.query_id: m - i for i, q in enumerate(ranked)}
        return shares

    def decide(self, obs: Observation) -> Decision:
        epoch = (obs.arrivals_so_far, len(obs.completed))
        if epoch != self._epoch:
            self._shares = self.shares(obs)
            self._epoch = epoch
        shares, order = self._shares, self._order
        cap, floor = self._max, self._min
        best: PipelineView | None = None
        best_key: tuple = ()
        best_limit = 0
        spare: PipelineView | None = None
        spare_key: tuple = ()
        for pipeline in obs.schedulable:
            if pipeline.threads >= cap or pipeline.query_id not in shares:
                continue
            query = obs.query(pipeline.query_id)
            key = (order[pipeline.query_id], pipeline.index)
            limit = min(
                cap, max(floor, pipeline.threads + shares[pipeline.query_id] - query.threads)
            )
            if limit > pipeline.threads and shares[pipeline.query_id] > 0:
                if best is None or key < best_key:
                    best, best_key, best_limit = pipeline, key, limit
            elif spare is None or key < spare_key:
                spare, spare_key = pipeline, key
        if best is not None:
            return Decision((best.query_id, best.index), best_limit)
        if spare is None or not self.knobs.work_conserving:
            return WAIT
        return Decision((spare.query_id, spare.index), min(cap, spare.threads + obs.free_threads))
