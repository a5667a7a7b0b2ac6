"""Greedy validation of the policy, next to the baselines, on training-range seeds that no
rollout or teacher episode draws."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

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
    workload_features: bool = True
    guide: str | None = None
    scalability_features: bool = True
    wait_only_with_guide: bool = True


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
            workload_features=task.workload_features,
            scalability_features=task.scalability_features,
            wait_only_with_guide=task.wait_only_with_guide,
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


def validation_seeds(scenario: Scenario, config: TrainConfig) -> list[int]:
    """Training-range seeds no rollout or teacher episode draws (TrainConfig's offsets)."""
    start = scenario.train_seed_offset + config.validation_seed_offset
    return [start + k for k in range(config.eval_seeds)]


def baseline_latencies(
    config: TrainConfig, loaded: Sequence[Scenario], pool: Backend
) -> dict[str, dict[str, float]]:
    tasks = [
        EvalTask(None, None, agent, s.source, seed, config.eval_max_queries)
        for s in loaded
        for agent in config.baselines
        for seed in validation_seeds(s, config)
    ]
    values = pool.map(evaluate_one, tasks)
    table: dict[str, dict[str, list[float]]] = {}
    for task, value in zip(tasks, values, strict=True):
        name = scenario_named(task.scenario).name
        table.setdefault(name, {}).setdefault(task.agent, []).append(value)
    return {s: {a: float(np.mean(v)) for a, v in agents.items()} for s, agents in table.items()}


def evaluate_policy(
    config: TrainConfig,
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    pool: Backend,
    baselines: Mapping[str, Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """Greedy mean latency per scenario next to the best baseline's (lower is better)."""
    weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    tasks = [
        EvalTask(
            weights,
            policy_config,
            "lsched",
            s.source,
            seed,
            config.eval_max_queries,
            config.workload_features,
            config.guide,
            config.scalability_features,
            config.wait_only_with_guide,
        )
        for s in loaded
        for seed in validation_seeds(s, config)
    ]
    values = pool.map(evaluate_one, tasks)
    report: dict[str, dict[str, float]] = {}
    for s in loaded:
        mine = [v for t, v in zip(tasks, values, strict=True) if t.scenario == s.source]
        entry = {"mean_latency_s": float(np.mean(mine))}
        known = baselines.get(s.name, {})
        if known:
            best_agent = min(known, key=known.__getitem__)
            entry["best_baseline_s"] = known[best_agent]
            entry["vs_best"] = entry["mean_latency_s"] / known[best_agent] - 1.0
        report[s.name] = entry
    return report
