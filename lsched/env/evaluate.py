"""A policy trained through the env, compared as `lsched run` compares agents.

An RL library hands back a policy over the env's observations and action masks, not a
`sim` scheduler, so `lsched run` cannot name it. `evaluate` runs it on a scenario's evaluation
seeds, each episode the workload and execution noise `lsched run` gives that seed, beside any
registered agents, and returns the same `ScenarioReport`: the table, `write_results` (then
`lsched plot` and `lsched report`) and the paired comparison work on it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lsched.env.core import QuerySchedulingEnv
from lsched.runner import (
    ScenarioReport,
    figures,
    run_scenario,
    seed_range,
    summarize,
)
from lsched.scenario import AgentChoice, Scenario, load_scenario

EnvPolicy = Callable[[dict[str, np.ndarray], np.ndarray], Any]
"""policy(observation, action_mask) -> action: e.g. for sb3-contrib's MaskablePPO,
`lambda obs, mask: model.predict(obs, action_masks=mask, deterministic=True)[0]`."""


def evaluate(
    policy: EnvPolicy,
    where: Scenario | str | Path | gym.Env,
    seeds: int = 3,
    *,
    label: str = "policy",
    agents: Sequence[AgentChoice | str] = (),
    seed_start: int = 0,
) -> ScenarioReport:
    """`policy` (as `label`) and `agents` on seeds seed_start .. seed_start+seeds-1, with full
    results (`write_results` takes the report). `where` is a scenario (its env as `gym.make`
    builds it) or the env the policy was trained on, options and overrides included, whose
    scenario the agents then run too. An episode cut short by the env's truncation counts
    its finished queries only."""
    if isinstance(where, gym.Env):
        env = where.unwrapped
        if not isinstance(env, QuerySchedulingEnv):
            raise ValueError(f"env: {where!r} is not an lsched QuerySchedulingEnv")
        loaded = env.scenario
    else:
        loaded = where if isinstance(where, Scenario) else load_scenario(where)
        env = QuerySchedulingEnv(loaded)
    seed_list = seed_range(seeds, seed_start, loaded)
    base = None
    if agents:
        base = run_scenario(loaded, list(agents), seeds, seed_start, keep_results=True)
        if label in base.agents:
            raise ValueError(f"label: {label!r} is also the name of one of the agents")
    runs, results = [], {}
    for seed in seed_list:
        started = time.perf_counter()
        observation, _ = env.reset(seed=seed)
        done = False
        while not done:
            action = policy(observation, env.action_masks())
            observation, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        result = env.result()
        runs.append(figures(result, loaded.name, label, seed, time.perf_counter() - started))
        results[label, seed] = result
    if base is None:
        report = summarize(loaded.name, runs, [label])
        return replace(report, results=results)
    report = summarize(loaded.name, [*base.runs, *runs], [*base.agents, label])
    return replace(
        report,
        results={**base.results, **results},
        choices=base.choices,
        descriptions=base.descriptions,
    )
