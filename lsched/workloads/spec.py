"""The scenario's `workload:` section: pydantic models at the boundary, frozen dataclasses inside.

A workload is a mixture of *streams*. Each stream is an arrival process plus what it sends:
templates (a weighted `mix` of name patterns, or a fixed `templates` list whose entries fire in
order), scale factors, a query class, priority, deadline and estimate error. For example:

    workload:
      queries: 200              # stop after this many arrivals, or
      duration_s: 3600          # at this horizon (at least one of the two)
      estimate_error: 0.5       # default σ of the optimizer's lognormal error
      template_files: []        # extra template JSON files, added to the bundled library
      streams:
        - name: adhoc
          arrivals: {process: poisson, rate_per_s: 0.2}
          mix: [{templates: "tpch-*", weight: 0.8}, {templates: "ssb-*", weight: 0.2}]
          scale_factors: [{value: 10, weight: 0.7}, {value: 100, weight: 0.3}]
        - name: dashboards
          class: dashboard
          arrivals: {process: periodic, period_s: 300, jitter_s: 10}
          templates: [tpch-q1, tpch-q6, tpch-q14]   # every firing sends these three
          priority: 2.0
          deadline_s: 30

`WorkloadModel.model_validate(data).to_spec()` gives the `WorkloadSpec` the generator reads.
Validation errors keep pydantic's loc paths; `format_loc` renders one as `streams[0].arrivals.x`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from lsched.errors import LschedError
from lsched.workloads.arrivals import (
    DEFAULT_PEAK_AT_S,
    SECONDS_PER_DAY,
    ArrivalProcess,
    Batch,
    Bursty,
    Diurnal,
    NightlyEtl,
    Periodic,
    Poisson,
    Window,
)

DEFAULT_ESTIMATE_ERROR = 0.5
"""σ of the synthetic lognormal error between the optimizer's work estimate and the truth, for
templates without measured estimates: typically off by about 1.6×, sometimes 3× or more."""
MEASURED = "measured"
"""`estimate_error: measured`: each pipeline's estimate is DuckDB's own (the template's
measured estimate ratio), times lognormal(0, estimate_noise)."""
AUTO = "auto"
"""The default: measured estimates where a template has them, else the synthetic σ."""
EstimateError = float | Literal["measured", "auto"]
MAX_ESTIMATE_SIGMA = 10.0
"""Largest σ of an estimate error or noise (bundled: 1.5): lognormal factors of e^±60 are
already meaningless, and far beyond, estimates overflow to infinity or vanish to 0."""
MAX_WORK_MULTIPLIER = 1e6
"""Largest `work_multiplier` (bundled: 850)."""
MAX_PRIORITY = 1e6
"""Largest `priority` (and smallest 1 / this): weights beyond overflow the share rules."""


def number_or_word(*words: str, high: float | None = None) -> BeforeValidator:
    """A field that takes a number >= 0 or one of `words`, with one message for both (a plain
    union would report the problem once per member, under pydantic's member names)."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and value in words:
            return value
        choices = " or ".join(repr(w) for w in words)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number >= 0 or {choices}")
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"must be a finite number >= 0 or {choices}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high:g} or {choices}")
        return value

    return BeforeValidator(check)


EstimateSetting = Annotated[
    float | Literal["measured", "auto"], number_or_word(MEASURED, AUTO, high=MAX_ESTIMATE_SIGMA)
]


class WorkloadError(LschedError):
    """A workload that passed validation but cannot be generated (e.g. a pattern matching nothing).

    The message starts with the field path inside `workload:`; the scenario loader adds the file.
    """


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _fail(loc: tuple[str | int, ...], message: str, value: Any = None) -> ValidationError:
    """A validation error at `loc` relative to the model being validated (pydantic nests it)."""
    error = PydanticCustomError("value_error", message)  # type: ignore[call-arg]
    return ValidationError.from_exception_data(
        "workload", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


# ---------------------------------------------------------------- arrival processes


class BatchModel(_Model):
    """All at once: `count` queries at `at_s` (default: one per fixed template, else `queries`)."""

    process: Literal["batch"]
    at_s: float = Field(0.0, ge=0)
    count: int | None = Field(None, ge=1)

    def to_process(self) -> Batch:
        return Batch(at_s=self.at_s, count=self.count)


class PoissonModel(_Model):
    process: Literal["poisson"]
    rate_per_s: float = Field(gt=0)

    def to_process(self) -> Poisson:
        return Poisson(rate_per_s=self.rate_per_s)


class BurstyModel(_Model):
    """On/off Markov-modulated Poisson: bursts of `rate_on_per_s` separated by lulls."""

    process: Literal["bursty"]
    rate_on_per_s: float = Field(gt=0)
    rate_off_per_s: float = Field(0.0, ge=0)
    mean_on_s: float = Field(gt=0)
    mean_off_s: float = Field(gt=0)

    def to_process(self) -> Bursty:
        return Bursty(
            rate_on_per_s=self.rate_on_per_s,
            rate_off_per_s=self.rate_off_per_s,
            mean_on_s=self.mean_on_s,
            mean_off_s=self.mean_off_s,
        )


class DiurnalModel(_Model):
    """A daily cycle between `base_rate_per_s` and `peak_rate_per_s` (at `peak_at_s`)."""

    process: Literal["diurnal"]
    base_rate_per_s: float = Field(ge=0)
    peak_rate_per_s: float = Field(gt=0)
    period_s: float = Field(SECONDS_PER_DAY, gt=0)
    peak_at_s: float = Field(DEFAULT_PEAK_AT_S, ge=0)

    @model_validator(mode="after")
    def _peak_above_base(self) -> DiurnalModel:
        if self.peak_rate_per_s < self.base_rate_per_s:
            raise _fail(
                ("peak_rate_per_s",),
                f"must be >= base_rate_per_s ({self.base_rate_per_s})",
                self.peak_rate_per_s,
            )
        return self

    def to_process(self) -> Diurnal:
        return Diurnal(
            base_rate_per_s=self.base_rate_per_s,
            peak_rate_per_s=self.peak_rate_per_s,
            period_s=self.period_s,
            peak_at_s=self.peak_at_s,
        )


class PeriodicModel(_Model):
    """Every `period_s` from `offset_s`, `count` queries (default: the stream's fixed templates)."""

    process: Literal["periodic"]
    period_s: float = Field(gt=0)
    jitter_s: float = Field(0.0, ge=0)
    offset_s: float = Field(0.0, ge=0)
    count: int | None = Field(None, ge=1)

    def to_process(self) -> Periodic:
        return Periodic(
            period_s=self.period_s, jitter_s=self.jitter_s, offset_s=self.offset_s, count=self.count
        )


_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class EtlModel(_Model):
    """Nightly ETL: each day at `time_of_day` ("02:00" or seconds after midnight), `count`
    queries spread uniformly over `spread_s` (default count: the stream's fixed templates)."""

    process: Literal["etl"]
    time_of_day: float = Field(ge=0)
    count: int | None = Field(None, ge=1)
    spread_s: float = Field(0.0, ge=0)
    day_s: float = Field(SECONDS_PER_DAY, gt=0)

    @field_validator("time_of_day", mode="before")
    @classmethod
    def _parse_clock(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _TIME_OF_DAY.match(value.strip())
            if not match:
                raise ValueError(f"expected HH:MM[:SS] or seconds, got {value!r}")
            hours, minutes, seconds = (int(g or 0) for g in match.groups())
            if hours >= 24 or minutes >= 60 or seconds >= 60:
                raise ValueError(f"not a time of day: {value!r}")
            return hours * 3600 + minutes * 60 + seconds
        return value

    @model_validator(mode="after")
    def _within_day(self) -> EtlModel:
        if self.time_of_day >= self.day_s:
            raise _fail(("time_of_day",), f"must be < day_s ({self.day_s})", self.time_of_day)
        return self

    def to_process(self) -> NightlyEtl:
        return NightlyEtl(
            time_of_day_s=self.time_of_day,
            count=self.count,
            spread_s=self.spread_s,
            day_s=self.day_s,
        )


ArrivalModel = Annotated[
    BatchModel | PoissonModel | BurstyModel | DiurnalModel | PeriodicModel | EtlModel,
    Field(discriminator="process"),
]
ARRIVAL_PROCESSES = ("batch", "poisson", "bursty", "diurnal", "periodic", "etl")


# ---------------------------------------------------------------- streams and the workload


NO_NUL = "^[^\x00]*$"
"""A file path: any text but a NUL byte, which no file system takes (it failed when opened,
as "embedded null byte", naming no field)."""
MAX_WEIGHT = 1e9
"""Largest share weight (weights are relative: two of 1e308 overflowed their sum)."""
SCALE_FACTOR_RANGE = (1e-4, 1e5)
"""Scale factors a stream may draw: the templates are measured at 0.1–10 (SF 100 for the
thread-scaling table) and extrapolate by power laws; at 1e-300 a query's work rounded to 0."""


class MixEntryModel(_Model):
    """A weighted share of a stream: a template drawn uniformly among the patterns' matches."""

    templates: list[str] = Field(min_length=1)
    weight: float = Field(1.0, gt=0, le=MAX_WEIGHT)

    @field_validator("templates", mode="before")
    @classmethod
    def _one_pattern(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ScaleFactorModel(_Model):
    value: float = Field(ge=SCALE_FACTOR_RANGE[0], le=SCALE_FACTOR_RANGE[1])
    weight: float = Field(1.0, gt=0, le=MAX_WEIGHT)


class StreamModel(_Model):
    """One arrival process and what it sends. Exactly one of `mix` and `templates`."""

    name: str = Field(min_length=1)
    query_class: str | None = Field(None, alias="class", min_length=1)
    """Query class for metrics (dashboard, adhoc, etl, ...); defaults to the stream's name."""
    arrivals: ArrivalModel
    mix: list[MixEntryModel] | None = Field(None, min_length=1)
    templates: list[str] | None = Field(None, min_length=1)
    """A fixed list (names or patterns, expanded in order). An arrival sends entry slot % len: one
    of each per batch, periodic firing or ETL burst (whose count defaults to the list's length);
    round robin for the open processes (poisson, bursty, diurnal)."""
    scale_factors: list[ScaleFactorModel] = Field(
        default_factory=lambda: [ScaleFactorModel(value=1.0)], min_length=1
    )
    estimate_error: EstimateSetting | None = None
    """σ of a synthetic lognormal estimate error, `measured` or `auto`; defaults to the
    workload's `estimate_error`."""
    estimate_noise: float | None = Field(None, ge=0, le=MAX_ESTIMATE_SIGMA)
    """σ of per-instance noise on top of measured estimates; defaults to the workload's."""
    priority: float = Field(1.0, ge=1 / MAX_PRIORITY, le=MAX_PRIORITY)
    deadline_s: float | None = Field(None, gt=0)
    work_multiplier: float = Field(1.0, gt=0, le=MAX_WORK_MULTIPLIER)
    start_s: float = Field(0.0, ge=0)
    """The stream starts here; its process's clock (and time of day) is shifted by it."""
    end_s: float | None = Field(None, gt=0)
    """The stream sends nothing from here on (absolute time)."""

    @field_validator("mix", mode="before")
    @classmethod
    def _mix_shorthand(cls, value: Any) -> Any:
        """`mix: "tpch-*"` and `mix: ["tpch-*", ...]` mean equal weights."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"templates": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("templates", mode="before")
    @classmethod
    def _templates_shorthand(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("scale_factors", mode="before")
    @classmethod
    def _scale_factor_shorthand(cls, value: Any) -> Any:
        """`scale_factors: 10` and `scale_factors: [1, 10]` mean equal weights."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list):
            return [
                {"value": v} if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StreamModel:
        if (self.mix is None) == (self.templates is None):
            raise _fail(("mix",), "set exactly one of mix (weighted) and templates (fixed list)")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise _fail(("end_s",), f"must be > start_s ({self.start_s})", self.end_s)
        if (
            self.mix is not None
            and isinstance(self.arrivals, EtlModel)
            and self.arrivals.count is None
        ):
            raise _fail(("arrivals", "etl", "count"), "required when the stream uses a mix")
        return self

    def to_spec(self, default_estimate_error: EstimateError, default_noise: float) -> StreamSpec:
        process: ArrivalProcess = self.arrivals.to_process()
        if self.start_s > 0 or self.end_s is not None:
            process = Window(process, start_s=self.start_s, end_s=self.end_s)
        error = self.estimate_error
        return StreamSpec(
            name=self.name,
            query_class=self.query_class or self.name,
            arrivals=process,
            mix=tuple(TemplateChoice(tuple(m.templates), m.weight) for m in self.mix or ()),
            templates=tuple(self.templates or ()),
            scale_factors=tuple(ScaleFactorChoice(s.value, s.weight) for s in self.scale_factors),
            estimate_error=default_estimate_error if error is None else error,
            estimate_noise=default_noise if self.estimate_noise is None else self.estimate_noise,
            priority=self.priority,
            deadline_s=self.deadline_s,
            work_multiplier=self.work_multiplier,
        )


class TraceModel(_Model):
    """`workload.trace:`: replay a query log (CSV or Parquet, Redset's columns or plain ones)."""

    path: str = Field(min_length=1, pattern=NO_NUL)
    """The log; a relative path resolves against the scenario file's folder."""
    time_scale: float = Field(1.0, gt=0)
    """Multiplies arrival gaps: 0.5 replays the log twice as fast."""
    threads: int = Field(8, ge=1)
    """A record's work is its execution time × this many thread-seconds."""
    work_per_mb_s: float = Field(1e-3, gt=0)
    """Thread-seconds per MB scanned, for records without an execution time."""
    max_records: int | None = Field(None, ge=1)
    instance_id: str | int | None = None
    """Keep one cluster of a multi-cluster log (Redset's instance_id)."""
    estimate_error: float | None = Field(None, ge=0, le=MAX_ESTIMATE_SIGMA)
    """σ of the optimizer's error for replayed queries; null: the workload's."""
    templates: list[str] | None = Field(None, min_length=1)
    """Patterns ("tpch-*", names) of the templates a record may map onto by shape; null:
    every template of the library. Replay by template names its own."""
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    """The log's SHA-256, as a run recorded it in its `scenario.yaml`: loading refuses a log
    whose contents changed since. Null: not checked."""

    @field_validator("templates", mode="before")
    @classmethod
    def _one_pattern(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WorkloadModel(_Model):
    """The scenario's `workload:` section."""

    queries: int | None = Field(None, ge=1)
    """Stop after this many arrivals (all streams together)."""
    duration_s: float | None = Field(None, gt=0)
    """Stop at this horizon: only arrivals before it are generated."""
    estimate_error: EstimateSetting = AUTO
    """How the optimizer errs: `auto` (measured where a template has it, else lognormal with
    σ = DEFAULT_ESTIMATE_ERROR), `measured` (an error for a template without), or a number σ
    for the synthetic lognormal on every template (the model before measured estimates)."""
    estimate_noise: float = Field(0.0, ge=0, le=MAX_ESTIMATE_SIGMA)
    """σ of per-instance lognormal noise on top of measured estimates (0: the optimizer's
    error repeats exactly for a template at a scale factor, as DuckDB's does)."""
    parameters: Literal["measured", "default"] = "measured"
    """`measured`: each instance's work is one of its template's measured parameter draws
    (TPC-H's and SSB's substitution rules); `default`: every instance runs the default
    parameters' work (the model before parameter-dependent work)."""
    template_files: list[Annotated[str, Field(min_length=1, pattern=NO_NUL)]] = Field(
        default_factory=list
    )
    streams: list[StreamModel] = Field(default_factory=list)
    trace: TraceModel | None = None
    """A replayed query log, merged with the streams by arrival time."""

    @model_validator(mode="after")
    def _bounded(self) -> WorkloadModel:
        if not self.streams and self.trace is None:
            raise _fail(("streams",), "set streams, a trace, or both", value=self.streams)
        if self.queries is None and self.duration_s is None and self.streams:
            raise _fail(
                ("queries",), "set queries, duration_s or both (streams never stop on their own)"
            )
        seen: dict[str, int] = {}
        for i, stream in enumerate(self.streams):
            if stream.name in seen:
                raise _fail(
                    ("streams", i, "name"),
                    f"duplicate stream name {stream.name!r} (also streams[{seen[stream.name]}])",
                    stream.name,
                )
            seen[stream.name] = i
            arrivals = stream.arrivals
            if (
                isinstance(arrivals, BatchModel)
                and arrivals.count is None
                and stream.templates is None
                and self.queries is None
            ):
                raise _fail(
                    ("streams", i, "arrivals", "batch", "count"),
                    "required when the stream uses a mix and the workload sets no queries",
                )
        return self

    def to_spec(self, base_dir: Path | None = None) -> WorkloadSpec:
        """Plain data for the generator; relative template files resolve against `base_dir`."""

        def resolve(name: str) -> Path:
            try:
                path = Path(name).expanduser()
            except RuntimeError:  # `~someone` with no such user: "no such file" names it later
                path = Path(name)
            return base_dir / path if base_dir is not None and not path.is_absolute() else path

        trace = None
        if self.trace is not None:
            t = self.trace
            trace = TraceSpec(
                path=resolve(t.path),
                time_scale=t.time_scale,
                threads=t.threads,
                work_per_mb_s=t.work_per_mb_s,
                max_records=t.max_records,
                instance_id=t.instance_id,
                templates=tuple(t.templates or ()),
                sha256=t.sha256,
                estimate_error=(
                    synthetic_sigma(self.estimate_error)
                    if t.estimate_error is None
                    else t.estimate_error
                ),
            )
        return WorkloadSpec(
            streams=tuple(
                s.to_spec(self.estimate_error, self.estimate_noise) for s in self.streams
            ),
            queries=self.queries,
            duration_s=self.duration_s,
            template_files=tuple(resolve(f) for f in self.template_files),
            trace=trace,
            parameters=self.parameters == "measured",
        )


def synthetic_sigma(estimate_error: EstimateError) -> float:
    """The synthetic σ an estimate setting means for a template without measurements (a
    replayed trace's shape-mapped records included)."""
    return DEFAULT_ESTIMATE_ERROR if isinstance(estimate_error, str) else estimate_error


def format_loc(loc: Sequence[str | int]) -> str:
    """A pydantic loc as the field path the user wrote.

    ("streams", 0, "arrivals", "poisson", "rate_per_s") → "streams[0].arrivals.rate_per_s": the
    arrival process's tag, which pydantic adds for the discriminated union, is dropped.
    """
    parts: list[str] = []
    previous: str | int | None = None
    for part in loc:
        if previous == "arrivals" and part in ARRIVAL_PROCESSES:
            previous = part
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
        previous = part
    return "".join(parts)


# ---------------------------------------------------------------- plain data for inner code


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    """A share of a stream's mix: template name patterns, and its weight among the shares."""

    patterns: tuple[str, ...]
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ScaleFactorChoice:
    value: float
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream of the mixture. Either `mix` (weighted draw) or `templates` (fixed, by slot)."""

    name: str
    query_class: str
    arrivals: ArrivalProcess
    mix: tuple[TemplateChoice, ...] = ()
    templates: tuple[str, ...] = ()
    scale_factors: tuple[ScaleFactorChoice, ...] = (ScaleFactorChoice(1.0),)
    estimate_error: EstimateError = AUTO
    """A synthetic σ, MEASURED or AUTO (see WorkloadModel.estimate_error)."""
    estimate_noise: float = 0.0
    priority: float = 1.0
    deadline_s: float | None = None
    work_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if bool(self.mix) == bool(self.templates):
            raise ValueError(f"stream {self.name!r}: set exactly one of mix and templates")
        if not self.scale_factors:
            raise ValueError(f"stream {self.name!r}: scale_factors is empty")


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """A query log to replay (see lsched.workloads.trace)."""

    path: Path
    time_scale: float
    threads: int
    work_per_mb_s: float
    max_records: int | None
    instance_id: str | int | None
    estimate_error: float
    templates: tuple[str, ...] = ()
    """Patterns of the templates records map onto by shape (empty: every template)."""
    sha256: str | None = None
    """The contents the log must have (None: any)."""


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What the generator draws: streams and/or a replayed trace, cut at `queries` arrivals
    and/or `duration_s`."""

    streams: tuple[StreamSpec, ...]
    queries: int | None = None
    duration_s: float | None = None
    template_files: tuple[Path, ...] = ()
    trace: TraceSpec | None = None
    parameters: bool = False
    """Instances draw their template's measured parameter variation (see WorkloadModel)."""

    def __post_init__(self) -> None:
        if self.queries is None and self.duration_s is None and self.streams:
            raise ValueError("a workload with streams needs queries, duration_s or both")
        if not self.streams and self.trace is None:
            raise ValueError("a workload needs at least one stream or a trace")
