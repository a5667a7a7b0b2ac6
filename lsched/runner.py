"""Run agents × seeds on a scenario and summarise: the comparison behind `lsched run`.

Seed K gives every agent the same queries (`scenario.queries(K)`) and the same execution
noise (`scenario.execution_rng(K)`), so differences between agents are the schedules alone.
`run_one` runs one (scenario, agent, seed) and returns plain, picklable figures, the unit a
process pool or Ray spreads out; `summarize` aggregates any collection of them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents import AgentContext, AgentError, make_agent
from agents.registry import is_learned
from lsched.errors import ScenarioError
from lsched.io import (
    DAG_COLUMNS,
    QUERY_COLUMNS,
    RESULTS_FILE,
    SCENARIO_FILE,
    TASK_COLUMNS,
    atomic_write_text,
    dag_file,
    queries_file,
    tasks_file,
    write_csv,
    write_json,
)
from lsched.scenario import AgentChoice, Scenario, budget_error, load_scenario
from lsched.stats import best_baseline, paired_ratio
from lsched.tuning_cache import choice_store
from lsched.workloads.scalability import scalability_prior
from sim.budget import BudgetExceeded
from sim.engine import simulate
from sim.interface import Scheduler
from sim.model import QuerySpec
from sim.results import SimResult

TUNING_SEEDS = 4
"""Training seeds handed to agents that tune or train (e.g. `tuned`)."""

ProgressCallback = Callable[[int, int, "RunFigures"], None]
"""(runs done, runs in total, the figures of the run just done)."""


@dataclass(frozen=True, slots=True)
class RunFigures:
    """One (scenario, agent, seed) run as plain numbers: cheap to pickle and ship back."""

    scenario: str
    agent: str
    """The agent's label (`fair`, or `fair[max_parallelism=8]` with options)."""
    seed: int
    queries: int
    mean_latency_s: float
    p50_latency_s: float
    p95_latency_s: float
    p99_latency_s: float
    mean_slowdown: float
    makespan_s: float
    utilization: float
    lower_bound_mean_latency_s: float
    """No schedule of this seed's queries and task durations has a lower mean latency."""
    decisions: int
    lost_tasks: int
    """Task attempts cut short by node failures (each was re-run)."""
    rerun_tasks: int
    wall_s: float
    """Seconds the run took on this machine (not part of any result file: it varies)."""
    missed_deadlines: float | None = None
    """Share of the queries with a deadline that finished after it; None: none has one."""
    description: str = ""
    """What the agent says it ran (`tuned`'s chosen rule); empty for agents that say nothing."""


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """One agent's figures averaged over seeds (percentiles are per-seed, then averaged)."""

    agent: str
    seeds: int
    queries: float
    mean_latency_s: float
    mean_latency_std_s: float
    """Standard deviation of the per-seed mean latency: the error bar of comparison plots."""
    p50_latency_s: float
    p95_latency_s: float
    p99_latency_s: float
    mean_slowdown: float
    makespan_s: float
    utilization: float
    lost_tasks: float
    rerun_tasks: float
    missed_deadlines: float | None = None
    """Mean over seeds of the share of deadlines missed; None where no query has one."""


@dataclass(frozen=True, slots=True)
class PairedRatio:
    """An agent's mean latency over a baseline's, seed by seed: both ran each seed's queries
    with the same execution noise, so the interval is the schedules' difference alone."""

    baseline: str
    ratio: float
    """Mean over seeds of (agent's mean latency / baseline's) on that seed."""
    ci95: float
    """Half-width of its 95% Student-t interval over seeds (0 for one seed)."""
    seeds: int
    """Seeds paired: with fewer than 2 there is no interval (`ci95` is then not reported)."""

    @property
    def has_interval(self) -> bool:
        """Whether `ci95` means anything: two seeds or more."""
        return self.seeds >= 2


@dataclass(frozen=True)
class ScenarioReport:
    """All runs of a comparison and their per-agent summaries, in the order agents were given."""

    scenario: str
    seeds: tuple[int, ...]
    runs: tuple[RunFigures, ...]
    agents: dict[str, AgentSummary]
    lower_bound_mean_latency_s: float
    results: dict[tuple[str, int], SimResult] = field(default_factory=dict, repr=False)
    """Full per-run results by (agent label, seed), when the caller asked to keep them."""
    choices: tuple[AgentChoice, ...] = ()
    """The agents as run, with their options (empty for a report summarised from figures)."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """Agent label → what it ran, for agents that say (`tuned`: the rule and knobs its
    search chose; `lsched`: how often it made its guide's decision)."""

    def best_baseline(self) -> str:
        """The agent with the lowest mean latency that is not a learned policy (any agent
        when all are learned): what "beats the heuristics by how much" is measured against."""
        return best_baseline({a: s.mean_latency_s for a, s in self.agents.items()})

    def paired(self, baseline: str | None = None) -> dict[str, PairedRatio]:
        """Every agent against `baseline` (default: `best_baseline`), paired by seed."""
        baseline = self.best_baseline() if baseline is None else baseline
        if baseline not in self.agents:
            known = ", ".join(self.agents)
            raise ValueError(f"--baseline: {baseline!r} is not one of the agents run ({known})")
        by_seed = {(r.agent, r.seed): r.mean_latency_s for r in self.runs}

        def seeds_of(label: str) -> dict[int, float]:
            return {s: by_seed[label, s] for s in self.seeds if (label, s) in by_seed}

        theirs = seeds_of(baseline)
        return {
            label: PairedRatio(baseline, *paired_ratio(seeds_of(label), theirs))
            for label in self.agents
        }

    def to_document(self, baseline: str | None = None) -> dict[str, object]:
        """The JSON document of `lsched run --json` and results.json; `paired` holds every
        agent's per-seed latency ratio to `baseline` (default: the best baseline)."""
        paired = self.paired(baseline)
        return {
            "scenario": self.scenario,
            "seeds": list(self.seeds),
            "lower_bound": {"mean_latency": self.lower_bound_mean_latency_s},
            "paired": {
                "baseline": next(iter(paired.values())).baseline,
                "agents": {
                    label: {"ratio": p.ratio, "ci95": p.ci95 if p.has_interval else None}
                    for label, p in paired.items()
                },
            },
            "descriptions": dict(self.descriptions),
            "agents": {
                label: {
                    "mean_latency": s.mean_latency_s,
                    "p50_latency": s.p50_latency_s,
                    "p95_latency": s.p95_latency_s,
                    "p99_latency": s.p99_latency_s,
                    "mean_slowdown": s.mean_slowdown,
                    "makespan": s.makespan_s,
                    "utilization": s.utilization,
                    "queries": s.queries,
                    "lost_tasks": s.lost_tasks,
                    "rerun_tasks": s.rerun_tasks,
                    "missed_deadlines": s.missed_deadlines,
                }
                for label, s in self.agents.items()
            },
        }


def seed_range(
    seeds: int, seed_start: int = 0, scenario: Scenario | None = None
) -> tuple[int, ...]:
    """Evaluation seeds seed_start .. seed_start+seeds-1, kept below the training range."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if seed_start < 0:
        raise ValueError(f"--seed-start must be >= 0, got {seed_start}")
    limit = scenario.train_seed_offset if scenario is not None else None
    if limit is not None and seed_start + seeds > limit:
        raise ValueError(f"evaluation seeds must stay below {limit} (training seeds start there)")
    return tuple(range(seed_start, seed_start + seeds))


def agent_context(scenario: Scenario) -> AgentContext:
    """What the scenario's agents are built from; the same for every evaluation seed."""
    return AgentContext(
        cluster=scenario.cluster,
        train_workload=scenario.queries,
        train_seeds=scenario.train_seeds(TUNING_SEEDS),
        execution_rng=scenario.execution_rng,
        rng=scenario.agent_rng(),
        oracle=scenario.oracle,
        budget=scenario.budget,
        scalability=scalability_prior(scenario.workload),
        choice_store=choice_store(),
    )


def build_agent(scenario: Scenario, agent: AgentChoice | str) -> Scheduler:
    """The scheduler of one agent on this scenario, built once per Scenario object and reused.

    Reuse across seeds is part of the agent contract: `reset` restores every per-run state
    (the random agent rewinds its generator), so a run's result does not depend on what ran
    before it, and agents that tune or train do so once. Raises UnknownAgentError or
    AgentOptionError on a bad name or option.
    """
    choice = scenario.agent(agent) if isinstance(agent, str) else agent
    scheduler = scenario.agent_cache.get(choice.label)
    if scheduler is None:
        scheduler = make_agent(choice.name, agent_context(scenario), **dict(choice.options))
        scenario.agent_cache[choice.label] = scheduler
    return scheduler


def check_agents(scenario: Scenario, agents: Sequence[AgentChoice] | None = None) -> None:
    """Build every agent (default: the scenario's) before any run, so a typo fails fast.

    An agent the scenario file lists fails as a ScenarioError naming the file and `agents[i]`.
    """
    for choice in scenario.agents if agents is None else agents:
        try:
            build_agent(scenario, choice)
        except AgentError as error:
            if choice not in scenario.agents:
                raise
            where = f"agents[{scenario.agents.index(choice)}]"
            raise ScenarioError(scenario.source, where, str(error)) from None


def seed_queries(scenario: Scenario, seed: int) -> Sequence[QuerySpec]:
    """The workload of one seed; none at all is a ScenarioError (its figures would be NaN)."""
    queries = scenario.queries(seed)
    if not queries:
        raise ScenarioError(
            scenario.source,
            "workload",
            f"seed {seed} draws no query; raise queries, duration_s or an arrival rate",
        )
    return queries


def simulate_one(scenario: Scenario, agent: AgentChoice | str, seed: int) -> SimResult:
    """Simulate seed `seed` of the scenario under one agent, within the scenario's budget
    (a refusal is a ScenarioError naming the knob)."""
    try:
        return simulate(
            seed_queries(scenario, seed),
            scenario.cluster,
            build_agent(scenario, agent),
            scenario.execution_rng(seed),
            oracle=scenario.oracle,
            budget=scenario.budget,
        )
    except BudgetExceeded as error:
        raise budget_error(scenario.source, error) from None


def figures(result: SimResult, scenario: str, agent: str, seed: int, wall_s: float) -> RunFigures:
    """The summary numbers of one simulation."""
    return RunFigures(
        scenario=scenario,
        agent=agent,
        seed=seed,
        queries=len(result.queries),
        mean_latency_s=result.mean_latency_s,
        p50_latency_s=result.latency_percentile_s(50),
        p95_latency_s=result.latency_percentile_s(95),
        p99_latency_s=result.latency_percentile_s(99),
        mean_slowdown=result.mean_slowdown,
        makespan_s=result.makespan_s,
        utilization=result.utilization,
        lower_bound_mean_latency_s=result.lower_bound.mean_latency_s,
        decisions=result.decisions,
        lost_tasks=len(result.lost_tasks),
        rerun_tasks=result.rerun_tasks,
        wall_s=wall_s,
        missed_deadlines=result.missed_deadlines,
    )


def run_one(scenario: Scenario | str | Path, agent: AgentChoice | str, seed: int) -> RunFigures:
    """One (scenario, agent, seed) run → plain figures. Picklable in and out (for pools, Ray)."""
    loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    choice = loaded.agent(agent) if isinstance(agent, str) else agent
    started = time.perf_counter()
    result = simulate_one(loaded, choice, seed)
    ran = figures(result, loaded.name, choice.label, seed, time.perf_counter() - started)
    if is_learned(choice.label):  # its note counts decisions over every run it made: a
        return ran  # per-run record would depend on which runs a worker happened to get
    said = agent_descriptions(loaded, [choice]).get(choice.label, "")
    return replace(ran, description=said) if said else ran


def run_scenario(
    scenario: Scenario | str | Path,
    agents: Sequence[AgentChoice | str] | None = None,
    seeds: int = 3,
    seed_start: int = 0,
    *,
    progress: ProgressCallback | None = None,
    keep_results: bool = False,
) -> ScenarioReport:
    """Every agent (default: the scenario's) on seeds seed_start.. seed_start+seeds-1; a
    scenario by name or file as `run_one` takes one."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    seed_list = seed_range(seeds, seed_start, scenario)
    choices = agent_choices(scenario, agents)
    check_agents(scenario, choices)
    total = len(choices) * len(seed_list)
    runs: list[RunFigures] = []
    results: dict[tuple[str, int], SimResult] = {}
    for seed in seed_list:
        for choice in choices:
            started = time.perf_counter()
            result = simulate_one(scenario, choice, seed)
            run = figures(result, scenario.name, choice.label, seed, time.perf_counter() - started)
            runs.append(run)
            if keep_results:
                results[choice.label, seed] = result
            if progress is not None:
                progress(len(runs), total, run)
    report = summarize(scenario.name, runs, [c.label for c in choices])
    return ScenarioReport(
        report.scenario,
        report.seeds,
        report.runs,
        report.agents,
        report.lower_bound_mean_latency_s,
        results,
        tuple(choices),
        agent_descriptions(scenario, choices),
    )


def agent_descriptions(scenario: Scenario, choices: Sequence[AgentChoice]) -> dict[str, str]:
    """What each built agent says it ran (`describe()`), for the agents that say."""
    described = {}
    for choice in choices:
        describe = getattr(scenario.agent_cache.get(choice.label), "describe", None)
        text = describe() if callable(describe) else None
        if text:  # "tuned: serpt ..." names the agent by its label: two lsched entries differ
            name = choice.name.partition(":")[0]
            described[choice.label] = f"{choice.label}: {text.removeprefix(f'{name}: ')}"
    return described


def agent_labels(scenario: Scenario, agents: Sequence[AgentChoice | str] | None) -> list[str]:
    """How results will name the agents `run_scenario(scenario, agents)` runs."""
    return [choice.label for choice in agent_choices(scenario, agents)]


def agent_choices(
    scenario: Scenario, agents: Sequence[AgentChoice | str] | None
) -> list[AgentChoice]:
    """The agents a run compares (`None`: the scenario's own), each label once."""
    if agents is None:
        choices = list(scenario.agents)
    else:
        choices = [scenario.agent(a) if isinstance(a, str) else a for a in agents]
    if not choices:
        raise ValueError("no agents to run")
    labels = [c.label for c in choices]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        where = f"{scenario.source}: agents" if agents is None else "--agents"
        raise ValueError(f"{where}: {', '.join(duplicates)} listed twice")
    return choices


def summarize(
    scenario: str, runs: Iterable[RunFigures], order: Sequence[str] | None = None
) -> ScenarioReport:
    """Aggregate per-run figures (from any machine, in any order) into a report."""
    ordered = sorted(runs, key=lambda r: (r.seed, r.agent))
    if not ordered:
        raise ValueError("no runs to summarise")
    labels = list(order) if order is not None else sorted({r.agent for r in ordered})
    seeds = tuple(sorted({r.seed for r in ordered}))
    agents: dict[str, AgentSummary] = {}
    for label in labels:
        mine = [r for r in ordered if r.agent == label]
        if not mine:
            raise ValueError(f"no runs of agent {label}")
        means = np.array([r.mean_latency_s for r in mine])
        agents[label] = AgentSummary(
            agent=label,
            seeds=len(mine),
            queries=_mean(r.queries for r in mine),
            mean_latency_s=float(means.mean()),
            mean_latency_std_s=float(means.std()),
            p50_latency_s=_mean(r.p50_latency_s for r in mine),
            p95_latency_s=_mean(r.p95_latency_s for r in mine),
            p99_latency_s=_mean(r.p99_latency_s for r in mine),
            mean_slowdown=_mean(r.mean_slowdown for r in mine),
            makespan_s=_mean(r.makespan_s for r in mine),
            utilization=_mean(r.utilization for r in mine),
            lost_tasks=_mean(r.lost_tasks for r in mine),
            rerun_tasks=_mean(r.rerun_tasks for r in mine),
            missed_deadlines=_mean_known(r.missed_deadlines for r in mine),
        )
    # The bound depends on the seed's queries and durations only: one value per seed.
    bound_by_seed = {r.seed: r.lower_bound_mean_latency_s for r in ordered}
    return ScenarioReport(
        scenario=scenario,
        seeds=seeds,
        runs=tuple(ordered),
        agents=agents,
        lower_bound_mean_latency_s=_mean(bound_by_seed.values()),
    )


def _mean(values: Iterable[float]) -> float:
    return float(np.mean(list(values)))


def _mean_known(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are there (None when none is)."""
    known = [v for v in values if v is not None]
    return _mean(known) if known else None


def write_results(
    report: ScenarioReport, scenario: Scenario, folder: str | Path, baseline: str | None = None
) -> list[Path]:
    """results.json plus per-run query/task CSVs, per-seed plan CSVs and the scenario document
    (scenario.yaml); returns the files.

    Needs a report made with `keep_results=True`. Each file is written atomically, results.json
    last, so a folder with a results.json has all its CSVs.
    """
    out = Path(folder)
    missing = [(r.agent, r.seed) for r in report.runs if (r.agent, r.seed) not in report.results]
    if missing:
        raise ValueError(f"report lacks full results for {missing[0]}: run with keep_results=True")
    written = []
    origins = {}
    for seed in report.seeds:
        queries = scenario.queries(seed)
        origins[seed] = {q.query_id: q.origin for q in queries}
        written.append(write_csv(dag_file(out, seed), DAG_COLUMNS, _dag_rows(queries)))
    for (agent, seed), result in report.results.items():
        rows = _query_rows(result, origins[seed])
        written.append(write_csv(queries_file(out, agent, seed), QUERY_COLUMNS, rows))
        written.append(write_csv(tasks_file(out, agent, seed), TASK_COLUMNS, _task_rows(result)))
    ran = report.choices or None
    written.append(atomic_write_text(out / SCENARIO_FILE, scenario_text(scenario, ran)))
    written.append(write_json(out / RESULTS_FILE, report.to_document(baseline)))
    return written


def scenario_text(scenario: Scenario, agents: Sequence[AgentChoice] | None = None) -> str:
    """The scenario document as run, as YAML: what `lsched report` shows and a rerun can load
    from anywhere — `agents` (default: the scenario's) are the agents that ran, and paths the
    file gave relative to its folder (trace, template files) or to the working folder (policy
    checkpoints) are written absolute."""
    document = copy.deepcopy(dict(scenario.document))
    workload, spec = document.get("workload"), scenario.workload
    if isinstance(workload, dict):  # the paths as the run resolved them (`~`, the file's folder)
        trace = workload.get("trace")
        if isinstance(trace, dict) and spec.trace is not None:
            trace["path"] = str(spec.trace.path.resolve())
            trace["sha256"] = spec.trace.sha256  # a rerun refuses a log that changed since
        if workload.get("template_files"):
            workload["template_files"] = [str(p.resolve()) for p in spec.template_files]
    if agents is not None:
        document["agents"] = [_agent_entry(choice) for choice in agents]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _agent_entry(choice: AgentChoice) -> str | dict[str, Any]:
    """An agent as a scenario file lists it, a relative checkpoint made absolute."""
    name, sep, path = choice.name.partition(":")
    if sep and path:
        name = f"{name}:{Path(path).resolve()}"
    options = dict(choice.options)
    if isinstance(options.get("checkpoint"), str):
        options["checkpoint"] = str(Path(options["checkpoint"]).resolve())
    return {"name": name, **options} if options else name


def _query_rows(result: SimResult, origins: Mapping[int, str]) -> Iterable[tuple[object, ...]]:
    for q in result.queries:
        yield (
            q.query_id,
            q.template,
            q.query_class,
            q.scale_factor,
            q.arrival_s,
            q.start_s,
            q.finish_s,
            q.latency_s,
            q.isolated_s,
            q.slowdown,
            origins.get(q.query_id, ""),
        )


def _task_rows(result: SimResult) -> Iterable[tuple[object, ...]]:
    t = result.tasks
    order = np.lexsort((t.task, t.pipeline, t.query_id, t.start_s))
    for i in order:
        yield (
            int(t.query_id[i]),
            int(t.pipeline[i]),
            int(t.task[i]),
            int(t.node[i]),
            int(t.thread[i]),
            float(t.start_s[i]),
            float(t.end_s[i]),
        )


def _dag_rows(queries: Sequence[QuerySpec]) -> Iterable[tuple[object, ...]]:
    for query in queries:
        for p in query.pipelines:
            yield (
                query.query_id,
                p.index,
                ";".join(str(parent) for parent in p.parents),
                p.num_tasks,
                p.operator,
                p.work_s,
                p.est_work_s,
                p.memory_gb,
            )
