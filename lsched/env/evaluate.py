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
    agent_labels,
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
    builds it) or the env the policy was trained on — options, overrides and observation
    wrappers included: the policy sees what it saw in training — whose scenario the agents
    then run too. Episodes run to the end (an env that truncates them is refused: a partial
    run is not comparable), and an action outside the mask is an InvalidActionError, not the
    training penalty (a policy that insists on one would never finish)."""
    if isinstance(where, gym.Env):
        stepper, env = where, where.unwrapped
        if not isinstance(env, QuerySchedulingEnv):
            raise ValueError(f"env: {where!r} is not an lsched QuerySchedulingEnv")
        if env.episode_queries is not None or env.episode_time_s is not None:
            raise ValueError(
                "env: it truncates episodes (episode_queries / episode_time_s); evaluate "
                "on one that runs them to the end, as the agents' runs are"
            )
        loaded = env.scenario
    elif isinstance(where, Scenario | str | Path):
        loaded = where if isinstance(where, Scenario) else load_scenario(where)
        env = QuerySchedulingEnv(loaded)
        stepper = env
    else:
        raise ValueError(f"{where!r}: expected a scenario, its name or file, or one lsched env")
    seed_list = seed_range(seeds, seed_start, loaded)
    if agents and label in agent_labels(loaded, list(agents)):  # before any agent runs
        raise ValueError(f"label: {label!r} is also the name of one of the agents")
    base = (
        run_scenario(loaded, list(agents), seeds, seed_start, keep_results=True) if agents else None
    )
    runs, results = [], {}
    invalid_action = env.invalid_action
    env.invalid_action = "raise"
    try:
        for seed in seed_list:
            started = time.perf_counter()
            observation, _ = stepper.reset(seed=seed)
            done = False
            while not done:
                action = policy(observation, env.action_masks())
                observation, _, terminated, truncated, _ = stepper.step(action)
                done = terminated or truncated
            result = env.result()
            runs.append(figures(result, loaded.name, label, seed, time.perf_counter() - started))
            results[label, seed] = result
    finally:
        env.invalid_action = invalid_action
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
