"""SRPT behind a runtime predictor learned online from the query log, as Redshift's Stage
predictor sits in front of its workload manager.

The optimizer's estimates are wrong in ways that repeat: the same template at the same scale
factor is misestimated by about the same factor every time (the measured world keeps each
template's estimate ratio), and its parameters move its work. `RuntimePredictor` learns that
factor from the query log — each finished query's CPU time (thread-seconds, as the log records
it) over its estimated work — by (template, scale factor), then by template, then over every
template, and falls back to the optimizer's estimate while there is no history.
`PredictedSrpt` ranks queries by the corrected remaining work and, with `work_per_thread_s`,
caps a pipeline at the threads its corrected remaining work keeps busy.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from math import ceil

from agents.context import AgentOptionError
from agents.heuristics import Knobs
from agents.theory import CappedPriorityRule
from sim.interface import CompletedQuery, Observation, PipelineView
from sim.model import ClusterConfig


@dataclass(frozen=True, slots=True)
class PredictorSettings:
    """How much history the predictor keeps and trusts."""

    history: int = 20
    """Most recent finished queries kept per key (template and scale factor): the estimate
    ratio follows a template whose data changed."""
    min_history: int = 1
    """Finished instances a key needs before its own ratio replaces the coarser one."""
    shrinkage: float = 1.0
    """Pseudo-observations at the coarser level's ratio: a key with n instances gets
    n / (n + shrinkage) of its own mean log ratio (0: trust one instance fully)."""

    def __post_init__(self) -> None:
        for name in ("history", "min_history"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AgentOptionError(f"option {name}: must be an integer >= 1 (got {value!r})")
        if (
            isinstance(self.shrinkage, bool)
            or not isinstance(self.shrinkage, int | float)
            or not 0 <= self.shrinkage < math.inf
        ):
            raise AgentOptionError(
                f"option shrinkage: must be a finite number >= 0 (got {self.shrinkage!r})"
            )


class RuntimePredictor:
    """Per (template, scale factor): the log ratio of CPU time to estimated work, learned online."""

    def __init__(self, settings: PredictorSettings | None = None) -> None:
        self.settings = settings or PredictorSettings()
        self._by_key: dict[tuple[str, float], deque[float]] = {}
        self._by_template: dict[str, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=self.settings.history * 10)
        self._memo: dict[tuple[str, float], float] = {}

    def clear(self) -> None:
        """Forget the log (a new run starts with an empty one)."""
        self._by_key.clear()
        self._by_template.clear()
        self._all.clear()
        self._memo.clear()

    def observe(self, record: CompletedQuery) -> None:
        """Learn from one finished query; records without a CPU time are skipped."""
        if not (record.cpu_s > 0 and record.est_work_s > 0):  # NaN fails too
            return
        ratio = math.log(record.cpu_s / record.est_work_s)
        size = self.settings.history
        key = (record.template, record.scale_factor)
        self._by_key.setdefault(key, deque(maxlen=size)).append(ratio)
        self._by_template.setdefault(record.template, deque(maxlen=size * 4)).append(ratio)
        self._all.append(ratio)
        self._memo.clear()

    def correction(self, template: str, scale_factor: float) -> float:
        """Predicted CPU time over estimated work for an instance of `template` (1.0: no log)."""
        key = (template, scale_factor)
        value = self._memo.get(key)
        if value is None:
            log_ratio = self._level(self._all, 0.0)
            log_ratio = self._level(self._by_template.get(template), log_ratio)
            log_ratio = self._level(self._by_key.get(key), log_ratio)
            value = self._memo[key] = math.exp(log_ratio)
        return value

    def _level(self, ratios: deque[float] | None, coarser: float) -> float:
        settings = self.settings
        if not ratios or len(ratios) < settings.min_history:
            return coarser
        n = len(ratios)
        return (sum(ratios) + settings.shrinkage * coarser) / (n + settings.shrinkage)


class PredictedSrpt(CappedPriorityRule):
    """SRPT on predicted remaining work: the optimizer's estimate times the predictor's
    correction for the query's template and scale factor, learned from this run's log."""

    def __init__(
        self,
        knobs: Knobs | None = None,
        history: int = 20,
        min_history: int = 1,
        shrinkage: float = 1.0,
        work_per_thread_s: float | None = None,
    ) -> None:
        super().__init__(knobs)
        if work_per_thread_s is not None and (
            isinstance(work_per_thread_s, bool)
            or not isinstance(work_per_thread_s, int | float)
            or not work_per_thread_s > 0
        ):
            raise AgentOptionError(
                f"option work_per_thread_s: must be a number > 0 or null "
                f"(got {work_per_thread_s!r})"
            )
        self.predictor = RuntimePredictor(PredictorSettings(history, min_history, shrinkage))
        self.work_per_thread_s = work_per_thread_s
        """Cap a pipeline at ⌈predicted remaining work / this⌉ threads, so a small pipeline does
        not take threads that would mostly pay warm-up and moving costs; None: no such cap."""
        self._logged = 0

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self.predictor.clear()
        self._logged = 0

    def _learn(self, obs: Observation) -> None:
        completed = obs.completed
        for record in completed[self._logged :]:
            self.predictor.observe(record)
        self._logged = len(completed)

    def _predicted(self, query_id: int, obs: Observation) -> float:
        query = obs.query(query_id)
        return self.predictor.correction(query.template, query.scale_factor)

    def _prepare(self, obs: Observation) -> None:
        self._learn(obs)
        super()._prepare(obs)

    def _pipeline_cap(self, pipeline: PipelineView, obs: Observation, cap: int) -> int:
        if self.work_per_thread_s is None:
            return cap
        work = pipeline.est_remaining_work_s * self._predicted(pipeline.query_id, obs)
        return min(cap, max(self._min, ceil(work / self.work_per_thread_s - 1e-9)))

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        query = obs.query(pipeline.query_id)
        predicted = query.est_remaining_work_s * self._predicted(pipeline.query_id, obs)
        return (predicted, query.arrival_s, query.query_id, pipeline.index)
