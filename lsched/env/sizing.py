"""Observation sizes from the scenario: the padding a workload needs, within a value budget.

A fixed-shape observation pads every plan to the largest and the system to a query window.
Padding for the worst case of any workload (128 queries × 64 pipelines) made the default
observation 657k values and SB3's default policy 85M parameters, too large to train. So the
env sizes itself from the scenario when `env:` leaves a size unset:

- pipelines per query: the largest plan among the templates the workload can draw, so no
  query ever outgrows it;
- the query window: `window_margin` × the peak number of queries in the system when `fair`
  schedules seed 0 (a load-aware figure: a batch of 120 needs 120, a light stream 16),
  rounded up to a multiple of WINDOW_STEP, then shrunk until the observation fits in
  `observation_budget` values. The window is a view, not a cap: queries beyond it wait
  outside and enter as older ones finish (the env reports how many wait), so a policy that
  lets the queue grow past it loses nothing but visibility of the youngest queries.
"""

from __future__ import annotations

import dataclasses
from math import ceil
from typing import Any

from agents.features import GLOBAL_FEATURES, PIPELINE_FEATURES, QUERY_FEATURES
from lsched.errors import ScenarioError
from lsched.runner import build_agent
from lsched.workloads.generate import workload_templates
from sim.engine import simulate

SIZING_SEED = 0
"""The workload seed whose `fair` schedule sizes the window (an evaluation seed: sizing
reads no training data, and every env of a scenario gets the same sizes)."""
SIZING_AGENT = "fair"
"""The heuristic whose peak load sizes the window: simple, work-conserving, never starves."""
WINDOW_STEP = 8
"""Windows are multiples of this, so small changes of load do not reshape the spaces."""


def observation_values(max_queries: int, max_pipelines: int, parallelism_choices: int) -> int:
    """Values in one observation of the env with these sizes (every key, flattened)."""
    per_query = (
        max_pipelines * len(PIPELINE_FEATURES)  # pipelines
        + max_pipelines * 3  # pipeline_mask, schedulable, operator
        + max_pipelines * max_pipelines  # adjacency
        + max_pipelines  # the action mask's slots
        + len(QUERY_FEATURES)  # queries
        + 2  # query_mask, query_class
    )
    fixed = len(GLOBAL_FEATURES) + 1 + 1 + parallelism_choices  # global, waiting, WAIT, levels
    return max_queries * per_query + fixed


def sized_limits(scenario: Any, parallelism_choices: int) -> Any:
    """The scenario's `env` limits with every unset size filled in (see the module doc)."""
    limits = scenario.env
    pipelines = limits.max_pipelines_per_query or largest_plan(scenario)
    queries = limits.max_queries
    if queries is None:
        peak = peak_queries(scenario)
        queries = max(WINDOW_STEP, _round_up(ceil(peak * limits.window_margin), WINDOW_STEP))
        budget = int(limits.observation_budget)
        while queries > WINDOW_STEP and (
            observation_values(queries, pipelines, parallelism_choices) > budget
        ):
            queries -= WINDOW_STEP
        smallest = observation_values(queries, pipelines, parallelism_choices)
        if smallest > budget:
            raise ScenarioError(
                getattr(scenario, "source", scenario.name),
                "env.observation_budget",
                f"{budget} values cannot hold the smallest window ({queries} queries of "
                f"{pipelines} pipelines: {smallest} values); raise it, or set env.max_queries",
            )
    return dataclasses.replace(limits, max_queries=queries, max_pipelines_per_query=pipelines)


def largest_plan(scenario: Any) -> int:
    """Pipelines of the largest plan among the templates the workload can draw."""
    templates = workload_templates(scenario.workload, scenario.templates)
    return max((len(t.pipelines) for t in templates), default=1)


_PEAKS: dict[str, int] = {}
"""Peak load by scenario document: envs of one scenario (vector envs, resets) size once."""


def peak_queries(scenario: Any) -> int:
    """Most queries in the system at once when SIZING_AGENT schedules SIZING_SEED."""
    key = f"{scenario.source}\0{scenario.document!r}"
    if key not in _PEAKS:
        _PEAKS[key] = _simulated_peak(scenario)
    return _PEAKS[key]


def _simulated_peak(scenario: Any) -> int:
    agent = build_agent(scenario, SIZING_AGENT)
    queries = scenario.queries(SIZING_SEED)
    result = simulate(queries, scenario.cluster, agent, scenario.execution_rng(SIZING_SEED))
    events = sorted(
        [(q.arrival_s, 1) for q in result.queries] + [(q.finish_s, -1) for q in result.queries]
    )  # at equal times a finish (-1) sorts first: a query leaving as one arrives is not a peak
    count = peak = 0
    for _, change in events:
        count += change
        peak = max(peak, count)
    return peak


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step
