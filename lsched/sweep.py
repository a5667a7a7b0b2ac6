"""Experiment sweeps: scenarios × override combinations × agents × seeds, on any backend.

A sweep file (YAML) names what to vary:

    scenarios: [tpch-batch]              # bundled names or files (relative to the sweep file)
    agents: [fifo, fair, lsched:runs/m/policy.pt, {name: fair, max_parallelism: 8}]
    seeds: 3                             # seeds seed_start .. seed_start+2 (or a list: [0, 4])
    overrides:                           # dotted paths into the scenario, each a list of values
      cluster.nodes: [1, 2, 4]           # the sweep runs their product
      workload.streams.0.arrivals.rate_per_s: [0.1, 0.2]

Every (scenario, override combination, agent, seed) is one run, identified by a stable key.
Runs go to a backend (`lsched.backends`) and stream into one table, `sweep.csv` and `sweep.json`
in the output folder, rewritten atomically as runs finish. Running the same sweep into the same
folder again resumes it: finished runs are kept, the rest (and, by default, failed ones) run.
A run that raises is recorded with its error (status `error`) and the others go on. The table
holds no wall times, so it is the same whatever the backend and worker count.

An agent without options takes the scenario's options for that name, as `lsched run --agents`
does. A `lsched:PATH` checkpoint path is read by the worker, relative to its working directory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import pickle
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from agents.context import AgentError
from agents.registry import is_known, known_agents
from lsched.backends import Backend, LocalBackend, TaskFailure
from lsched.documents import load_mapping, unknown_key_message, validation_problem
from lsched.errors import InputError, LschedError, ScenarioError
from lsched.io import (
    SWEEP_TABLE_FILE,
    atomic_write_bytes,
    atomic_write_text,
    csv_text,
    json_text,
)
from lsched.plots import png_bytes
from lsched.runner import RunFigures, check_agents, run_one
from lsched.scenario import AgentChoice, Scenario, load_scenario
from lsched.stats import best_baseline, confidence_halfwidth, paired_ratio
from lsched.workloads.generate import file_sha256, offered_load

CSV_FILE = "sweep.csv"
JSON_FILE = SWEEP_TABLE_FILE
PLOT_FILE = "sweep.png"
JOURNAL_FILE = "sweep-runs.jsonl"
"""One line per finished run, appended (and fsynced) the moment the run's result comes back
and before the next run is handed out: a sweep killed at any moment and rerun runs every
finished run exactly once. Folded into sweep.json and removed when the sweep ends."""
FLUSH_INTERVAL_S = 1.0
"""Least time between two rewrites of the table while runs finish (and always at the end), so
big sweeps do not spend their time rewriting files; the journal keeps what finished between."""
FIGURE_COLUMNS = tuple(
    f.name
    for f in fields(RunFigures)
    if f.name not in ("scenario", "agent", "seed", "wall_s", "description")
)
"""Per-run figures in the table; wall time is left out (it varies between machines), and the
agent's description is text, a column of its own."""
STATUS_OK = "ok"
STATUS_ERROR = "error"
KEY_SEPARATOR = "|"
PLOT_COLUMNS = 3
"""Panels per row of sweep.png."""
PLOT_DPI = 110
LOG_SCALE_SPREAD = 20.0
"""A panel whose largest mean is this many times its smallest gets a log y axis."""


class SweepError(InputError):
    """A sweep file or output folder that cannot be used: "FILE: field.path: problem"."""


# --------------------------------------------------------------------------- file schema
def _agent_item(value: Any) -> Any:
    """`fair` is shorthand for `{name: fair}`."""
    return {"name": value} if isinstance(value, str) else value


def _seeds_item(value: Any) -> Any:
    """One readable error for `seeds` instead of one per branch of int | list[int]."""
    if isinstance(value, bool) or not isinstance(value, int | list):
        raise ValueError("expected a number of seeds or a list of seeds")
    if isinstance(value, list) and not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError("expected a list of whole numbers")
    return value


class _AgentModel(BaseModel):
    """An agent name plus options for its constructor (the agent registry checks them)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)


class SweepModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    """Defaults to the file's name without its suffix."""
    description: str = ""
    scenarios: list[str] = Field(min_length=1)
    agents: list[Annotated[_AgentModel, BeforeValidator(_agent_item)]] = Field(min_length=1)
    seeds: Annotated[int | list[int], BeforeValidator(_seeds_item)] = 3
    """How many seeds (from seed_start), or the seeds themselves."""
    seed_start: int = Field(0, ge=0)
    overrides: dict[str, list[Any]] = Field(default_factory=dict)


# --------------------------------------------------------------------------- plain data
@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file: what `plan_runs` expands."""

    name: str
    description: str
    source: str
    scenarios: tuple[str, ...]
    """As written in the file: they name the runs."""
    agents: tuple[AgentChoice, ...]
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, tuple[Any, ...]], ...]
    """(dotted path, values) in file order."""
    base_dir: Path

    @property
    def override_paths(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self.overrides)

    def combinations(self) -> list[dict[str, Any]]:
        """Every override combination (one empty one when nothing is overridden)."""
        paths = self.override_paths
        return [dict(zip(paths, values, strict=True)) for values in self._products()]

    def _products(self) -> Iterator[tuple[Any, ...]]:
        return itertools.product(*(values for _, values in self.overrides))

    def to_document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "scenarios": list(self.scenarios),
            "agents": [c.label for c in self.agents],
            "seeds": list(self.seeds),
            "overrides": {path: list(values) for path, values in self.overrides},
        }


@dataclass(frozen=True)
class SweepTask:
    """One run as a worker receives it: plain, picklable data."""

    key: str
    digest: str
    """Identifies the scenario variant: a worker unpickles each variant once."""
    scenario_blob: bytes
    """The pickled Scenario with the run's overrides applied (shared by its runs' tasks)."""
    agent: AgentChoice
    seed: int

    def scenario(self) -> Scenario:
        return _cached_scenario(self.digest, self.scenario_blob)


SCENARIO_CACHE_SIZE = 32
"""Scenario variants a worker keeps unpickled (one variant is ~100 kB of templates)."""
_SCENARIOS: dict[str, Scenario] = {}


def _cached_scenario(digest: str, blob: bytes) -> Scenario:
    """Unpickling a scenario costs milliseconds; a sweep sends the same few over and over."""
    scenario = _SCENARIOS.get(digest)
    if scenario is None:
        if len(_SCENARIOS) >= SCENARIO_CACHE_SIZE:
            _SCENARIOS.pop(next(iter(_SCENARIOS)))
        scenario = _SCENARIOS[digest] = pickle.loads(blob)
    return scenario


@dataclass(frozen=True)
class SweepRun:
    """One run of the plan, and where it belongs in the table."""

    key: str
    scenario: str
    overrides: Mapping[str, Any]
    agent: str
    seed: int
    digest: str
    """Fingerprint of the scenario document the run uses (overrides applied) and of the files
    it reads: a resumed sweep refuses to mix runs of a scenario that changed in between."""
    task: SweepTask
    legacy_digest: str = ""
    """The document's fingerprint alone, as tables before 2026-12-08 recorded it for scenarios
    with a log or template files: their runs are still kept (whether those files changed
    since cannot be known); empty where it equals `digest`."""


@dataclass(frozen=True)
class SweepRow:
    """One finished run in the table."""

    key: str
    scenario: str
    overrides: Mapping[str, Any]
    agent: str
    seed: int
    status: str
    error: str | None
    digest: str
    figures: Mapping[str, float | int] | None
    """FIGURE_COLUMNS → value; None for a failed run."""
    description: str = ""
    """What the agent said it ran (`tuned`'s chosen rule for this variant); often empty."""

    def to_document(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scenario": self.scenario,
            "overrides": dict(self.overrides),
            "agent": self.agent,
            "seed": self.seed,
            "status": self.status,
            "error": self.error,
            "scenario_digest": self.digest,
            "figures": dict(self.figures) if self.figures is not None else None,
            "description": self.description,
        }


SweepProgress = Callable[[int, int, SweepRow], None]
"""(runs finished, runs in the sweep, the row just finished); resumed runs count as finished."""


@dataclass(frozen=True)
class SweepReport:
    """What `run_sweep` did."""

    spec: SweepSpec
    out: Path
    rows: tuple[SweepRow, ...]
    """Finished runs in plan order."""
    total: int
    executed: int
    """Runs run by this call (the rest were finished before)."""

    @property
    def failed(self) -> int:
        return sum(row.status != STATUS_OK for row in self.rows)

    @property
    def files(self) -> tuple[Path, Path]:
        return self.out / CSV_FILE, self.out / JSON_FILE


# --------------------------------------------------------------------------- loading
def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every problem is one SweepError line."""
    source = str(path)
    document = load_mapping(path, error=SweepError)
    if "workload" in document and "scenarios" not in document:  # the other kind of file
        raise SweepError(
            source, "", "a scenario file (it has a workload), not a sweep: run it with lsched run"
        )
    try:
        model = SweepModel.model_validate(document)
    except ValidationError as error:
        raise _validation_error(source, error) from None
    return _spec(model, source, Path(path).resolve().parent, Path(path).stem)


MAX_SWEEP_RUNS = 100_000
"""Most runs one sweep plans: each is a simulation (0.1 s to minutes), so more is a job of days
that a typo (a seed count, one override list too many) starts; and planning builds a row per
run up front."""


def _spec(model: SweepModel, source: str, base_dir: Path, stem: str) -> SweepSpec:
    _no_duplicates(source, "scenarios", model.scenarios)
    agents = tuple(AgentChoice(a.name, dict(a.model_extra or {})) for a in model.agents)
    _no_duplicates(source, "agents", [a.label for a in agents])
    for index, agent in enumerate(agents):
        _check_agent_name(source, f"agents.{index}", agent.name)
    seed_count = model.seeds if isinstance(model.seeds, int) else len(model.seeds)
    runs = len(model.scenarios) * len(agents) * seed_count
    for values in model.overrides.values():
        runs *= max(1, len(values))
    if runs > MAX_SWEEP_RUNS:  # counted before anything is built: 10**9 seeds ran out of memory
        raise SweepError(
            source,
            "",
            f"{runs:,} runs (scenarios × agents × seeds × each override's values), more than "
            f"lsched.sweep.MAX_SWEEP_RUNS ({MAX_SWEEP_RUNS:,}); split it into sweeps",
        )
    if isinstance(model.seeds, int):
        if model.seeds < 1:
            raise SweepError(source, "seeds", f"must be >= 1 (got {model.seeds})")
        seeds = tuple(range(model.seed_start, model.seed_start + model.seeds))
    else:
        if not model.seeds:
            raise SweepError(source, "seeds", "the list is empty")
        if "seed_start" in model.model_fields_set:
            raise SweepError(source, "seed_start", "only goes with a number of seeds")
        if any(seed < 0 for seed in model.seeds):
            raise SweepError(source, "seeds", f"must be >= 0 (got {min(model.seeds)})")
        _no_duplicates(source, "seeds", model.seeds)
        seeds = tuple(model.seeds)
    overrides = []
    for path, values in model.overrides.items():
        field = f"overrides.{path}"
        if not path or any(not part for part in path.split(".")):
            raise SweepError(source, field, "not a dotted path like cluster.nodes")
        if not values:
            raise SweepError(source, field, "the list of values is empty")
        texts = []
        for value in values:
            try:
                texts.append(_value_text(value))
            except (TypeError, ValueError):
                raise SweepError(source, field, f"value {value!r} is not plain data") from None
        _no_duplicates(source, field, texts)
        overrides.append((path, tuple(values)))
    return SweepSpec(
        name=model.name or stem,
        description=model.description,
        source=source,
        scenarios=tuple(model.scenarios),
        agents=agents,
        seeds=seeds,
        overrides=tuple(overrides),
        base_dir=base_dir,
    )


def _no_duplicates(source: str, field: str, items: Sequence[Any]) -> None:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            raise SweepError(source, field, f"{item} is listed twice")
        seen.add(item)


def _check_agent_name(source: str, field: str, name: str) -> None:
    """Catch a misspelt agent before any run; plugins (`lsched:PATH`) check their own names."""
    if is_known(name):
        return
    raise SweepError(
        source, field, f"unknown agent {name!r}; known agents: {', '.join(known_agents())}"
    )


_UNION_MEMBERS = ("int", "list[int]", "function-before[_agent_item()]")
"""Loc parts pydantic adds for a union's members: not part of the path the user wrote."""


def _where(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in _UNION_MEMBERS)


def _validation_error(source: str, error: ValidationError) -> SweepError:
    """The first problem pydantic found, as one line naming the field path."""
    return SweepError(source, *validation_problem(error, where=_where, unknown_key=_unknown_key))


def _unknown_key(loc: tuple[str | int, ...]) -> str:
    """'unknown key'; at the top level, with the sweep file's keys and the closest one."""
    return unknown_key_message(str(loc[0]), list(SweepModel.model_fields) if len(loc) == 1 else [])


def _value_text(value: Any) -> str:
    """An override value as canonical JSON: how keys and the CSV spell it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- the plan
def run_key(scenario: str, overrides: Mapping[str, Any], agent: str, seed: int) -> str:
    """A run's stable identity: `scenario|path=value,...|agent|seed` (paths sorted)."""
    assignment = ",".join(f"{p}={_value_text(overrides[p])}" for p in sorted(overrides))
    return KEY_SEPARATOR.join((scenario, assignment, agent, str(seed)))


def plan_runs(spec: SweepSpec) -> list[SweepRun]:
    """Every run of the sweep in table order; loads and validates every scenario variant."""
    runs = []
    for index, text in enumerate(spec.scenarios):
        base = _load(spec, index, text)
        for combo in spec.combinations():
            scenario = _with_overrides(spec, base, text, combo)
            files = _file_digests(scenario)
            digest = _digest(scenario.document, *files)
            legacy = _digest(scenario.document) if files else ""
            # Where its relative paths were resolved matters to the loaded object, not the file.
            identity = _digest(digest, scenario.source, str(scenario.base_dir))
            blob = pickle.dumps(scenario, protocol=pickle.HIGHEST_PROTOCOL)
            too_high = [s for s in spec.seeds if s >= scenario.train_seed_offset]
            if too_high:
                raise SweepError(
                    spec.source,
                    "seeds",
                    f"seed {too_high[0]} is in {text}'s training range "
                    f"(evaluation seeds stay below {scenario.train_seed_offset})",
                )
            for index, agent in enumerate(spec.agents):
                choice = scenario.agent(agent.name) if not agent.options else agent
                try:  # a bad option fails here, not once per run in a worker
                    check_agents(scenario, [choice])
                except (LschedError, AgentError) as error:
                    raise SweepError(spec.source, f"agents.{index}", str(error)) from None
                for seed in spec.seeds:
                    key = run_key(text, combo, agent.label, seed)
                    task = SweepTask(key, identity, blob, choice, seed)
                    runs.append(SweepRun(key, text, combo, agent.label, seed, digest, task, legacy))
    return runs


def _load(spec: SweepSpec, index: int, text: str) -> Scenario:
    beside = spec.base_dir / text
    try:
        return load_scenario(beside if beside.is_file() else text)
    except LschedError as error:
        raise SweepError(spec.source, f"scenarios.{index}", str(error)) from None


def _with_overrides(
    spec: SweepSpec, scenario: Scenario, text: str, combo: Mapping[str, Any]
) -> Scenario:
    if not combo:
        return scenario
    try:
        return scenario.with_overrides(combo)
    except ScenarioError as error:
        # Blame the swept value the scenario's validation names, when it names one (its
        # `streams[0]` is the override's `streams.0`).
        field = re.sub(r"\[(\d+)\]", r".\1", error.field)
        for path, value in combo.items():
            if field == path or field.startswith(path + "."):
                problem = f"value {_value_text(value)} in {text}: {error.problem}"
                raise SweepError(spec.source, f"overrides.{path}", problem) from None
        assignment = ", ".join(f"{p}={_value_text(v)}" for p, v in combo.items())
        where = f"{error.field}: " if error.field else ""
        raise SweepError(
            spec.source, "overrides", f"{text} with {assignment}: {where}{error.problem}"
        ) from None
    except LschedError as error:
        assignment = ", ".join(f"{p}={_value_text(v)}" for p, v in combo.items())
        raise SweepError(spec.source, "overrides", f"{text} with {assignment}: {error}") from None


MAX_LOAD_VARIANTS = 200
"""Most variants whose offered load the table shows: each draws its first seed's workload."""


def variant_loads(spec: SweepSpec) -> dict[tuple[str, str], float | None]:
    """Each variant's offered load on its first seed (`offered_load`; None for a batch), by
    (scenario, overrides as the table's key): what a swept arrival rate or cluster size means
    for the cluster. Empty past MAX_LOAD_VARIANTS variants."""
    combos = spec.combinations()
    if len(spec.scenarios) * len(combos) > MAX_LOAD_VARIANTS:
        return {}
    loads = {}
    for index, text in enumerate(spec.scenarios):
        base = _load(spec, index, text)
        for combo in combos:
            scenario = _with_overrides(spec, base, text, combo)
            queries = scenario.queries(spec.seeds[0])
            load = offered_load(queries, scenario.cluster.total_threads)
            loads[variant_key(text, combo)] = load
    return loads


def variant_key(scenario: str, overrides: Mapping[str, Any]) -> tuple[str, str]:
    """A variant of a sweep (a scenario with one combination of swept values) as a key."""
    return scenario, _value_text(dict(overrides))


def _file_digests(scenario: Scenario) -> list[str]:
    """The contents of the files a scenario reads (its log, its template files): one edited
    between two calls of a sweep is a changed scenario, not runs to mix with the old ones.
    (Empty without such files, so those scenarios' digests are as before 2026-12-08.)"""
    workload = scenario.workload
    digests = [workload.trace.sha256 or ""] if workload.trace is not None else []
    for path in workload.template_files:
        try:
            digests.append(file_sha256(Path(path)))  # hashed once per file version, not per run
        except OSError as error:
            raise SweepError(scenario.source, "workload.template_files", str(error)) from None
    return digests


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- running
def run_task(task: SweepTask) -> RunFigures:
    """What a worker runs for one sweep run."""
    return run_one(task.scenario(), task.agent, task.seed)


def run_sweep(
    spec_path: str | Path,
    out: str | Path,
    backend: Backend | None = None,
    progress: SweepProgress | None = None,
    *,
    retry_failed: bool = True,
    run: Callable[[SweepTask], RunFigures] = run_task,
) -> SweepReport:
    """Run (or resume) the sweep of `spec_path` into folder `out` on `backend` (default: this
    process). `run` is the per-run function (picklable; a test hook). The table is written
    before returning, also when interrupted."""
    spec = load_sweep(spec_path)
    plan = plan_runs(spec)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SweepError(out, "", "--out must be a folder, and this is a file")
    _check_sweep_folder(out)
    finished = _previous_rows(out, plan, retry_failed)
    _cut_torn_tail(out / JOURNAL_FILE)  # else the next row would be glued onto it
    todo = [r for r in plan if r.key not in finished]
    table = _Table(spec, plan, out, finished)
    executed = 0
    own_backend = backend is None
    active = backend if backend is not None else LocalBackend(1)
    completed = False
    try:
        table.flush()
        by_key = {r.key: r for r in todo}
        stream = active.map_unordered(run, [r.task for r in todo])
        with open(out / JOURNAL_FILE, "a", encoding="utf-8") as journal:
            try:
                for task, result in stream:
                    row = _row(by_key[task.key], result)
                    _append(journal, row)  # durable before the next run is handed out
                    executed += 1
                    table.add(row)
                    if progress is not None:
                        progress(len(table.rows), len(plan), row)
            finally:
                stream.close()
        completed = True
    finally:
        table.flush(force=True)
        if completed:
            (out / JOURNAL_FILE).unlink(missing_ok=True)  # sweep.json now holds every row
        if own_backend:
            active.close()
    return SweepReport(spec, out, table.ordered(), len(plan), executed)


def _check_sweep_folder(out: Path) -> None:
    """Refuse an --out folder that holds files but no sweep of ours (nothing is written)."""
    if not out.is_dir() or (out / JSON_FILE).is_file() or (out / JOURNAL_FILE).is_file():
        return
    foreign = sorted(p.name for p in out.iterdir())
    if foreign:
        raise SweepError(
            out,
            "",
            f"--out is not empty and holds no {JSON_FILE} (e.g. {foreign[0]!r}); name a new "
            "or empty folder, or the folder of the sweep to resume",
        )


def _cut_torn_tail(path: Path) -> None:
    """Mend the journal's end before appending: a last line a kill cut short (no newline
    after it, and not JSON) is dropped — `read_journal` skips it, and a row appended after it
    would be glued onto it, losing that row and tearing the file; a whole last row missing only
    its newline (which `read_journal` counted) gets one."""
    if not path.is_file():
        return
    with open(path, "r+b") as journal:
        end = journal.seek(0, os.SEEK_END)
        start = end
        while start > 0:  # back to the last newline, a block at a time
            start = max(0, start - 65536)
            journal.seek(start)
            block = journal.read(end - start)
            if b"\n" in block:
                start += block.rindex(b"\n") + 1
                break
        journal.seek(start)
        tail = journal.read(end - start)
        if not tail:
            return
        try:
            json.loads(tail)
        except ValueError:
            journal.truncate(start)
        else:
            journal.seek(end)
            journal.write(b"\n")
        journal.flush()
        os.fsync(journal.fileno())


def _append(journal: Any, row: SweepRow) -> None:
    """One finished run as a journal line, on disk before this returns."""
    journal.write(json.dumps(_finite(row.to_document()), allow_nan=False) + "\n")
    journal.flush()
    os.fsync(journal.fileno())


def _row(run: SweepRun, result: RunFigures | TaskFailure) -> SweepRow:
    if isinstance(result, TaskFailure):
        return SweepRow(
            run.key, run.scenario, run.overrides, run.agent, run.seed,
            STATUS_ERROR, str(result), run.digest, None,
        )  # fmt: skip
    # a figure a run does not have (no query with a deadline) is NaN, as it reads back
    values = {name: getattr(result, name) for name in FIGURE_COLUMNS}
    figures = {name: math.nan if value is None else value for name, value in values.items()}
    return SweepRow(
        run.key, run.scenario, run.overrides, run.agent, run.seed,
        STATUS_OK, None, run.digest, figures, result.description,
    )  # fmt: skip


class _Table:
    """The finished runs, rewritten to sweep.csv and sweep.json at most every FLUSH_INTERVAL_S."""

    def __init__(
        self, spec: SweepSpec, plan: Sequence[SweepRun], out: Path, rows: Mapping[str, SweepRow]
    ) -> None:
        self.spec = spec
        self.order = {r.key: i for i, r in enumerate(plan)}
        self.out = out
        self.rows = dict(rows)
        self.last_flush_s = -math.inf

    def add(self, row: SweepRow) -> None:
        self.rows[row.key] = row
        self.flush()

    def ordered(self) -> tuple[SweepRow, ...]:
        return tuple(sorted(self.rows.values(), key=lambda r: self.order[r.key]))

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_flush_s < FLUSH_INTERVAL_S:
            return
        rows = self.ordered()
        write_table(self.out, self.spec, rows, len(self.order))
        self.last_flush_s = now


def write_table(out: Path, spec: SweepSpec, rows: Sequence[SweepRow], total: int) -> None:
    """sweep.csv, then sweep.json (what a resumed sweep reads), each atomically."""
    paths = spec.override_paths
    header = [
        "key", "scenario", *paths, "agent", "seed", "status", "error", *FIGURE_COLUMNS,
        "description",
    ]  # fmt: skip
    lines = []
    for row in rows:
        figures = row.figures or {}
        lines.append(
            [
                row.key,
                row.scenario,
                *(_csv_value(row.overrides.get(p)) for p in paths),
                row.agent,
                row.seed,
                row.status,
                row.error or "",
                *(_csv_figure(figures.get(name)) for name in FIGURE_COLUMNS),
                row.description,
            ]
        )
    atomic_write_text(out / CSV_FILE, csv_text(header, lines))
    document = {
        "sweep": spec.to_document(),
        "file": spec.source,
        "total": total,
        "finished": len(rows),
        "failed": sum(row.status != STATUS_OK for row in rows),
        "columns": header,
        "runs": [row.to_document() for row in rows],
    }
    atomic_write_text(out / JSON_FILE, json_text(_finite(document)))


def _csv_figure(value: Any) -> Any:
    """A figure's CSV cell: empty where there is none (a failed run, or no deadlines)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _csv_value(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else _value_text(value)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def read_rows(out: str | Path) -> tuple[dict[str, Any], list[SweepRow]]:
    """A sweep folder's sweep.json: the document and its runs."""
    path = Path(out) / JSON_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        rows = [_row_from_document(r) for r in document["runs"]]
        spec = document["sweep"]  # what the plot and the report read besides the runs
        if not isinstance(spec, dict) or not isinstance(spec["overrides"], dict):
            raise TypeError("sweep: not a mapping with overrides")
        list(spec["seeds"])
        str(spec["name"])
        for count in ("total", "finished", "failed"):
            if not isinstance(document[count], int) or isinstance(document[count], bool):
                raise TypeError(f"{count}: not a count")
    except FileNotFoundError:
        raise SweepError(
            path, "", "no such file (is this a folder `lsched sweep` wrote?)"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise SweepError(path, "runs", f"not a sweep table ({error})") from None
    return document, rows


def _row_from_document(r: Any) -> SweepRow:
    return SweepRow(
        key=str(r["key"]),
        scenario=str(r["scenario"]),
        overrides=dict(r["overrides"]),
        agent=str(r["agent"]),
        seed=int(r["seed"]),
        status=str(r["status"]),
        error=r["error"],
        digest=str(r["scenario_digest"]),
        figures=_figures(r["figures"]),
        description=str(r.get("description") or ""),  # tables before 2026-12-08 have none
    )


def read_journal(out: str | Path) -> list[SweepRow]:
    """The runs an interrupted sweep journalled; a last line cut short by a kill is skipped."""
    path = Path(out) / JOURNAL_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(_row_from_document(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            if number == len(lines):  # written when the process died: the run reruns
                break
            raise SweepError(path, f"line {number}", f"not a journal line ({error})") from None
    return rows


def _figures(value: Any) -> dict[str, float | int] | None:
    if value is None:
        return None
    # a figure an older table lacks (missed_deadlines, before 2026-12-08) reads as unknown
    return {name: math.nan if value.get(name) is None else value[name] for name in FIGURE_COLUMNS}


def _previous_rows(out: Path, plan: Sequence[SweepRun], retry_failed: bool) -> dict[str, SweepRow]:
    """Runs an earlier, interrupted call of this sweep finished (to keep, not redo)."""
    rows = read_rows(out)[1] if (out / JSON_FILE).exists() else []
    rows = list({row.key: row for row in [*rows, *read_journal(out)]}.values())
    if not rows:
        return {}
    planned = {r.key: r for r in plan}
    stray = [row.key for row in rows if row.key not in planned]
    if stray:
        raise SweepError(
            out / JSON_FILE,
            "runs",
            f"{len(stray)} run(s) are not part of this sweep (e.g. {stray[0]!r}); "
            "write it to a new --out folder",
        )
    for row in rows:
        if row.digest not in (planned[row.key].digest, planned[row.key].legacy_digest):
            raise SweepError(
                out / JSON_FILE,
                "runs",
                f"scenario {row.scenario!r} changed since run {row.key!r} was made; "
                "write the sweep to a new --out folder",
            )
    return {row.key: row for row in rows if row.status == STATUS_OK or not retry_failed}


# --------------------------------------------------------------------------- plots
@dataclass(frozen=True)
class SweepSummary:
    """One (scenario, override combination, agent) cell of a sweep, over its seeds."""

    scenario: str
    overrides: Mapping[str, Any]
    agent: str
    runs: int
    """Finished runs with a finite value of the metric."""
    failed: int
    mean: float
    """Mean of the metric over those runs (NaN when there are none)."""
    ci95: float
    """Half-width of its 95% confidence interval."""
    best: str = ""
    """The variant's best agent that is not a learned policy (lowest mean), as `lsched run`'s
    baseline; empty when no agent of the variant finished a run."""
    vs_best: float = math.nan
    """This agent's metric over the best's, seed by seed, averaged (`lsched run`'s vs column)."""
    vs_best_ci95: float = math.nan
    """Half-width of that ratio's 95% interval over the seeds both finished."""
    vs_best_seeds: int = 0
    """How many seeds both finished: the ratio's sample (an interval needs two)."""


def summarize_sweep(rows: Sequence[SweepRow], metric: str = "mean_latency_s") -> list[SweepSummary]:
    """Rows grouped by everything but the seed, in table order (what plots and tables show)."""
    if metric not in FIGURE_COLUMNS:
        raise ValueError(f"unknown figure {metric!r}; known: {', '.join(FIGURE_COLUMNS)}")
    groups: dict[tuple[str, str, str], list[SweepRow]] = {}
    for row in rows:
        cell = (*variant_key(row.scenario, row.overrides), row.agent)
        groups.setdefault(cell, []).append(row)
    summaries = []
    for mine in groups.values():
        values = [
            float(r.figures[metric])
            for r in mine
            if r.status == STATUS_OK and r.figures is not None
            and math.isfinite(float(r.figures[metric]))
        ]  # fmt: skip
        summaries.append(
            SweepSummary(
                scenario=mine[0].scenario,
                overrides=mine[0].overrides,
                agent=mine[0].agent,
                runs=len(values),
                failed=sum(r.status != STATUS_OK for r in mine),
                mean=float(np.mean(values)) if values else math.nan,
                ci95=confidence_halfwidth(values),
            )
        )
    return _against_best(summaries, groups, metric)


def _against_best(
    summaries: list[SweepSummary],
    groups: Mapping[tuple[str, str, str], Sequence[SweepRow]],
    metric: str,
) -> list[SweepSummary]:
    """Each cell against its variant's best baseline, paired by seed: which agent wins where
    (unpaired intervals over few seeds overlap where paired ones need not)."""
    by_seed = {
        (scenario, variant, agent): {
            r.seed: float(r.figures[metric])
            for r in rows
            if r.status == STATUS_OK and r.figures is not None
            and math.isfinite(float(r.figures[metric]))
        }
        for (scenario, variant, agent), rows in groups.items()
    }  # fmt: skip
    finished: dict[tuple[str, str], dict[str, float]] = {}
    for cell in summaries:
        if cell.runs:
            finished.setdefault(variant_key(cell.scenario, cell.overrides), {})[cell.agent] = (
                cell.mean
            )
    best = {where: best_baseline(means) for where, means in finished.items()}  # as run's
    out = []
    for cell in summaries:
        where = variant_key(cell.scenario, cell.overrides)
        if where not in best:
            out.append(cell)
            continue
        ratio, halfwidth, seeds = paired_ratio(
            by_seed[(*where, cell.agent)], by_seed[(*where, best[where])]
        )
        out.append(
            replace(
                cell, best=best[where], vs_best=ratio, vs_best_ci95=halfwidth, vs_best_seeds=seeds
            )
        )
    return out


def plot_sweep(out: str | Path, metric: str = "mean_latency_s") -> list[Path]:
    """Draw sweep.png (`sweep_figure`) into the sweep's folder; returns the files written."""
    figure = sweep_figure(out, metric)
    return [atomic_write_bytes(Path(out) / PLOT_FILE, png_bytes(figure))]


def sweep_figure(out: str | Path, metric: str = "mean_latency_s") -> Any:
    """`metric` against the first swept value, one line per agent, with 95% confidence
    intervals over seeds; one panel per scenario and combination of the other swept values
    (a bar per agent when nothing is swept)."""
    from matplotlib.figure import Figure

    document, rows = read_rows(out)
    try:
        cells = [c for c in summarize_sweep(rows, metric) if c.runs]
    except ValueError as error:
        raise SweepError(out, "metric", str(error)) from None
    if not cells:
        raise SweepError(Path(out) / JSON_FILE, "runs", "no finished runs to plot")
    spec = document["sweep"]
    paths = list(spec["overrides"])
    x_path, rest = (paths[0], paths[1:]) if paths else (None, [])
    panels: dict[tuple[str, str], list[SweepSummary]] = {}
    for cell in cells:
        others = ", ".join(f"{p}={_value_text(cell.overrides[p])}" for p in rest)
        panels.setdefault((cell.scenario, others), []).append(cell)
    columns = min(len(panels), PLOT_COLUMNS)
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.5 * columns, 4.2 * lines), dpi=PLOT_DPI)
    # one scale for every panel, so that panels compare side by side
    means = [c.mean for c in cells if c.mean > 0]
    log_scale = bool(means) and max(means) > LOG_SCALE_SPREAD * min(means)
    shared = None
    for number, ((scenario, others), mine) in enumerate(panels.items()):
        ax = figure.add_subplot(lines, columns, number + 1, sharey=shared)
        shared = shared or ax
        if x_path is None:
            _bars(ax, mine)
        else:
            _lines(ax, mine, x_path, spec["overrides"][x_path])
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(f"{scenario}" + (f" ({others})" if others else ""), fontsize=10)
        ax.set_ylabel(
            metric.removesuffix("_s").replace("_", " ") + (" (s)" * metric.endswith("_s"))
        )
        ax.grid(alpha=0.3)
    seeds = len(spec["seeds"])
    figure.suptitle(
        f"sweep {spec['name']}: mean over {seeds} seed(s), 95% confidence intervals", fontsize=11
    )
    figure.tight_layout()
    return figure


def _lines(ax: Any, cells: Sequence[SweepSummary], x_path: str, values: Sequence[Any]) -> None:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    positions = [float(v) for v in values] if numeric else list(range(len(values)))
    where = {_value_text(v): p for v, p in zip(values, positions, strict=True)}
    agents = list(dict.fromkeys(c.agent for c in cells))
    for agent in agents:
        mine = sorted(
            (where[_value_text(c.overrides[x_path])], c) for c in cells if c.agent == agent
        )
        ax.errorbar(
            [x for x, _ in mine],
            [c.mean for _, c in mine],
            yerr=_positive_errors([c for _, c in mine]),
            marker="o",
            capsize=3,
            label=agent,
        )
    if numeric:
        ax.set_xticks(positions, [f"{v:g}" for v in positions])
    else:
        ax.set_xticks(positions, [_value_text(v) for v in values], rotation=20)
    ax.set_xlabel(x_path)
    ax.legend(fontsize=8)


def _positive_errors(cells: Sequence[SweepSummary]) -> list[list[float]]:
    """The 95% intervals as error bars, the lower arm stopped short of zero: a latency is
    positive, and with few seeds an interval of ± more than the mean drew bars to −750 s
    (and off a log axis)."""
    lower = [min(c.ci95, c.mean * (1 - 1e-3)) if c.mean > 0 else c.ci95 for c in cells]
    return [lower, [c.ci95 for c in cells]]


def _bars(ax: Any, cells: Sequence[SweepSummary]) -> None:
    positions = np.arange(len(cells))
    ax.bar(positions, [c.mean for c in cells], yerr=_positive_errors(cells), capsize=4)
    ax.set_xticks(positions, [c.agent for c in cells], rotation=30, ha="right")


__all__ = [
    "CSV_FILE",
    "JSON_FILE",
    "PLOT_FILE",
    "SweepError",
    "SweepReport",
    "SweepRow",
    "SweepRun",
    "SweepSpec",
    "SweepSummary",
    "SweepTask",
    "confidence_halfwidth",
    "load_sweep",
    "plan_runs",
    "plot_sweep",
    "read_rows",
    "run_key",
    "run_sweep",
    "run_task",
    "summarize_sweep",
    "write_table",
]
