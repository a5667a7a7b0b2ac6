"""Scenario files: one YAML document naming a cluster, a workload, the agents to compare and limits.

A file is validated once, at the boundary, by the pydantic models below (unknown keys are
errors), and becomes a frozen `Scenario` that inner code trusts. Every problem is reported as a
`ScenarioError` with one line, "FILE: field.path: problem".

Randomness: seed K of a scenario owns two independent streams, `default_rng([K, stream])` —
the workload (`queries(K)`, identical for every agent) and execution noise (`execution_rng(K)`:
task durations and node failures). Agents draw from their own stream (`agent_rng()`), rewound
on every reset. Training and tuning use seeds from `train_seed_offset` upwards, a range
evaluation never touches.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from lsched.documents import load_mapping, unknown_key_message, validation_problem
from lsched.engines import DEFAULT_ENGINE, MEASURED, engine_preset
from lsched.errors import ScenarioError
from lsched.workloads.generate import (
    check_size,
    check_templates,
    check_trace,
    file_sha256,
    generate_workload,
)
from lsched.workloads.spec import (
    WorkloadError,
    WorkloadModel,
    WorkloadSpec,
    format_loc,
    number_or_word,
)
from lsched.workloads.templates import QueryTemplate, TemplateError, load_library
from lsched.workloads.trace import TraceError, mapping_library
from sim.budget import Budget, BudgetExceeded
from sim.budget import check_size as check_run_size
from sim.model import CLUSTER_BOUNDS, FAULT_BOUNDS, Bound, ClusterConfig, FaultConfig, QuerySpec

WORKLOAD_STREAM = 0
"""SeedSequence key of the workload stream: `default_rng([seed, WORKLOAD_STREAM])`."""
EXECUTION_STREAM = 1
"""SeedSequence key of the execution-noise stream (task durations, failures)."""
AGENT_STREAM = 2
"""SeedSequence key of the agents' own draws (the random baseline, sampling policies)."""
TRAIN_SEED_OFFSET = 1_000_000
"""Training and tuning seeds start here; evaluation seeds must stay below."""

DEFAULT_AGENTS = ("fifo", "sjf", "srpt", "fair", "cpf")
"""Agents compared when a scenario lists none."""

SCENARIO_SUFFIXES = (".yaml", ".yml")
_BUNDLED_DIRS = (
    Path(__file__).resolve().parent / "scenarios",  # installed as package data
    Path(__file__).resolve().parent.parent / "scenarios",  # a source checkout
)


# --------------------------------------------------------------------------- file schema
class _Strict(BaseModel):
    """Strict at the boundary: no bool for a number, no "10" for 10, no infinite settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


OverheadSetting = Annotated[float | Literal["measured"], number_or_word(MEASURED)]


def _ranged(bound: Bound, default: Any = None) -> Any:
    return Field(default, **bound.field_constraints())


class _ClusterBase(_Strict):
    engine: Literal["spark", "duckdb"] = DEFAULT_ENGINE

    def to_config(self, faults: FaultConfig) -> ClusterConfig:
        settings = dict(engine_preset(self.engine).settings)
        for key, value in self.model_dump(exclude={"engine"}).items():
            if value is not None:
                settings[key] = None if value == MEASURED else value
        return ClusterConfig(**settings, faults=faults)


_CLUSTER_TYPES = get_type_hints(ClusterConfig)
ClusterModel = create_model(  # type: ignore[call-overload]
    "ClusterModel",
    __base__=_ClusterBase,
    __doc__="""The `cluster:` section, built from sim.model.ClusterConfig and CLUSTER_BOUNDS
    (one schema): a field left out takes the engine preset's value (lsched.engines);
    `parallel_overhead` also takes `measured` (each pipeline's own serial fraction).""",
    **{
        name: (_CLUSTER_TYPES[name] | None, _ranged(bound))
        for name, bound in CLUSTER_BOUNDS.items()
        if name != "parallel_overhead"
    },
    parallel_overhead=(OverheadSetting | None, None),  # number_or_word checks its range
)


_FAULTS = FaultConfig()
FaultsModel = create_model(  # type: ignore[call-overload]
    "FaultsModel",
    __base__=_Strict,
    __doc__="The `simulation.faults:` section (sim.model.FaultConfig; MTBF 0 turns faults off).",
    **{
        name: (float, _ranged(bound, getattr(_FAULTS, name)))
        for name, bound in FAULT_BOUNDS.items()
    },
)


_BUDGET = Budget()
BudgetModel = create_model(  # type: ignore[call-overload]
    "BudgetModel",
    __base__=_Strict,
    __doc__="The `simulation.budget:` section (sim.budget.Budget: one run's upper bounds).",
    **{
        name: (kind, Field(getattr(_BUDGET, name), gt=0))
        for name, kind in get_type_hints(Budget).items()
    },
)


class SimulationModel(_Strict):
    faults: FaultsModel = FaultsModel()
    oracle: bool = False
    """Let schedulers read true pipeline work (an upper-bound study, not a real database)."""
    budget: BudgetModel = BudgetModel()


class EnvModel(_Strict):
    max_queries: int | None = Field(None, ge=1)
    max_pipelines_per_query: int | None = Field(None, ge=1)
    parallelism_levels: int = Field(8, ge=1)
    observation_budget: int = Field(50_000, ge=1)
    window_margin: float = Field(1.5, ge=1.0, allow_inf_nan=False)


def _agent_item(value: Any) -> Any:
    """`fair` is shorthand for `{name: fair}`."""
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        raise ValueError("expected an agent name or a mapping {name: NAME, OPTION: VALUE, ...}")
    return value


class AgentModel(BaseModel):
    """One agent to compare: a registry name plus knobs passed to its constructor.

    Extra keys are allowed here on purpose: they are the agent's options, which the agent
    registry (not the scenario schema) knows and checks.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)


MAX_NAME_CHARS = 200
"""Longest scenario name: it titles every plot, and a 200,000-character one took minutes to
lay out."""
MAX_DESCRIPTION_CHARS = 4_000
"""Longest scenario description: a paragraph or two, shown under the report's title."""


class ScenarioModel(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    cluster: ClusterModel = ClusterModel()
    workload: WorkloadModel
    simulation: SimulationModel = SimulationModel()
    agents: list[Annotated[AgentModel, BeforeValidator(_agent_item)]] = Field(
        default_factory=lambda: [AgentModel(name=n) for n in DEFAULT_AGENTS], min_length=1
    )
    env: EnvModel = EnvModel()


# --------------------------------------------------------------------------- plain data
@dataclass(frozen=True, slots=True)
class EnvLimits:
    """Sizes of the Gymnasium environment's fixed-shape observation and action spaces.

    None means "sized from the scenario" (lsched.env.sizing): the largest plan among the
    workload's templates, and a window of queries that fits the scenario's load within
    `observation_budget` values.
    """

    max_queries: int | None = None
    """The query window: the oldest this many queries in the system are observed and
    schedulable; younger ones wait outside it and enter as room frees."""
    max_pipelines_per_query: int | None = None
    """Pipelines per query in the observation; a larger plan is an error naming this knob."""
    parallelism_levels: int = 8
    """Thread counts an action chooses from with `parallelism="levels"`."""
    observation_budget: int = 50_000
    """Most values a sized observation may hold; the window shrinks to fit (small enough
    for an MLP policy: SB3's default MultiInputPolicy then has about 1M parameters)."""
    window_margin: float = 1.5
    """Window = this × the peak number of queries in the system under `fair` on seed 0."""


@dataclass(frozen=True, slots=True)
class AgentChoice:
    """An agent name from the registry and the options its constructor receives."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How results name this agent: `fair`, or `fair[max_parallelism=8]` with options."""
        if not self.options:
            return self.name
        knobs = ",".join(f"{key}={value}" for key, value in sorted(self.options.items()))
        return f"{self.name}[{knobs}]"


@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated scenario: what inner code (runner, env, sweeps) reads."""

    name: str
    description: str
    cluster: ClusterConfig
    workload: WorkloadSpec
    templates: Mapping[str, QueryTemplate]
    """The template library the workload draws from (bundled plus the scenario's own files)."""
    oracle: bool
    agents: tuple[AgentChoice, ...]
    env: EnvLimits
    source: str
    """The file it came from (bundled ones too), named by error messages."""
    document: Mapping[str, Any]
    """The raw file contents, kept so `with_overrides` can re-validate a changed copy."""
    base_dir: Path | None = None
    """Folder relative paths in the file (template files, traces) are resolved against."""
    train_seed_offset: int = TRAIN_SEED_OFFSET
    budget: Budget = field(default_factory=Budget)
    """Upper bounds on one run (the file's `simulation.budget:`), checked before and while
    every simulation of this scenario runs."""
    agent_cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    """Agents the runner built for this scenario, by label (built and tuned once, reset per
    run). Lives and dies with the scenario; never pickled, so workers build their own."""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "agent_cache": {}}

    def queries(self, seed: int) -> tuple[QuerySpec, ...]:
        """The workload of seed `seed`: the same queries for every agent."""
        try:
            return generate_workload(self.workload, self.templates, self.workload_rng(seed))
        except TraceError as error:  # found replaying (a log of cached records only)
            raise ScenarioError(self.source, "workload.trace", str(error)) from None

    def check_size(self, queries: Sequence[QuerySpec]) -> None:
        """Refuse (ScenarioError naming the budget knob) a draw too big to simulate."""
        try:
            check_run_size(queries, self.cluster, self.budget)
        except BudgetExceeded as error:
            raise budget_error(self.source, error) from None

    def workload_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([_check_seed(seed), WORKLOAD_STREAM])

    def execution_rng(self, seed: int) -> np.random.Generator:
        """Execution noise of seed `seed`, independent of the workload stream."""
        return np.random.default_rng([_check_seed(seed), EXECUTION_STREAM])

    def agent_rng(self) -> np.random.Generator:
        """The agents' own stream (the random baseline): one per scenario, not per seed.

        Agents are built once and reused across seeds, rewinding their state on `reset`.
        """
        return np.random.default_rng([AGENT_STREAM])

    def train_seeds(self, count: int) -> tuple[int, ...]:
        """`count` training/tuning seeds, disjoint from every evaluation seed."""
        return tuple(range(self.train_seed_offset, self.train_seed_offset + count))

    def agent(self, name: str) -> AgentChoice:
        """The scenario's entry for `name` (with its knobs), or `name` without options."""
        for choice in self.agents:
            if choice.label == name:
                return choice
        for choice in self.agents:
            if choice.name == name:
                return choice
        return AgentChoice(name)

    def with_overrides(self, dotted: Mapping[str, Any]) -> Scenario:
        """A copy with settings replaced, e.g. `{"cluster.nodes": 4}`, validated again.

        Errors name the file "(with overrides)", since the file itself may be fine.
        """
        document = copy.deepcopy(dict(self.document))
        try:
            for path, value in dotted.items():
                _set_dotted(document, path, value, self.source)
            return scenario_from_document(document, self.source, self.base_dir)
        except ScenarioError as error:
            source = f"{self.source} (with overrides)"
            raise ScenarioError(source, error.field, error.problem) from None


def budget_error(source: str, error: BudgetExceeded) -> ScenarioError:
    """A budget refusal as a scenario error naming the knob to raise."""
    return ScenarioError(
        source,
        f"simulation.budget.{error.knob}",
        f"{error.problem}; raise simulation.budget.{error.knob} if the run is meant to be this big",
    )


def _check_seed(seed: int) -> int:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _set_dotted(document: dict[str, Any], path: str, value: Any, source: str) -> None:
    keys = path.split(".")
    node: Any = document
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = _list_item(node, key, ".".join(keys[: depth + 1]), source)
            if not isinstance(node, dict | list):  # `agents.0` may be a bare name
                raise ScenarioError(source, ".".join(keys[: depth + 1]), "is not a section")
            continue
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict | list):
            raise ScenarioError(source, ".".join(keys[: depth + 1]), "is not a section")
        node = child
    if isinstance(node, list):
        index = int(keys[-1]) if keys[-1].isdigit() else -1
        if not 0 <= index < len(node):
            raise ScenarioError(source, path, _no_item(len(node)))
        node[index] = value
    elif isinstance(node, dict):
        node[keys[-1]] = value
    else:
        raise ScenarioError(source, ".".join(keys[:-1]), "is not a section")


def _no_item(count: int) -> str:
    """A list item a dotted path could not find: items go by index, not name."""
    if not count:
        return "no such list item (the list is empty)"
    return f"no such list item (a list's items go by index: 0 to {count - 1})"


def _list_item(items: list[Any], key: str, where: str, source: str) -> Any:
    if not key.isdigit() or int(key) >= len(items):
        raise ScenarioError(source, where, _no_item(len(items)))
    return items[int(key)]


# --------------------------------------------------------------------------- loading
def bundled_scenarios() -> dict[str, Path]:
    """Scenario name → file, for the files shipped with lsched."""
    found: dict[str, Path] = {}
    for folder in _BUNDLED_DIRS:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in SCENARIO_SUFFIXES:
                    found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A bundled scenario by name (`tpch-streaming`) or a scenario file by path."""
    path = Path(name_or_path)
    if path.is_file():
        return _load_file(path)
    bundled = bundled_scenarios()
    if str(name_or_path) in bundled:
        return _load_file(bundled[str(name_or_path)])
    if path.is_dir():
        raise ScenarioError(str(name_or_path), "", "a folder, not a scenario file (YAML)")
    if path.exists():
        raise ScenarioError(str(name_or_path), "", "not a regular file (a device or pipe)")
    if path.suffix in SCENARIO_SUFFIXES or "/" in str(name_or_path):
        raise ScenarioError(str(name_or_path), "", "no such file")
    with_suffix = [f"{name_or_path}{s}" for s in SCENARIO_SUFFIXES if Path(f"{path}{s}").is_file()]
    if with_suffix:
        raise ScenarioError(
            str(name_or_path),
            "",
            f"no such file or bundled scenario; did you mean {with_suffix[0]}?",
        )
    raise ScenarioError(
        str(name_or_path),
        "",
        "no such file or bundled scenario (bundled: " + ", ".join(bundled) + ")",
    )


def _load_file(path: Path) -> Scenario:
    document = load_mapping(path, error=ScenarioError)
    return scenario_from_document(document, str(path), path.resolve().parent)


def scenario_from_document(
    document: Mapping[str, Any], source: str, base_dir: Path | None = None
) -> Scenario:
    """Validate a parsed scenario document (a YAML file's contents) into a Scenario."""
    if "scenarios" in document and "workload" not in document:  # the other kind of file
        raise ScenarioError(
            source,
            "",
            "a sweep file (it lists scenarios), not a scenario: run it with lsched sweep",
        )
    try:
        model = ScenarioModel.model_validate(document)
    except ValidationError as error:
        raise _validation_error(source, error) from None
    workload = model.workload.to_spec(base_dir=base_dir)
    try:
        templates = load_library(workload.template_files)
    except TemplateError as error:
        raise ScenarioError(source, "workload.template_files", str(error)) from None
    try:
        check_templates(workload, templates)
    except WorkloadError as error:
        raise ScenarioError(source, "", f"workload.{error}") from None
    if workload.trace is not None:
        try:
            mapping_library(templates, workload.trace.templates)
        except TraceError as error:
            raise ScenarioError(source, "workload.trace.templates", str(error)) from None
    workload = _with_trace_contents(source, workload)
    try:
        check_trace(workload, templates)
    except (TraceError, OSError) as error:
        raise ScenarioError(source, "workload.trace.path", str(error)) from None
    cluster = model.cluster.to_config(FaultConfig(**model.simulation.faults.model_dump()))
    budget = Budget(**model.simulation.budget.model_dump())
    try:
        check_size(workload, templates, budget)
    except WorkloadError as error:
        raise ScenarioError(source, "", f"workload.{error}") from None
    try:
        check_run_size((), cluster, budget)
    except BudgetExceeded as error:
        raise budget_error(source, error) from None
    return Scenario(
        name=model.name,
        description=model.description,
        cluster=cluster,
        workload=workload,
        templates=templates,
        oracle=model.simulation.oracle,
        budget=budget,
        agents=tuple(AgentChoice(a.name, dict(a.model_extra or {})) for a in model.agents),
        env=EnvLimits(**model.env.model_dump()),
        source=source,
        document=copy.deepcopy(dict(document)),
        base_dir=base_dir,
    )


def _with_trace_contents(source: str, workload: WorkloadSpec) -> WorkloadSpec:
    """The workload with its log's SHA-256 as loaded, which results record, so that a rerun
    from a results folder replays the log its run did or says it cannot."""
    trace = workload.trace
    if trace is None:
        return workload
    try:
        now = file_sha256(trace.path)
    except OSError as error:
        raise ScenarioError(source, "workload.trace.path", str(error)) from None
    if trace.sha256 is not None and now != trace.sha256:
        raise ScenarioError(
            source,
            "workload.trace.sha256",
            f"{trace.path} changed since the run that recorded it (its SHA-256 is now "
            f"{now[:12]}…, the run's {trace.sha256[:12]}…); drop the field to replay it as it is",
        )
    return replace(workload, trace=replace(trace, sha256=now))


def _unknown_key(loc: tuple[str | int, ...]) -> str:
    """'unknown key', with the keys allowed there and the closest one."""
    return unknown_key_message(str(loc[-1]), _allowed_keys(loc[:-1]))


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the models at `loc` (walked from ScenarioModel) accept."""
    current: list[Any] = [ScenarioModel]
    for part in loc:
        found: list[Any] = []
        for candidate in (c for t in current for c in _alternatives(t)):
            if isinstance(part, int):
                if get_origin(candidate) is list:
                    found.append(get_args(candidate)[0])
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                fields = candidate.model_fields
                by_alias = {f.alias: f for f in fields.values() if f.alias}
                field_info = fields.get(part) or by_alias.get(part)
                if field_info is not None:
                    found.append(field_info.annotation)
                elif any(part in get_args(f.annotation) for f in fields.values()):
                    found.append(candidate)  # a discriminated union's tag, e.g. "poisson"
        current = found
    keys: list[str] = []
    for candidate in (c for t in current for c in _alternatives(t)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            keys += [f.alias or name for name, f in candidate.model_fields.items()]
    return list(dict.fromkeys(keys))


def _alternatives(annotation: Any) -> list[Any]:
    """The plain types an annotation allows (Annotated, Optional and unions unwrapped)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _validation_error(source: str, error: ValidationError) -> ScenarioError:
    """The first problem pydantic found, as one line naming the field path."""
    return ScenarioError(
        source, *validation_problem(error, where=format_loc, unknown_key=_unknown_key)
    )
