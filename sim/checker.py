"""`check_scheduler`: the scheduler contract, measured (in the spirit of gymnasium's env_checker).

A scheduler passes when, on random clusters and random plan DAGs (faults included):

- every decision is a `Decision` naming a schedulable pipeline with a limit in 1..threads, or
  WAIT — and one that names a pipeline binds at least one thread (a decision that binds
  nothing while threads are free would quietly end the round);
- `decide` leaves the views it is shown as they were (they belong to the simulator);
- the same workload gives the same result after `reset`, also after another workload ran in
  between (every per-run state is forgotten, every draw rewound).

Tests run it over every registered agent; `check_scheduler` raises `ContractViolation` with
a message naming the broken rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.engine import Simulation
from sim.interface import Decision, Observation, Scheduler
from sim.model import ClusterConfig, FaultConfig, PipelineSpec, QuerySpec


class ContractViolation(AssertionError):
    """A scheduler that breaks the contract; the message says which rule and where."""


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """How hard `check_scheduler` looks."""

    workloads: int = 3
    """Random (cluster, workload) pairs tried."""
    queries: int = 12
    """Queries per workload."""
    max_pipelines: int = 6
    """Largest random plan (pipelines per query)."""


def random_cluster(rng: np.random.Generator) -> ClusterConfig:
    """A small cluster with random costs, faults on one time in three."""
    faults = FaultConfig(mean_time_between_failures_s=float(rng.uniform(30, 120)), repair_time_s=5)
    return ClusterConfig(
        nodes=int(rng.integers(1, 4)),
        threads_per_node=int(rng.integers(1, 5)),
        memory_per_node_gb=float(rng.uniform(1, 8)),
        moving_delay_s=float(rng.uniform(0, 0.5)),
        warmup_s=float(rng.uniform(0, 0.2)),
        parallel_overhead=float(rng.uniform(0, 0.1)),
        task_skew=float(rng.uniform(0, 1)),
        interference=float(rng.uniform(0, 0.1)),
        faults=faults if rng.random() < 1 / 3 else FaultConfig(),
    )


OPERATORS_DRAWN = ("hash_build", "aggregate", "sort", "cte", "window")
"""Breakers of the random plans' inner pipelines (the last one is always `result`)."""


def random_workload(rng: np.random.Generator, count: int, max_pipelines: int) -> list[QuerySpec]:
    """`count` queries with random plan DAGs (parents point backwards), sizes and estimates."""
    queries = []
    arrival = 0.0
    for query_id in range(count):
        arrival += float(rng.exponential(2.0))
        size = int(rng.integers(1, max_pipelines + 1))
        pipelines = []
        for index in range(size):
            if index == size - 1:  # the result: fed by every pipeline nothing else reads
                read = {p for q in pipelines for p in q.parents}
                parents = tuple(p for p in range(index) if p not in read)
            else:
                parents = tuple(
                    int(p) for p in sorted(rng.choice(index, size=min(index, 2), replace=False))
                ) if index and rng.random() < 0.6 else ()  # fmt: skip
            work = float(rng.lognormal(0.0, 1.0))
            pipelines.append(
                PipelineSpec(
                    index=index,
                    parents=parents,
                    num_tasks=int(rng.integers(1, 16)),
                    work_s=work,
                    est_work_s=work * float(rng.lognormal(0.0, 0.5)),
                    memory_gb=float(rng.uniform(0, 2)) if rng.random() < 0.3 else 0.0,
                    operator="result" if index == size - 1 else str(rng.choice(OPERATORS_DRAWN)),
                    serial_fraction=float(rng.uniform(0, 0.2)),
                )
            )
        queries.append(
            QuerySpec(
                query_id=query_id,
                template=f"t{int(rng.integers(0, 4))}",
                query_class=str(rng.choice(["adhoc", "dashboard"])),
                arrival_s=arrival,
                pipelines=tuple(pipelines),
                scale_factor=float(rng.choice([1.0, 3.0])),
                priority=float(rng.choice([1.0, 2.0])),
                deadline_s=30.0 if rng.random() < 0.2 else None,
            )
        )
    return queries


def _snapshot(obs: Observation) -> tuple:
    """Everything a scheduler can see, as plain values."""
    return (
        obs.now_s,
        obs.free_threads,
        tuple(obs.free_threads_per_node),
        tuple(obs.memory_used_gb),
        tuple(obs.nodes_up),
        len(obs.completed),
        obs.arrivals_so_far,
        tuple(p.ref for p in obs.schedulable),
        tuple(
            (
                q.query_id,
                q.threads,
                q.started_s,
                q.est_work_s,
                q.priority,
                tuple(
                    (
                        p.threads,
                        p.limit,
                        p.tasks_done,
                        p.tasks_running,
                        p.is_ready,
                        p.is_finished,
                        p.est_work_s,
                        p.parents,
                        p.children,
                    )
                    for p in q.pipelines
                ),
            )
            for q in obs.queries
        ),
    )


def _run(
    scheduler: Scheduler,
    queries: Sequence[QuerySpec],
    cluster: ClusterConfig,
    seed: int,
    name: str,
) -> tuple[float, ...]:
    """One checked run; returns every query's finish time (its result, for comparison)."""
    simulation = Simulation(queries, cluster, np.random.default_rng(seed), record_tasks=False)
    scheduler.reset(cluster)
    observation = simulation.advance()
    while observation is not None:
        before = _snapshot(observation)
        decision = scheduler.decide(observation)
        if _snapshot(observation) != before:
            raise ContractViolation(f"{name}: decide() changed the views it was shown")
        _check_decision(decision, observation, name)
        try:
            bound = simulation.apply(decision)
        except ValueError as error:  # e.g. WAIT with the whole cluster idle and nothing to come
            raise ContractViolation(f"{name}: decision {decision}: {error}") from None
        if decision.pipeline is not None and bound == 0:
            raise ContractViolation(
                f"{name}: decision {decision} bound no thread while {before[1]} were free "
                "(a decision that names a pipeline must raise its limit above its threads)"
            )
        observation = simulation.advance()
    return tuple(r.finish_s for r in simulation.result().queries)


def _check_decision(decision: object, obs: Observation, name: str) -> None:
    if not isinstance(decision, Decision):
        raise ContractViolation(f"{name}: decide() returned {decision!r}, not a Decision")
    if decision.pipeline is None:
        return
    refs = {p.ref for p in obs.schedulable}
    if decision.pipeline not in refs:
        raise ContractViolation(f"{name}: decision names {decision.pipeline}, not schedulable")
    limit = decision.limit
    total = obs.cluster.total_threads
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | np.integer)
        or not 1 <= limit <= total
    ):
        raise ContractViolation(f"{name}: limit {limit!r} is not an integer in 1..{total}")


def check_scheduler(
    scheduler: Scheduler,
    *,
    name: str = "scheduler",
    seed: int = 0,
    settings: CheckSettings | None = None,
) -> None:
    """Raise ContractViolation if `scheduler` breaks the contract (see the module docstring)."""
    settings = settings or CheckSettings()
    if not isinstance(scheduler, Scheduler):
        raise ContractViolation(f"{name}: {scheduler!r} has no reset(cluster) and decide(obs)")
    rng = np.random.default_rng([seed, 16])
    cases = [
        (random_cluster(rng), random_workload(rng, settings.queries, settings.max_pipelines))
        for _ in range(settings.workloads)
    ]
    first = [_run(scheduler, q, c, seed + i, name) for i, (c, q) in enumerate(cases)]
    again = [
        _run(scheduler, q, c, seed + i, name) for i, (c, q) in reversed(list(enumerate(cases)))
    ]
    if first != again[::-1]:
        raise ContractViolation(
            f"{name}: the same workload gave another result after reset (state kept across runs)"
        )
