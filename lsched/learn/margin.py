"""Choosing the deviation margin: how sure the trained policy must be to override its guide.

Policy gradient leaves small preferences everywhere, and on workloads it never saw some of
them cost more than they win. After training, the best policy is run greedily on validation
workloads with each margin of `TrainConfig.margin_grid` (PolicyOptions.deviation_margin) and
the margin whose worst scenario is closest to (or furthest below) the best baseline ships: a
worst-case rule, because the judgement is "never above the best baseline anywhere".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents.learned.agent import PolicyOptions
from agents.learned.policy import Policy, PolicyConfig
from lsched.backends import Backend
from lsched.learn.config import TrainConfig
from lsched.learn.evaluation import (
    Workloads,
    baseline_latencies,
    evaluate_policy,
    validation_seeds,
)
from lsched.learn.rollout import scenario_named
from lsched.scenario import AgentChoice, Scenario


def choose_margin(
    config: TrainConfig,
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    pool: Backend,
) -> tuple[float, dict[str, Any]]:
    """(the chosen margin, a report: per margin its ratio to the best baseline per scenario
    and its worst one), on `margin_seeds` validation workloads of full length."""
    workloads = Workloads.margin(config)
    baselines = baseline_latencies(config, loaded, pool, workloads)
    rows: dict[str, Any] = {}
    margins = sorted(set(config.margin_grid))
    for margin in margins:
        options = replace(PolicyOptions.of(config), deviation_margin=float(margin))
        report = evaluate_policy(
            config, loaded, policy, policy_config, pool, baselines, workloads, options
        )
        ratios = {name: entry["vs_best"] for name, entry in report.items()}
        rows[str(margin)] = {"vs_best": ratios, "worst": max(ratios.values())}
    chosen = min(margins, key=lambda m: rows[str(m)]["worst"])  # ties: the smaller margin
    return float(chosen), {"chosen": float(chosen), "seeds": workloads.seeds, "margins": rows}


def choose_query_margin(config: TrainConfig, checkpoint: Path) -> tuple[float, dict[str, Any]]:
    """(the query-level form's margin, a report as `choose_margin`'s) for the policy file
    `checkpoint`: on `margin_seeds` whole validation workloads of each of
    `query_margin_scenarios`, the form `lsched real` runs (`decisions: query`) at each margin
    of `query_margin_grid`, against the best of the baselines' query-level forms there.

    Its own selection, because the query-level form decides something training never did: a
    grant a query keeps to its end, where the pipeline-level limit it was trained on is a cap
    other pipelines share around."""
    from agents.query_level import QUERY_FORMS

    baselines = [b for b in config.baselines if b in QUERY_FORMS or b == "tuned"]
    margins = sorted(set(config.query_margin_grid))
    rows: dict[str, Any] = {str(m): {"vs_best": {}} for m in margins}
    seeds_used: dict[str, list[int]] = {}
    for name in config.query_margin_scenarios:
        scenario = scenario_named(name)
        seeds = seeds_used[scenario.name] = validation_seeds(scenario, config, config.margin_seeds)
        best = min(
            _mean_latency(scenario, AgentChoice(b, {"decisions": "query"}), seeds)
            for b in baselines
        )
        for margin in margins:
            options = {"decisions": "query", "checkpoint": str(checkpoint)}
            agent = AgentChoice("lsched", {**options, "deviation_margin": float(margin)})
            ratio = _mean_latency(scenario, agent, seeds) / best - 1.0
            rows[str(margin)]["vs_best"][scenario.name] = ratio
    for row in rows.values():
        row["worst"] = max(row["vs_best"].values())
    chosen = min(margins, key=lambda m: rows[str(m)]["worst"])  # ties: the smaller margin
    report = {"chosen": float(chosen), "seeds": seeds_used, "baselines": baselines}
    return float(chosen), {**report, "margins": rows}


def _mean_latency(scenario: Scenario, agent: AgentChoice, seeds: Sequence[int]) -> float:
    from lsched.runner import simulate_one

    return statistics.fmean(simulate_one(scenario, agent, seed).mean_latency_s for seed in seeds)
