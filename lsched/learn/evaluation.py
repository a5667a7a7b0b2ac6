"""Greedy validation of the policy, next to the baselines, on training-range seeds that no
rollout or teacher episode draws."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.learned.agent import PolicyOptions
from agents.learned.policy import Policy, PolicyConfig
from lsched.backends import Backend
from lsched.learn.config import TrainConfig
from lsched.learn.rollout import learned_scheduler, scenario_named
from lsched.scenario import Scenario


@dataclass(frozen=True)
class EvalTask:
    weights: dict[str, torch.Tensor] | None
    """Policy weights, or None to run the heuristic `agent` instead."""
    policy: PolicyConfig | None
    agent: str
    scenario: str
    seed: int
    max_queries: int | None
    options: PolicyOptions = field(default_factory=PolicyOptions)
    guide: str | None = None


def evaluate_one(task: EvalTask) -> float:
    """Mean latency of one (agent, scenario, training-range seed) run, to the end of the queries."""
    from lsched.runner import build_agent
    from sim.engine import simulate

    torch.set_num_threads(1)
    scenario = scenario_named(task.scenario)
    queries = sorted(scenario.queries(task.seed), key=lambda q: (q.arrival_s, q.query_id))
    if task.max_queries is not None:
        queries = queries[: task.max_queries]
    if task.weights is not None and task.policy is not None:
        policy = Policy(task.policy)
        policy.load_state_dict(task.weights)
        policy.eval()
        scheduler: Any = learned_scheduler(
            scenario,
            policy,
            options=task.options,
            guide=task.guide,
        )
    else:
        scheduler = build_agent(scenario, task.agent)
    result = simulate(
        queries,
        scenario.cluster,
        scheduler,
        scenario.execution_rng(task.seed),
        oracle=scenario.oracle,
        record_tasks=False,
    )
    return result.mean_latency_s


@dataclass(frozen=True)
class Workloads:
    """Which validation workloads a measurement runs: the first `seeds` of each scenario's
    validation range, each cut at its first `max_queries` queries (None: whole)."""

    seeds: int
    max_queries: int | None

    @classmethod
    def validation(cls, config: TrainConfig) -> Workloads:
        """The ones training's periodic evaluation picks the best iteration on."""
        return cls(config.eval_seeds, config.eval_max_queries)

    @classmethod
    def margin(cls, config: TrainConfig) -> Workloads:
        """The ones the deviation margin is chosen on (lsched.learn.margin)."""
        return cls(config.margin_seeds, config.margin_max_queries)


def validation_seeds(scenario: Scenario, config: TrainConfig, count: int) -> list[int]:
    """The first `count` training-range seeds no rollout or teacher episode draws
    (TrainConfig's offsets)."""
    start = scenario.train_seed_offset + config.validation_seed_offset
    return [start + k for k in range(count)]


def baseline_runs(
    config: TrainConfig, loaded: Sequence[Scenario], pool: Backend, workloads: Workloads
) -> dict[str, dict[str, list[float]]]:
    """Mean latency of every baseline per scenario on each of `workloads`, in seed order."""
    tasks = [
        EvalTask(None, None, agent, s.source, seed, workloads.max_queries)
        for s in loaded
        for agent in config.baselines
        for seed in validation_seeds(s, config, workloads.seeds)
    ]
    values = pool.map(evaluate_one, tasks)
    table: dict[str, dict[str, list[float]]] = {}
    for task, value in zip(tasks, values, strict=True):
        name = scenario_named(task.scenario).name
        table.setdefault(name, {}).setdefault(task.agent, []).append(value)
    return table


def baseline_latencies(
    config: TrainConfig, loaded: Sequence[Scenario], pool: Backend, workloads: Workloads
) -> dict[str, dict[str, float]]:
    """Mean latency of every baseline per scenario on `workloads`."""
    table = baseline_runs(config, loaded, pool, workloads)
    return {s: {a: float(np.mean(v)) for a, v in agents.items()} for s, agents in table.items()}


def policy_runs(
    config: TrainConfig,
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    pool: Backend,
    workloads: Workloads,
    options: PolicyOptions | None = None,
) -> dict[str, list[float]]:
    """The greedy policy's mean latency per scenario on each of `workloads`, in seed order,
    with `options` (default the run's)."""
    weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    tasks = [
        EvalTask(
            weights,
            policy_config,
            "lsched",
            s.source,
            seed,
            workloads.max_queries,
            options or PolicyOptions.of(config),
            config.guide,
        )
        for s in loaded
        for seed in validation_seeds(s, config, workloads.seeds)
    ]
    values = pool.map(evaluate_one, tasks)
    return {
        s.name: [v for t, v in zip(tasks, values, strict=True) if t.scenario == s.source]
        for s in loaded
    }


def evaluate_policy(
    config: TrainConfig,
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    pool: Backend,
    baselines: Mapping[str, Mapping[str, float]],
    workloads: Workloads,
    options: PolicyOptions | None = None,
) -> dict[str, dict[str, float]]:
    """Greedy mean latency per scenario on `workloads`, next to the best baseline's there
    (lower is better), with `options` (default the run's)."""
    runs = policy_runs(config, loaded, policy, policy_config, pool, workloads, options)
    report: dict[str, dict[str, float]] = {}
    for s in loaded:
        entry = {"mean_latency_s": float(np.mean(runs[s.name]))}
        known = baselines.get(s.name, {})
        if known:
            best_agent = min(known, key=known.__getitem__)
            entry["best_baseline_s"] = known[best_agent]
            entry["vs_best"] = entry["mean_latency_s"] / known[best_agent] - 1.0
        report[s.name] = entry
    return report
