"""Query templates: pipeline DAGs measured on a real engine, scaled to any scale factor.

A template file (JSON, shipped under `lsched/workloads/templates/`, or a user's own) records
where it came from (engine, version, scale factors, threads) and, per query, its pipelines
with work, task counts and memory at scale factor 1 plus exponents fitted across the measured
scale factors. Templates are validated once at load; inner code trusts them.

The bundled files were produced by `lsched calibrate` (lsched/workloads/calibrate.py): DuckDB
1.5.5 profiled TPC-H, SSB (built from TPC-H data) and TPC-DS at several scale factors with
JSON profiling; each file's header says which scale factors and thread count, and its `notes`
say how work, tasks and memory were derived.

File format (all numbers per pipeline are at scale factor 1):

    {"format": 1, "suite": "tpch", "engine": "duckdb", "engine_version": "1.5.5",
     "scale_factors": [0.1, 1.0], "threads": 2, "notes": "...",
     "templates": {"tpch-q1": {"latency_s": [0.02, 0.14],
        "pipelines": [{"parents": [], "operator": "aggregate", "work_s_sf1": 0.25,
                       "work_exponent": 1.0, "tasks_sf1": 48.8, "memory_gb_sf1": 1e-06,
                       "memory_exponent": 0.0, "table_scans": 1}, ...]}}}

Pipelines are listed in topological order (a pipeline's parents come before it); the last one
is the query's result and every other pipeline feeds a later one.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lsched.documents import MAX_TEMPLATE_FILE_BYTES, parse_json, read_text
from lsched.errors import InputError
from lsched.io import atomic_write_text
from sim.model import PipelineSpec, QuerySpec
from sim.operators import AGGREGATE_OPERATORS, JOIN_OPERATORS, OPERATORS

BUNDLED_SUITES = ("tpch", "ssb", "tpcds")
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
"""Format 2 adds measured scalability, estimates and the calibration's provenance."""
ESTIMATE_RATIO_RANGE = (1e-6, 1e6)
"""Bounds on a measured estimate ratio: beyond them a file is corrupt, not an optimizer."""
EXPONENT_RANGE = (-4.0, 4.0)
"""How work and memory may grow with the scale factor (sf ** exponent): the bundled fits span
0–2; 2,000 overflowed a float at scale factor 2, a traceback rather than an error."""
MAX_PIPELINES = 1_000
"""Most pipelines a template may hold (the bundled ones: at most 46, TPC-DS): a scheduler
scans a query's ready pipelines at every decision, and 20,000 made two queries run for
minutes."""


class TemplateError(InputError):
    """A template file that cannot be used: "FILE: field.path: problem"."""


@dataclass(frozen=True, slots=True)
class PipelineTemplate:
    index: int
    parents: tuple[int, ...]
    operator: str
    """What ends the pipeline: hash_build, aggregate, sort, cte, window, result, ... (OPERATORS)."""
    work_s_sf1: float
    """Thread-seconds of work at scale factor 1."""
    work_exponent: float
    """work(sf) = work_s_sf1 · sf ** work_exponent."""
    tasks_sf1: float
    """Morsels at scale factor 1; tasks(sf) = max(1, round(tasks_sf1 · sf)). May be < 1 for a
    pipeline over a small table: it then runs as one task at every usual scale factor."""
    memory_gb_sf1: float
    memory_exponent: float = 1.0
    table_scans: int = 0
    """Base-table scans feeding this pipeline (its sources); matches trace records by shape."""
    serial_fraction: tuple[float, ...] = ()
    """Amdahl serial fraction at each of the template's `scalability_scale_factors` (measured:
    see calibrate.fit_serial_fractions); empty until filled from the operator-type model."""
    estimate_ratio: tuple[float, ...] = ()
    """The optimizer's estimated work over the true work at each of the template's
    `scale_factors` (DuckDB's estimated cardinalities through a fitted cost model); empty if
    the file has no estimate measurement."""


@dataclass(frozen=True, slots=True)
class TemplateShape:
    """Plan-shape counts in the vocabulary of query logs (e.g. Redset's num_joins)."""

    joins: int
    scans: int
    aggregations: int


@dataclass(frozen=True, slots=True)
class QueryTemplate:
    name: str
    suite: str
    pipelines: tuple[PipelineTemplate, ...]
    latency_s: tuple[float, ...] = ()
    """Measured wall-clock latency at each of its set's scale factors (empty if unknown)."""
    scale_factors: tuple[float, ...] = ()
    """The scale factors it was measured at (its file's), which `estimate_ratio` follows."""
    scalability_scale_factors: tuple[float, ...] = ()
    """The scale factors each pipeline's `serial_fraction` list follows."""
    parameter_work: tuple[float, ...] = ()
    """Work of instances with parameters drawn per the benchmark's substitution rules, relative
    to the default parameters' (one value per measured draw; empty: not measured). An instance
    draws one uniformly and scales every pipeline's work by it."""

    @property
    def has_measured_estimates(self) -> bool:
        return all(p.estimate_ratio for p in self.pipelines)

    def serial_fractions(self, scale_factor: float) -> tuple[float, ...]:
        """Per-pipeline serial fraction at `scale_factor`: linear in log scale factor between
        the measured points, held at the nearest one outside them."""
        if not self.scalability_scale_factors:
            return tuple(0.0 for _ in self.pipelines)
        x = math.log(scale_factor)
        xs = np.log(self.scalability_scale_factors)
        return tuple(
            min(1.0, max(0.0, float(np.interp(x, xs, p.serial_fraction)))) for p in self.pipelines
        )

    def estimate_ratios(self, scale_factor: float) -> tuple[float, ...]:
        """Per-pipeline estimated/true work at `scale_factor` (geometric interpolation)."""
        x = math.log(scale_factor)
        xs = np.log(self.scale_factors)
        return tuple(
            math.exp(float(np.interp(x, xs, np.log(p.estimate_ratio)))) for p in self.pipelines
        )

    @property
    def work_s_sf1(self) -> float:
        return sum(p.work_s_sf1 for p in self.pipelines)

    def work_s(self, scale_factor: float) -> float:
        """Total true work at a scale factor (thread-seconds)."""
        return sum(p.work_s_sf1 * scale_factor**p.work_exponent for p in self.pipelines)

    @property
    def shape(self) -> TemplateShape:
        ops = [p.operator for p in self.pipelines]
        return TemplateShape(
            joins=sum(op in JOIN_OPERATORS for op in ops),
            scans=sum(p.table_scans for p in self.pipelines),
            aggregations=sum(op in AGGREGATE_OPERATORS for op in ops),
        )

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
        measured_estimates: bool = False,
        parameters: bool = False,
    ) -> QuerySpec:
        """One query of this template.

        The optimizer's estimates are true × lognormal(0, σ) (synthetic), or with
        `measured_estimates` true × the pipeline's measured estimate ratio × lognormal(0, σ)
        (σ is then per-instance noise on top of the optimizer's fixed bias). With `parameters`
        (and measured `parameter_work`) the instance's work is one measured draw's. Serial fractions
        are those of the effective data size, scale factor × `work_multiplier` (the multiplier
        stands for data that many times larger, with the plan's morsel counts kept).
        """
        n = len(self.pipelines)
        drawn, draw = 1.0, -1
        if parameters and self.parameter_work:
            draw = int(rng.integers(len(self.parameter_work)))
            drawn = self.parameter_work[draw]
        errors = (
            rng.lognormal(0.0, estimate_error_sigma, size=n)
            if estimate_error_sigma > 0
            else np.ones(n)
        )
        if measured_estimates:
            if not self.has_measured_estimates:
                raise TemplateError(
                    f"templates.{self.name}",
                    "estimate_ratio",
                    "no measured estimates (set estimate_error to a number for a synthetic error)",
                )
            errors = errors * np.array(self.estimate_ratios(scale_factor))
        fractions = self.serial_fractions(scale_factor * work_multiplier)
        pipelines = []
        for p, error, fraction in zip(self.pipelines, errors, fractions, strict=True):
            work = drawn * work_multiplier * p.work_s_sf1 * scale_factor**p.work_exponent
            pipelines.append(
                PipelineSpec(
                    index=p.index,
                    parents=p.parents,
                    num_tasks=max(1, round(p.tasks_sf1 * scale_factor)),
                    work_s=work,
                    est_work_s=work * float(error),
                    memory_gb=p.memory_gb_sf1 * scale_factor**p.memory_exponent,
                    operator=p.operator,
                    serial_fraction=fraction,
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
            parameter_draw=draw,
        )


@dataclass(frozen=True, slots=True)
class ScalabilityModel:
    """Serial fraction by pipeline breaker, fitted on measured queries (calibrate.py): how a
    template without its own measurement scales."""

    scale_factors: tuple[float, ...]
    by_operator: Mapping[str, tuple[float, ...]]
    """Operator → serial fraction at each scale factor; "*" holds the fallback for others."""

    def fractions(self, operator: str, scale_factors: Sequence[float]) -> tuple[float, ...]:
        values = self.by_operator.get(operator, self.by_operator["*"])
        xs = np.log(self.scale_factors)
        return tuple(float(np.interp(math.log(sf), xs, values)) for sf in scale_factors)


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The templates of one file, with the provenance the calibration recorded."""

    suite: str
    engine: str
    engine_version: str
    scale_factors: tuple[float, ...]
    threads: int
    templates: dict[str, QueryTemplate]
    notes: str = ""
    """How the numbers were measured (method, which queries, fit fallbacks)."""
    scalability_scale_factors: tuple[float, ...] = ()
    """The scale factors of every pipeline's `serial_fraction` list (empty: none measured)."""
    scalability_model: ScalabilityModel | None = None
    engine_costs: Mapping[str, float] = field(default_factory=dict)
    """Engine constants measured with the templates (warm-up, spill, ...): see lsched.engines."""
    calibration: Mapping[str, Any] = field(default_factory=dict)
    """Provenance: the command, the machine's threads, the thread counts measured."""


# --- validation -----------------------------------------------------------------------------

_PIPELINE_KEYS = {
    "index",
    "parents",
    "operator",
    "work_s_sf1",
    "work_exponent",
    "tasks_sf1",
    "memory_gb_sf1",
    "memory_exponent",
    "table_scans",
    "serial_fraction",
    "estimate_ratio",
}
_PIPELINE_REQUIRED = ("parents", "operator", "work_s_sf1", "work_exponent", "tasks_sf1")
_TEMPLATE_KEYS = {"pipelines", "latency_s", "parameter_work"}
PARAMETER_WORK_RANGE = (0.01, 100.0)
"""Bounds on a parameter draw's relative work: beyond them a file is corrupt."""


class _Checker:
    """Reads one parsed file, raising TemplateError with `file: field.path: problem`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, problem: str) -> TemplateError:
        return TemplateError(self.source, field, problem)

    def number(
        self, value: Any, field: str, *, minimum: float | None = None, strict: bool
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(field, f"must be finite, got {value!r}")
        if minimum is not None and (number <= minimum if strict else number < minimum):
            raise self.fail(field, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return number

    def integer(self, value: Any, field: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.fail(field, f"must be >= {minimum}, got {value}")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        return value

    def keys(self, obj: Any, field: str, allowed: set[str], required: Sequence[str]) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(field, f"must be an object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - allowed)
        if unknown:
            raise self.fail(f"{field}.{unknown[0]}" if field else unknown[0], "unknown field")
        for key in required:
            if key not in obj:
                raise self.fail(f"{field}.{key}" if field else key, "missing")
        return obj

    def numbers(
        self, value: Any, field: str, length: int, low: float, high: float
    ) -> tuple[float, ...]:
        """A list of `length` finite numbers within [low, high]."""
        if not isinstance(value, list) or len(value) != length:
            raise self.fail(field, f"must list {length} number(s), one per scale factor")
        out = tuple(self.number(v, f"{field}[{i}]", strict=False) for i, v in enumerate(value))
        for i, v in enumerate(out):
            if not low <= v <= high:
                raise self.fail(f"{field}[{i}]", f"must be within {low:g}..{high:g}, got {v:g}")
        return out

    def exponent(self, raw: Any, field: str) -> float:
        value = self.number(raw, field, strict=False)
        low, high = EXPONENT_RANGE
        if not low <= value <= high:
            raise self.fail(field, f"must be within {low:g}..{high:g}, got {value:g}")
        return value

    def pipeline(
        self, raw: Any, field: str, position: int, sfs: int, scalability_sfs: int
    ) -> PipelineTemplate:
        obj = self.keys(raw, field, _PIPELINE_KEYS, _PIPELINE_REQUIRED)
        if "serial_fraction" in obj and not scalability_sfs:
            raise self.fail(f"{field}.serial_fraction", "needs scalability_scale_factors")
        if "index" in obj and obj["index"] != position:
            raise self.fail(f"{field}.index", f"must equal its position {position}")
        if not isinstance(obj["parents"], list):
            raise self.fail(f"{field}.parents", "must be a list of earlier pipeline positions")
        parents = []
        for parent in obj["parents"]:
            if isinstance(parent, bool) or not isinstance(parent, int):
                raise self.fail(f"{field}.parents", f"must hold integers, got {parent!r}")
            if not 0 <= parent < position:
                raise self.fail(
                    f"{field}.parents", f"parent {parent} must point to an earlier pipeline"
                )
            if parent in parents:
                raise self.fail(f"{field}.parents", f"parent {parent} listed twice")
            parents.append(parent)
        operator = self.text(obj["operator"], f"{field}.operator")
        if operator not in OPERATORS:
            raise self.fail(
                f"{field}.operator", f"unknown operator {operator!r}; one of {sorted(OPERATORS)}"
            )
        return PipelineTemplate(
            index=position,
            parents=tuple(parents),
            operator=operator,
            work_s_sf1=self.number(
                obj["work_s_sf1"], f"{field}.work_s_sf1", minimum=0, strict=True
            ),
            work_exponent=self.exponent(obj["work_exponent"], f"{field}.work_exponent"),
            tasks_sf1=self.number(obj["tasks_sf1"], f"{field}.tasks_sf1", minimum=0, strict=True),
            memory_gb_sf1=self.number(
                obj.get("memory_gb_sf1", 0.0), f"{field}.memory_gb_sf1", minimum=0, strict=False
            ),
            memory_exponent=self.exponent(
                obj.get("memory_exponent", 1.0), f"{field}.memory_exponent"
            ),
            table_scans=self.integer(obj.get("table_scans", 0), f"{field}.table_scans", minimum=0),
            serial_fraction=(
                self.numbers(
                    obj["serial_fraction"], f"{field}.serial_fraction", scalability_sfs, 0.0, 1.0
                )
                if "serial_fraction" in obj
                else ()
            ),
            estimate_ratio=(
                self.numbers(
                    obj["estimate_ratio"], f"{field}.estimate_ratio", sfs, *ESTIMATE_RATIO_RANGE
                )
                if "estimate_ratio" in obj
                else ()
            ),
        )

    def template(
        self, name: str, raw: Any, suite: str, sfs: tuple[float, ...], scal_sfs: tuple[float, ...]
    ) -> QueryTemplate:
        n_scale_factors = len(sfs)
        field = f"templates.{name}"
        if not name.strip():
            raise self.fail(field, "template name must be non-empty")
        obj = self.keys(raw, field, _TEMPLATE_KEYS, ("pipelines",))
        raw_pipelines = obj["pipelines"]
        if not isinstance(raw_pipelines, list) or not raw_pipelines:
            raise self.fail(f"{field}.pipelines", "must be a non-empty list")
        if len(raw_pipelines) > MAX_PIPELINES:
            raise self.fail(
                f"{field}.pipelines",
                f"{len(raw_pipelines)} pipelines, more than "
                f"lsched.workloads.templates.MAX_PIPELINES ({MAX_PIPELINES})",
            )
        pipelines = tuple(
            self.pipeline(p, f"{field}.pipelines[{i}]", i, len(sfs), len(scal_sfs))
            for i, p in enumerate(raw_pipelines)
        )
        for key in ("estimate_ratio", "serial_fraction"):
            has = [bool(getattr(p, key)) for p in pipelines]
            if any(has) and not all(has):
                missing = has.index(False)
                raise self.fail(
                    f"{field}.pipelines[{missing}].{key}", "missing (other pipelines have it)"
                )
        consumed = {parent for p in pipelines for parent in p.parents}
        for p in pipelines[:-1]:
            if p.index not in consumed:
                raise self.fail(
                    f"{field}.pipelines[{p.index}]",
                    "feeds no later pipeline (only the last pipeline may be the query's result)",
                )
        latency = obj.get("latency_s", [])
        if not isinstance(latency, list) or len(latency) not in (0, n_scale_factors):
            raise self.fail(f"{field}.latency_s", "must list one latency per scale factor")
        latency_s = tuple(
            self.number(v, f"{field}.latency_s[{i}]", minimum=0, strict=False)
            for i, v in enumerate(latency)
        )
        draws = obj.get("parameter_work", [])
        if not isinstance(draws, list):
            raise self.fail(f"{field}.parameter_work", "must be a list of relative works")
        parameter_work = (
            self.numbers(draws, f"{field}.parameter_work", len(draws), *PARAMETER_WORK_RANGE)
            if draws
            else ()
        )
        return QueryTemplate(
            name=name,
            suite=suite,
            pipelines=pipelines,
            latency_s=latency_s,
            parameter_work=parameter_work,
            scale_factors=sfs,
            scalability_scale_factors=scal_sfs if pipelines[0].serial_fraction else (),
        )

    def scale_factor_list(self, value: Any, field: str) -> tuple[float, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(field, "must be a non-empty list of positive numbers")
        sfs = tuple(
            self.number(v, f"{field}[{i}]", minimum=0, strict=True) for i, v in enumerate(value)
        )
        if list(sfs) != sorted(set(sfs)):
            raise self.fail(field, "must be increasing")
        return sfs

    def scalability_model(self, raw: Any, sfs: tuple[float, ...]) -> ScalabilityModel:
        obj = self.keys(raw, "scalability_model", {"operators"}, ("operators",))
        operators = obj["operators"]
        if not isinstance(operators, dict) or "*" not in operators:
            raise self.fail("scalability_model.operators", 'must map operators (and "*") to lists')
        by_operator = {}
        for op, values in operators.items():
            if op != "*" and op not in OPERATORS:
                raise self.fail(f"scalability_model.operators.{op}", "unknown operator")
            by_operator[op] = self.numbers(
                values, f"scalability_model.operators.{op}", len(sfs), 0.0, 1.0
            )
        return ScalabilityModel(sfs, by_operator)

    def mapping(self, raw: Any, field: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(field, "must be an object")
        for key, value in raw.items():
            if not isinstance(value, str | int | float | list | dict) or isinstance(value, bool):
                raise self.fail(
                    f"{field}.{key}", f"must be a number, string or list, got {value!r}"
                )
        return dict(raw)

    def template_set(self, raw: Any) -> TemplateSet:
        required = ("suite", "engine", "engine_version", "scale_factors", "threads", "templates")
        obj = self.keys(raw, "", _TOP_KEYS, required)
        if obj.get("format", FORMAT_VERSION) not in READABLE_FORMATS:
            raise self.fail(
                "format",
                f"unsupported format {obj['format']!r}; expected one of {READABLE_FORMATS}",
            )
        suite = self.text(obj["suite"], "suite")
        sfs = self.scale_factor_list(obj["scale_factors"], "scale_factors")
        scal_sfs = (
            self.scale_factor_list(obj["scalability_scale_factors"], "scalability_scale_factors")
            if "scalability_scale_factors" in obj
            else ()
        )
        model = (
            self.scalability_model(obj["scalability_model"], scal_sfs)
            if "scalability_model" in obj
            else None
        )
        if model is not None and not scal_sfs:
            raise self.fail("scalability_model", "needs scalability_scale_factors")
        costs = self.mapping(obj.get("engine_costs", {}), "engine_costs")
        for key, value in costs.items():
            self.number(value, f"engine_costs.{key}", minimum=0, strict=False)
        templates_raw = obj["templates"]
        if not isinstance(templates_raw, dict) or not templates_raw:
            raise self.fail("templates", "must be a non-empty object of name -> template")
        notes = obj.get("notes", "")
        if not isinstance(notes, str):
            raise self.fail("notes", "must be a string")
        return TemplateSet(
            suite=suite,
            engine=self.text(obj["engine"], "engine"),
            engine_version=self.text(obj["engine_version"], "engine_version"),
            scale_factors=sfs,
            threads=self.integer(obj["threads"], "threads", minimum=1),
            templates={
                name: self.template(name, t, suite, sfs, scal_sfs)
                for name, t in templates_raw.items()
            },
            notes=notes,
            scalability_scale_factors=scal_sfs,
            scalability_model=model,
            engine_costs={k: float(v) for k, v in costs.items()},
            calibration=self.mapping(obj.get("calibration", {}), "calibration"),
        )


def parse_template_set(data: Any, source: str) -> TemplateSet:
    """Validate parsed JSON; `source` names the file in error messages."""
    return _Checker(source).template_set(data)


def _parse_text(text: str, source: str) -> TemplateSet:
    return parse_template_set(parse_json(text, source, TemplateError), source)


def load_template_file(path: Path) -> TemplateSet:
    """Read and validate one template file (a user's own or a bundled one)."""
    text = read_text(
        path, max_bytes=MAX_TEMPLATE_FILE_BYTES, error=TemplateError, knob="MAX_TEMPLATE_FILE_BYTES"
    )
    return _parse_text(text, str(path))


@cache
def bundled_template_set(suite: str) -> TemplateSet:
    """The templates shipped with lsched for "tpch", "ssb" or "tpcds" (read once, cached)."""
    if suite not in BUNDLED_SUITES:
        raise TemplateError(
            "bundled templates", "suite", f"unknown suite {suite!r}; one of {list(BUNDLED_SUITES)}"
        )
    resource = resources.files("lsched.workloads") / "templates" / f"{suite}.json"
    try:
        text = resource.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(str(resource), "", f"cannot read bundled templates: {exc}") from exc
    return _parse_text(text, f"lsched/workloads/templates/{suite}.json")


SCALABILITY_MODEL_SUITE = "tpch"
"""The bundled file whose operator-type scalability model fills templates measured without
scalability (fitted on TPC-H, where a 1→24-thread measurement exists)."""


def with_modelled_scalability(template: QueryTemplate, model: ScalabilityModel) -> QueryTemplate:
    """The template with each pipeline's serial fractions from the operator-type model, on the
    model's scale factors; a template with its own measurement is returned unchanged."""
    if template.scalability_scale_factors:
        return template
    sfs = model.scale_factors
    pipelines = tuple(
        replace(p, serial_fraction=model.fractions(p.operator, sfs)) for p in template.pipelines
    )
    return replace(template, pipelines=pipelines, scalability_scale_factors=sfs)


def load_library(extra_files: Sequence[Path] = ()) -> dict[str, QueryTemplate]:
    """All bundled templates plus a user's files. A user's template replaces the bundled one
    of its name (`lsched calibrate tpch --out mine.json` measures *your* machine's tpch-q1);
    a name two of the user's files define is an error.

    Templates without measured scalability get the bundled operator-type model's."""
    library: dict[str, QueryTemplate] = {}
    for suite in BUNDLED_SUITES:
        library.update(bundled_template_set(suite).templates)
    yours: dict[str, str] = {}  # template name -> the user's file that defines it
    for path in extra_files:
        for name, template in load_template_file(Path(path)).templates.items():
            if name in yours:
                also = f"duplicate template name (also in {yours[name]})"
                raise TemplateError(str(path), f"templates.{name}", also)
            yours[name] = str(path)
            library[name] = template
    model = bundled_template_set(SCALABILITY_MODEL_SUITE).scalability_model
    if model is None:
        return library
    return {name: with_modelled_scalability(t, model) for name, t in library.items()}


def select_templates(
    library: Mapping[str, QueryTemplate], patterns: Sequence[str]
) -> list[QueryTemplate]:
    """Templates matching fnmatch patterns ("tpch-*", "ssb-q1.?", exact names), in pattern order.

    Within a pattern, matches come in natural order (tpch-q2 before tpch-q10); a template
    matched by several patterns appears once. A pattern that matches nothing is an error.
    """
    chosen: dict[str, QueryTemplate] = {}
    for pattern in patterns:
        matches = sorted(
            (name for name in library if fnmatch.fnmatchcase(name, pattern)), key=natural_key
        )
        if not matches:
            raise TemplateError("templates", f"pattern {pattern!r}", "matches no template")
        for name in matches:
            chosen.setdefault(name, library[name])
    return list(chosen.values())


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers numerically: q2 < q10, q1.2 < q1.10."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    )


# --- writing ------------------------------------------------------------------------------


def _round(value: float, digits: int = 4) -> float:
    """Significant digits: keeps shipped files small, well within the measurement noise."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def _pipeline_to_dict(p: PipelineTemplate) -> dict[str, Any]:
    data: dict[str, Any] = {
        "parents": list(p.parents),
        "operator": p.operator,
        "work_s_sf1": _round(p.work_s_sf1),
        "work_exponent": round(p.work_exponent, 3),
        "tasks_sf1": _round(p.tasks_sf1),
        "memory_gb_sf1": _round(p.memory_gb_sf1),
        "memory_exponent": round(p.memory_exponent, 3),
        "table_scans": p.table_scans,
    }
    if p.serial_fraction:
        data["serial_fraction"] = [_round(v, 3) for v in p.serial_fraction]
    if p.estimate_ratio:
        data["estimate_ratio"] = [_round(v, 3) for v in p.estimate_ratio]
    return data


_HEADER_KEYS = (
    "format",
    "suite",
    "engine",
    "engine_version",
    "scale_factors",
    "threads",
    "notes",
    "calibration",
    "engine_costs",
    "scalability_scale_factors",
    "scalability_model",
)
_TOP_KEYS = {*_HEADER_KEYS, "templates"}


def template_set_to_dict(template_set: TemplateSet) -> dict[str, Any]:
    """The JSON form of a template set (what `load_template_file` reads back)."""
    header: dict[str, Any] = {}
    if template_set.calibration:
        header["calibration"] = dict(template_set.calibration)
    if template_set.engine_costs:
        header["engine_costs"] = {k: _round(v) for k, v in template_set.engine_costs.items()}
    if template_set.scalability_scale_factors:
        header["scalability_scale_factors"] = list(template_set.scalability_scale_factors)
    if template_set.scalability_model is not None:
        header["scalability_model"] = {
            "operators": {
                op: [_round(v, 3) for v in values]
                for op, values in template_set.scalability_model.by_operator.items()
            }
        }
    return {
        "format": FORMAT_VERSION,
        "suite": template_set.suite,
        "engine": template_set.engine,
        "engine_version": template_set.engine_version,
        "scale_factors": list(template_set.scale_factors),
        "threads": template_set.threads,
        "notes": template_set.notes,
        **header,
        "templates": {
            name: {
                "latency_s": [_round(v) for v in t.latency_s],
                **(
                    {"parameter_work": [_round(v, 3) for v in t.parameter_work]}
                    if t.parameter_work
                    else {}
                ),
                "pipelines": [_pipeline_to_dict(p) for p in t.pipelines],
            }
            for name, t in template_set.templates.items()
        },
    }


def write_template_file(template_set: TemplateSet, path: Path) -> TemplateSet:
    """Write atomically, one pipeline per line (diffs of recalibrations stay readable).

    Returns the set as the file holds it (numbers rounded to 4 significant digits).
    """
    data = template_set_to_dict(template_set)
    lines = ["{"]
    for key in _HEADER_KEYS:
        if key in data:
            lines.append(f"  {json.dumps(key)}: {json.dumps(data[key])},")
    lines.append('  "templates": {')
    names = list(data["templates"])
    for i, name in enumerate(names):
        template = data["templates"][name]
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append(f'      "latency_s": {json.dumps(template["latency_s"])},')
        if "parameter_work" in template:
            lines.append(f'      "parameter_work": {json.dumps(template["parameter_work"])},')
        lines.append('      "pipelines": [')
        pipelines = template["pipelines"]
        for j, p in enumerate(pipelines):
            comma = "," if j < len(pipelines) - 1 else ""
            lines.append(f"        {json.dumps(p, separators=(',', ':'))}{comma}")
        lines.append("      ]")
        lines.append("    }" + ("," if i < len(names) - 1 else ""))
    lines.append("  }")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    written = _parse_text(text, str(path))  # never write a file the loader would reject
    atomic_write_text(path, text)
    return written
