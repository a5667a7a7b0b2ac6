"""Query templates: pipeline DAGs measured on a real engine, scaled to any scale factor.

A template file (JSON, shipped under `lsched/workloads/templates/`, or a user's own) records
where it came from (engine, version, scale factors, threads) and, per query, its pipelines
with work, task counts and memory at scale factor 1 plus exponents fitted across the measured
scale factors. Templates are validated once at load; inner code trusts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from sim.model import PipelineSpec, QuerySpec

BUNDLED_SUITES = ("tpch", "ssb", "tpcds")


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class PipelineTemplate:
    index: int
    parents: tuple[int, ...]
    operator: str
    """What ends the pipeline: hash_build, aggregate, sort, cte, window, result, ..."""
    work_s_sf1: float
    """Thread-seconds of work at scale factor 1."""
    work_exponent: float
    """work(sf) = work_s_sf1 · sf ** work_exponent."""
    tasks_sf1: float
    """Morsels at scale factor 1; tasks(sf) = max(1, round(tasks_sf1 · sf))."""
    memory_gb_sf1: float
    memory_exponent: float = 1.0


@dataclass(frozen=True, slots=True)
class QueryTemplate:
    name: str
    suite: str
    pipelines: tuple[PipelineTemplate, ...]

    @property
    def work_s_sf1(self) -> float:
        return sum(p.work_s_sf1 for p in self.pipelines)

    def instantiate(
        self,
        query_id: int,
        arrival_s: float,
        scale_factor: float,
        query_class: str,
        estimate_error_sigma: float,
        rng: np.random.Generator,
        *,
        priority: float = 1.0,
        deadline_s: float | None = None,
        work_multiplier: float = 1.0,
    ) -> QuerySpec:
        """One query of this template; the optimizer's estimates are true × lognormal(0, σ)."""
        errors = (
            rng.lognormal(0.0, estimate_error_sigma, size=len(self.pipelines))
            if estimate_error_sigma > 0
            else np.ones(len(self.pipelines))
        )
        pipelines = []
        for p, error in zip(self.pipelines, errors, strict=True):
            work = work_multiplier * p.work_s_sf1 * scale_factor**p.work_exponent
            pipelines.append(
                PipelineSpec(
                    index=p.index,
                    parents=p.parents,
                    num_tasks=max(1, round(p.tasks_sf1 * scale_factor)),
                    work_s=work,
                    est_work_s=work * float(error),
                    memory_gb=p.memory_gb_sf1 * scale_factor**p.memory_exponent,
                    operator=p.operator,
                )
            )
        return QuerySpec(
            query_id=query_id,
            template=self.name,
            query_class=query_class,
            arrival_s=arrival_s,
            pipelines=tuple(pipelines),
            scale_factor=scale_factor,
            priority=priority,
            deadline_s=deadline_s,
        )


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The templates of one file, with the provenance the calibration recorded."""

    suite: str
    engine: str
    engine_version: str
    scale_factors: tuple[float, ...]
    threads: int
    templates: dict[str, QueryTemplate]
