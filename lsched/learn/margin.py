"""Choosing the deviation margin: how sure the trained policy must be to override its guide.

Policy gradient leaves small preferences everywhere, and on workloads it never saw some of
them cost more than they win. After training, the best policy is run greedily on validation
workloads with each margin of `TrainConfig.margin_grid` (PolicyOptions.deviation_margin) and
the margin whose worst scenario is closest to (or furthest below) the best baseline ships: a
worst-case rule, because the judgement is "never above the best baseline anywhere".

Each scenario is scored by the upper end of its ratio's confidence interval, not the ratio
alone (`TrainConfig.margin_confidence_z` standard errors of the paired per-workload ratios
above it), as high-confidence policy improvement does (Thomas, Theocharous, Ghavamzadeh,
ICML 2015): a few validation workloads do not resolve a point or two, and a small margin that
won on them by luck lost held out (2026-12-03: chosen at −0.36% worst, +1.66% on held-out
seeds). A margin that deviates less varies less around the guide, so it wins unless the gain
of deviating more stands out of the noise.
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
    baseline_runs,
    policy_runs,
    validation_seeds,
)
from lsched.scenario import AgentChoice, Scenario


def choose_margin(
    config: TrainConfig,
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    pool: Backend,
) -> tuple[float, dict[str, Any]]:
    """(the chosen margin, a report: per margin its ratio to the best baseline per scenario,
    the upper end of that ratio's interval, and the worst upper end), on `margin_seeds`
    validation workloads of full length."""
    workloads = Workloads.margin(config)
    baselines = baseline_runs(config, loaded, pool, workloads)
    best = {name: min(runs.values(), key=statistics.fmean) for name, runs in baselines.items()}
    rows: dict[str, Any] = {}
    margins = sorted(set(config.margin_grid))
    for margin in margins:
        options = replace(PolicyOptions.of(config), deviation_margin=float(margin))
        mine = policy_runs(config, loaded, policy, policy_config, pool, workloads, options)
        scores = {name: paired_ratio(mine[name], best[name]) for name in mine}
        rows[str(margin)] = _row(scores, config.margin_confidence_z)
    return _choice(config, margins, rows, seeds=workloads.seeds)


def paired_ratio(mine: Sequence[float], best: Sequence[float]) -> tuple[float, float]:
    """(mean(mine) / mean(best) − 1, the standard error of the per-workload ratios mine/best,
    0 with a single workload): how far, and how surely, the policy sits from the baseline."""
    ratio = statistics.fmean(mine) / statistics.fmean(best) - 1.0
    if len(mine) < 2:
        return ratio, 0.0
    paired = [m / b for m, b in zip(mine, best, strict=True)]
    return ratio, statistics.stdev(paired) / len(paired) ** 0.5


def _row(scores: dict[str, tuple[float, float]], z: float) -> dict[str, Any]:
    upper = {name: ratio + z * error for name, (ratio, error) in scores.items()}
    return {
        "vs_best": {name: ratio for name, (ratio, _) in scores.items()},
        "upper": upper,
        "worst": max(upper.values()),
        "mean_upper": statistics.fmean(upper.values()),
    }


def _choice(
    config: TrainConfig, margins: Sequence[float], rows: dict[str, Any], **context: Any
) -> tuple[float, dict[str, Any]]:
    """(the chosen margin, the report: the choice, `context`, the rule's z and every row)."""
    chosen = float(_best(margins, rows))
    report = {"chosen": chosen, **context, "confidence_z": config.margin_confidence_z}
    return chosen, {**report, "margins": rows}


def _best(margins: Sequence[float], rows: dict[str, Any]) -> float:
    """The margin with the lowest worst upper bound; among equals (a scenario where every
    margin makes the guide's decisions pins the worst at 0), the lowest mean upper bound,
    then the smaller margin."""
    return min(margins, key=lambda m: (rows[str(m)]["worst"], rows[str(m)]["mean_upper"], m))


def choose_query_margin(
    config: TrainConfig, checkpoint: Path, scenarios: Sequence[Scenario]
) -> tuple[float, dict[str, Any]]:
    """(the query-level form's margin, a report as `choose_margin`'s) for the policy file
    `checkpoint`: on `margin_seeds` whole validation workloads of each of `scenarios` (the
    loaded `query_margin_scenarios`), the form `lsched real` runs (`decisions: query`) at each
    margin of `query_margin_grid`, against the best of the baselines' query-level forms there.

    Its own selection, because the query-level form decides something training never did: a
    grant a query keeps to its end, where the pipeline-level limit it was trained on is a cap
    other pipelines share around."""
    from agents.query_level import QUERY_FORMS

    baselines = [b for b in config.baselines if b in QUERY_FORMS or b == "tuned"]
    margins = sorted(set(config.query_margin_grid))
    scores: dict[str, dict[str, tuple[float, float]]] = {str(m): {} for m in margins}
    seeds_used: dict[str, list[int]] = {}
    for scenario in scenarios:
        seeds = seeds_used[scenario.name] = validation_seeds(scenario, config, config.margin_seeds)
        best = min(
            (
                _mean_latencies(scenario, AgentChoice(b, {"decisions": "query"}), seeds)
                for b in baselines
            ),
            key=statistics.fmean,
        )
        for margin in margins:
            options = {"decisions": "query", "checkpoint": str(checkpoint)}
            agent = AgentChoice("lsched", {**options, "deviation_margin": float(margin)})
            mine = _mean_latencies(scenario, agent, seeds)
            scores[str(margin)][scenario.name] = paired_ratio(mine, best)
    rows = {m: _row(s, config.margin_confidence_z) for m, s in scores.items()}
    return _choice(config, margins, rows, seeds=seeds_used, baselines=baselines)


def _mean_latencies(scenario: Scenario, agent: AgentChoice, seeds: Sequence[int]) -> list[float]:
    from lsched.runner import simulate_one

    return [simulate_one(scenario, agent, seed).mean_latency_s for seed in seeds]
