"""Choosing the deviation margin: how sure the trained policy must be to override its guide.

Policy gradient leaves small preferences everywhere, and on workloads it never saw some of
them cost more than they win. After training, the best policy is run greedily on validation
workloads with each margin of `TrainConfig.margin_grid` (PolicyOptions.deviation_margin) and
the margin whose worst scenario is closest to (or furthest below) the best baseline ships: a
worst-case rule, because the judgement is "never above the best baseline anywhere".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agents.learned.agent import PolicyOptions
from agents.learned.policy import Policy, PolicyConfig
from lsched.backends import Backend
from lsched.learn.config import TrainConfig
from lsched.learn.evaluation import Workloads, baseline_latencies, evaluate_policy
from lsched.scenario import Scenario


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
