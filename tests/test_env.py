"""The Gymnasium environment: the gym contract, equivalence with the runner, rewards, errors."""

from __future__ import annotations

import os
import tomllib
import warnings
from functools import cache
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents import AGENTS
from lsched.env import (
    ENV_ID,
    FlatObservation,
    GraphObservation,
    InvalidActionError,
    QuerySchedulingEnv,
    graph_instance,
    register_env,
)
from lsched.env.sizing import observation_values
from lsched.errors import ScenarioError
from lsched.runner import build_agent, simulate_one
from lsched.scenario import Scenario, load_scenario
from sim.bounds import isolated_latency_s
from sim.engine import simulate
from sim.interface import WAIT, Decision

SMALL = {
    "workload.queries": 24,
    "workload.streams.0.arrivals.rate_per_s": 0.05,
    "cluster.nodes": 1,
    "cluster.threads_per_node": 4,
    "env.max_queries": 24,
    "env.max_pipelines_per_query": 12,
}
"""A few queries on 4 threads, small enough padding for an MLP policy."""
ROOT = Path(__file__).parent.parent
BUNDLED = sorted(path.stem for path in (ROOT / "scenarios").glob("*.yaml"))
HEURISTICS = sorted(name for name in AGENTS if name != "tuned")
"""Every rule-based agent; `tuned` only chooses among them (and trains while being built)."""


@cache
def small() -> Scenario:
    return load_scenario("tpch-streaming").with_overrides(SMALL)


@cache
def scenario(name: str, queries: int) -> Scenario:
    return load_scenario(name).with_overrides(
        {"workload.queries": queries, "env.max_queries": 1024}
    )


def random_action(env: QuerySchedulingEnv, rng: np.random.Generator) -> np.ndarray:
    """A legal action drawn uniformly from the mask (WAIT included when legal)."""
    mask = env.action_masks()
    legal = np.flatnonzero(mask[: env.slots + 1])
    choices = np.flatnonzero(mask[env.slots + 1 :])
    return np.array([legal[rng.integers(len(legal))], choices[rng.integers(len(choices))]])


def run_heuristic(env: QuerySchedulingEnv, name: str, seed: int) -> tuple[float, int]:
    """Drive a runner-built agent through the env; returns (sum of rewards, steps)."""
    agent = build_agent(env.scenario, name)  # type: ignore[arg-type]
    agent.reset(env.cluster)
    env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        action = env.decision_to_action(agent.decide(env.sim_observation))
        _, reward, terminated, truncated, _ = env.step(action)
        total += reward
        steps += 1
        done = terminated or truncated
    return total, steps


def checked_cleanly(env: gym.Env) -> None:
    """gymnasium's check_env with every warning an error (the wrapper notice excepted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped")
        check_env(env)


# --------------------------------------------------------------------------- the gym contract
def test_both_checkers_pass_on_the_defaults_without_warnings() -> None:
    env = gym.make(ENV_ID)
    checked_cleanly(env.unwrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env.unwrapped)


OPTION_COMBINATIONS = [
    {"reward": reward, "parallelism": parallelism, **extra}
    for reward in ("latency", "slowdown", "deadline")
    for parallelism in ("exact", "levels")
    for extra in ({}, {"episode_time_s": 50.0, "invalid_penalty": 0.5, "reward_scale": 1.0})
]


@pytest.mark.parametrize("options", OPTION_COMBINATIONS, ids=str)
def test_both_checkers_pass_on_every_option_combination(options: dict) -> None:
    env = gym.make(ENV_ID, scenario=small(), **options)
    checked_cleanly(env.unwrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env.unwrapped)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("invalid_penalty", float("nan")),
        ("invalid_penalty", -5.0),
        ("reward_scale", 0.0),
        ("reward_scale", -1.0),
        ("episode_time_s", -5.0),
        ("episode_time_s", float("nan")),
        ("episode_queries", 0),
        ("episode_queries", True),
    ],
)
def test_a_numeric_option_out_of_range_is_one_line(option: str, value: object) -> None:
    """A NaN penalty made every reward NaN, a negative one rewarded illegal actions, and a
    zero or negative episode length ended each episode after a step: all refused, by name."""
    from lsched.errors import LschedError

    with pytest.raises(LschedError, match=f"env option {option}: "):
        gym.make(ENV_ID, scenario=small(), **{option: value})


@pytest.mark.parametrize("wrapper", [GraphObservation, FlatObservation])
def test_the_shipped_wrappers_pass_the_checker(wrapper: type) -> None:
    checked_cleanly(wrapper(gym.make(ENV_ID, scenario=small())))
    if wrapper is GraphObservation:
        checked_cleanly(GraphObservation(gym.make(ENV_ID, scenario=small()), padded=False))


def test_strict_mode_rejects_the_checkers_random_actions() -> None:
    """`raise` is for debugging an agent: the checkers' unmasked random actions are refused."""
    env = gym.make(ENV_ID, scenario=small(), invalid_action="raise")
    with pytest.raises(InvalidActionError):
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("name", BUNDLED)
def test_default_observation_is_sized_from_the_scenario_within_the_budget(name: str) -> None:
    env = QuerySchedulingEnv(name)
    sc = env.scenario
    assert env.observation_values <= sc.env.observation_budget
    assert env.observation_values == sum(
        int(np.prod(space.shape)) for space in env.observation_space.spaces.values()
    )
    assert env.observation_values == observation_values(
        env.max_queries, env.max_pipelines, len(env.extra_threads)
    )
    largest = max(len(q.pipelines) for seed in range(3) for q in sc.queries(seed))
    assert largest <= env.max_pipelines
    assert env.max_queries % 8 == 0 and env.max_queries >= 8


def test_make_by_name_builds_the_bundled_scenario() -> None:
    register_env()  # idempotent
    env = gym.make(ENV_ID, scenario="tpch-streaming")
    inner = env.unwrapped
    assert isinstance(inner, QuerySchedulingEnv)
    shapes = inner.observation_shapes
    assert shapes["pipelines"][:2] == (inner.max_queries, inner.max_pipelines)
    assert env.observation_space["pipelines"].shape == (int(np.prod(shapes["pipelines"])),)
    slots = inner.max_queries * inner.max_pipelines
    assert env.action_space.nvec.tolist() == [slots + 1, inner.cluster.total_threads]
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["episode_seed"] == 0 and info["sim_time_s"] >= 0.0
    np.testing.assert_array_equal(info["action_mask"], inner.action_masks())
    np.testing.assert_array_equal(obs["action_mask"], inner.action_masks())
    structured = inner.unflatten(obs)
    assert structured["adjacency"].shape == (inner.max_queries, 12, 12)


def test_overrides_option_reaches_the_scenario() -> None:
    env = QuerySchedulingEnv("tpch-streaming", overrides=SMALL)
    assert env.cluster.total_threads == 4
    assert env.max_queries == 24 and env.max_pipelines == 12


@pytest.mark.parametrize("vector", [SyncVectorEnv, AsyncVectorEnv])
def test_vector_envs_step(vector: type) -> None:
    envs = vector([lambda: gym.make(ENV_ID, scenario=small()) for _ in range(2)])
    try:
        obs, _ = envs.reset(seed=[3, 4])
        assert obs["pipelines"].shape[0] == 2
        rng = np.random.default_rng(0)
        slots = small().env.max_queries * small().env.max_pipelines_per_query
        for _ in range(20):
            actions = []
            for mask in obs["action_mask"]:
                legal = np.flatnonzero(mask[: slots + 1])
                actions.append([legal[rng.integers(len(legal))], 0])
            obs, rewards, _, _, _ = envs.step(np.array(actions))
            assert rewards.shape == (2,) and (rewards <= 0).all()
    finally:
        envs.close()


def test_graph_view_runs_in_async_vector_envs_with_shared_memory() -> None:
    envs = AsyncVectorEnv(
        [lambda: GraphObservation(gym.make(ENV_ID, scenario=small())) for _ in range(2)]
    )
    try:
        obs, _ = envs.reset(seed=[0, 1])
        for _ in range(5):
            obs, _, _, _, _ = envs.step(np.array([[small_wait_slot(), 0]] * 2))
        assert obs["nodes"].shape[0] == 2
        counts = obs["node_count"].reshape(-1)
        assert (counts == obs["pipeline_mask"].sum(axis=1)).all()
    finally:
        envs.close()


def small_wait_slot() -> int:
    limits = small().env
    return limits.max_queries * limits.max_pipelines_per_query


@pytest.mark.slow
def test_maskable_ppo_learns_without_error() -> None:
    sb3_contrib = pytest.importorskip("sb3_contrib")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    env = gym.make(ENV_ID, scenario=small())
    model = sb3_contrib.MaskablePPO(
        "MultiInputPolicy", env, n_steps=256, batch_size=64, n_epochs=2, seed=0, verbose=0
    )
    model.learn(total_timesteps=2_000)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    assert env.unwrapped.action_masks()[int(action[0])]


# --------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristics_through_the_env_reproduce_the_runner(name: str) -> None:
    sc = scenario("tpch-streaming", 60)
    reference = simulate_one(sc, name, 5)
    env = QuerySchedulingEnv(sc)
    total, steps = run_heuristic(env, name, 5)
    result = env.result()
    assert result.mean_latency_s == reference.mean_latency_s
    assert result.latencies_s().tolist() == reference.latencies_s().tolist()
    assert result.decisions == reference.decisions == steps
    assert total == pytest.approx(-0.01 * result.latencies_s().sum(), rel=1e-9)


def test_the_learned_agent_through_the_env_reproduces_the_runner() -> None:
    sc = scenario("tpch-streaming", 60)
    reference = simulate_one(sc, "lsched", 1)
    env = QuerySchedulingEnv(sc)
    _, steps = run_heuristic(env, "lsched", 1)
    result = env.result()
    assert result.latencies_s().tolist() == reference.latencies_s().tolist()
    assert result.decisions == reference.decisions == steps


def first_legal_largest(env: QuerySchedulingEnv, rng: np.random.Generator) -> np.ndarray:
    """A deliberately bad policy: the first legal slot (often WAIT's neighbour), all threads."""
    mask = env.action_masks()
    return np.array([np.flatnonzero(mask[: env.slots + 1])[0], len(env.extra_threads) - 1])


def wait_then_last_smallest(env: QuerySchedulingEnv, rng: np.random.Generator) -> np.ndarray:
    """WAIT whenever it is legal; else the youngest pipeline offered, one thread."""
    mask = env.action_masks()
    if mask[env.wait_slot]:
        return np.array([env.wait_slot, 0])
    return np.array([np.flatnonzero(mask[: env.slots])[-1], 0])


def unmasked_random(env: QuerySchedulingEnv, rng: np.random.Generator) -> np.ndarray:
    """What a learner without masks sends: any action of the space."""
    return np.array([rng.integers(env.slots + 1), rng.integers(len(env.extra_threads))])


@pytest.mark.parametrize("name", BUNDLED)
def test_no_policy_crashes_an_episode_of_any_bundled_scenario(name: str) -> None:
    env = QuerySchedulingEnv(name)
    rng = np.random.default_rng(0)
    size = len(env.scenario.queries(0))
    for policy in (first_legal_largest, wait_then_last_smallest, unmasked_random):
        env.reset(seed=0)
        terminated = False
        while not terminated:
            _, reward, terminated, truncated, _ = env.step(policy(env, rng))
            assert np.isfinite(reward) and not truncated
        result = env.result()
        assert result.unfinished == 0 and len(result.queries) == size


@pytest.mark.parametrize("name", ["fifo", "fair"])
def test_equivalence_holds_with_node_failures(name: str) -> None:
    sc = scenario("faulty-cluster", 60)
    reference = simulate(
        sc.queries(2), sc.cluster, build_agent(sc, name), sc.execution_rng(2), oracle=sc.oracle
    )
    env = QuerySchedulingEnv(sc)
    run_heuristic(env, name, 2)
    result = env.result()
    assert result.rerun_tasks > 0
    assert result.mean_latency_s == reference.mean_latency_s


# --------------------------------------------------------------------------- rewards
def test_latency_rewards_sum_to_minus_total_latency_times_scale() -> None:
    env = QuerySchedulingEnv(small(), reward_scale=0.5)
    rng = np.random.default_rng(0)
    env.reset(seed=7)
    total, done, completed = 0.0, False, []
    while not done:
        _, reward, terminated, truncated, info = env.step(random_action(env, rng))
        total += reward
        completed.extend(info["completed"])
        done = terminated or truncated
    latencies = env.result().latencies_s()
    assert total == pytest.approx(-0.5 * latencies.sum(), rel=1e-6)
    assert sorted(c.query_id for c in completed) == list(range(24))
    assert sum(c.latency_s for c in completed) == pytest.approx(latencies.sum(), rel=1e-12)


def test_slowdown_rewards_weight_each_query_by_its_isolated_latency() -> None:
    sc = small()
    env = QuerySchedulingEnv(sc, reward="slowdown", reward_scale=1.0)
    total, _ = run_heuristic(env, "srpt", 3)
    specs = {q.query_id: q for q in sc.queries(3)}
    expected = 0.0
    for record in env.result().queries:
        spec = specs[record.query_id]
        means = [np.full(p.num_tasks, p.work_s / p.num_tasks) for p in spec.pipelines]
        expected += record.latency_s / isolated_latency_s(spec, means, 4)
    assert total == pytest.approx(-expected, rel=1e-6)


def test_deadline_rewards_count_late_queries() -> None:
    sc = load_scenario("ssb-dashboards").with_overrides({"workload.queries": 60})
    env = QuerySchedulingEnv(sc, reward="deadline", reward_scale=2.0)
    total, _ = run_heuristic(env, "fifo", 0)
    late = sum(
        1 for q in env.result().queries if q.deadline_s is not None and q.latency_s > q.deadline_s
    )
    assert late > 0
    assert total == -2.0 * late


# --------------------------------------------------------------------------- actions
def test_decisions_and_actions_round_trip() -> None:
    env = QuerySchedulingEnv(small())
    env.reset(seed=0)
    obs = env.sim_observation
    pipeline = next(iter(obs.schedulable))
    decision = Decision(pipeline.ref, 3)
    action = env.decision_to_action(decision)
    assert action[1] == 2  # limit = index + 1
    assert env.action_to_decision(action) == decision
    assert env.decision_to_action(WAIT).tolist() == [env.wait_slot, 0]
    assert env.action_to_decision(env.decision_to_action(WAIT)) == WAIT


def test_parallelism_levels_spread_up_to_the_cluster() -> None:
    env = QuerySchedulingEnv("tpch-streaming", parallelism="levels")
    assert env.extra_threads == (4, 8, 12, 16, 20, 24, 28, 32)
    env.reset(seed=0)
    ref = next(iter(env.sim_observation.schedulable)).ref
    with pytest.raises(InvalidActionError, match="not reachable"):
        env.decision_to_action(Decision(ref, 5))


def test_decisions_that_bind_nothing_have_no_action() -> None:
    env = QuerySchedulingEnv(small())
    env.reset(seed=0)
    ref = next(iter(env.sim_observation.schedulable)).ref
    env.step(env.decision_to_action(Decision(ref, 1)))
    view = env.sim_observation.pipeline(ref)
    if view.threads and ref in {p.ref for p in env.sim_observation.schedulable}:
        with pytest.raises(InvalidActionError, match="binds nothing"):
            env.decision_to_action(Decision(ref, view.threads))


def test_every_offered_action_binds_a_thread() -> None:
    """The mask offers only actions that change something: each non-WAIT one binds."""
    env = QuerySchedulingEnv(small().with_overrides({"cluster.threads_per_node": 8}))
    rng = np.random.default_rng(3)
    for seed in range(3):
        env.reset(seed=seed)
        bound: list[int] = []
        apply = env.simulation.apply

        def recording(decision: Decision, apply=apply, bound=bound) -> int:
            threads = apply(decision)
            if decision.pipeline is not None:
                bound.append(threads)
            return threads

        env.simulation.apply = recording  # type: ignore[method-assign]
        done = False
        while not done:
            mask = env.action_masks()
            legal = np.flatnonzero(mask[: env.slots])  # offered pipelines, WAIT left out
            choices = np.flatnonzero(mask[env.slots + 1 :])
            slot = rng.choice(legal) if len(legal) else env.wait_slot
            _, _, terminated, truncated, info = env.step(np.array([slot, rng.choice(choices)]))
            assert not info["invalid_action"]
            done = terminated or truncated
        assert len(bound) > 50 and min(bound) >= 1


def test_invalid_actions_raise_in_strict_mode() -> None:
    env = QuerySchedulingEnv(small(), invalid_action="raise")
    obs, _ = env.reset(seed=0)
    empty_row = env.max_pipelines * (env.max_queries - 1)
    with pytest.raises(InvalidActionError, match="holds no query"):
        env.step(np.array([empty_row, 0]))
    structured = env.unflatten(obs)
    waiting = (structured["pipeline_mask"] > structured["schedulable"]).reshape(-1)
    with pytest.raises(InvalidActionError, match="not schedulable"):
        env.step(np.array([int(np.flatnonzero(waiting)[0]), 0]))
    # Nothing runs yet and nothing else has arrived: waiting would stall the cluster for good.
    env_one = QuerySchedulingEnv(
        small().with_overrides({"workload.queries": 1}), invalid_action="raise"
    )
    obs, _ = env_one.reset(seed=0)
    assert obs["action_mask"][env_one.wait_slot] == 0
    with pytest.raises(InvalidActionError, match="WAIT would leave the whole cluster idle"):
        env_one.step(np.array([env_one.wait_slot, 0]))


@pytest.mark.parametrize("mode", ["penalty", "raise"])
@pytest.mark.parametrize(
    "action",
    [
        np.array([0.7, 0.0]),
        np.array([-0.5, 0.0]),
        np.array([1 + 2j, 0]),
        np.array([0, 0, 0]),
        np.array([-1, 0]),
        np.array([10**6, 0]),
        np.array([0, 99]),
        "0,0",
        None,
    ],
    ids=repr,
)
def test_actions_outside_the_space_always_raise(mode: str, action: object) -> None:
    env = QuerySchedulingEnv(small(), invalid_action=mode)  # type: ignore[arg-type]
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step(action)  # type: ignore[arg-type]


def test_invalid_actions_in_penalty_mode_wait_and_pay() -> None:
    env = QuerySchedulingEnv(small(), invalid_penalty=3.0)
    twin = QuerySchedulingEnv(small())
    env.reset(seed=0)
    twin.reset(seed=0)
    first = env.step(env.decision_to_action(next_decision(env)))
    twin.step(twin.decision_to_action(next_decision(twin)))
    assert first[4]["invalid_action"] is False
    after, reward, _, _, info = env.step(np.array([env.slots - 1, 0]))  # an empty row
    expected, twin_reward, _, _, twin_info = twin.step(np.array([twin.wait_slot, 0]))
    assert info["invalid_action"] is True and twin_info["invalid_action"] is False
    assert reward == pytest.approx(twin_reward - 3.0)
    assert info["sim_time_s"] == twin_info["sim_time_s"] > first[4]["sim_time_s"]
    for key in after:
        np.testing.assert_array_equal(after[key], expected[key])


def test_invalid_actions_when_wait_is_illegal_change_nothing() -> None:
    env = QuerySchedulingEnv(small().with_overrides({"workload.queries": 1}), invalid_penalty=3.0)
    obs, info = env.reset(seed=0)
    after, reward, terminated, truncated, step_info = env.step(np.array([env.wait_slot, 0]))
    assert reward == -3.0 and not terminated and not truncated
    assert step_info["invalid_action"] is True
    assert step_info["sim_time_s"] == info["sim_time_s"]
    for key in obs:
        np.testing.assert_array_equal(after[key], obs[key])
        assert after[key] is not obs[key]


def next_decision(env: QuerySchedulingEnv) -> Decision:
    return Decision(next(iter(env.sim_observation.schedulable)).ref, 1)


def test_returned_arrays_are_the_callers_to_change() -> None:
    env = QuerySchedulingEnv(small())
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    mask = env.action_masks()
    action = random_action(env, rng)
    for array in (*obs.values(), info["action_mask"]):
        array[...] = 1  # a caller converting in place
    np.testing.assert_array_equal(env.action_masks(), mask)
    after, _, _, _, _ = env.step(action)
    assert not (after["pipeline_mask"] == 1).all()
    twin = QuerySchedulingEnv(small())
    twin.reset(seed=0)
    expected, _, _, _, _ = twin.step(action)
    for key in after:
        np.testing.assert_array_equal(after[key], expected[key])


def test_a_full_window_never_ends_an_episode() -> None:
    crowded = small().with_overrides(
        {"env.max_queries": 2, "workload.streams.0.arrivals.rate_per_s": 5}
    )
    env = QuerySchedulingEnv(crowded, reward_scale=1.0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    total, most_waiting, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(random_action(env, rng))
        assert obs["waiting"][0] == pytest.approx(info["waiting"] / 2)
        assert int(env.unflatten(obs)["query_mask"].sum()) <= 2
        most_waiting = max(most_waiting, info["waiting"])
        total += reward
        done = terminated or truncated
    result = env.result()
    assert terminated and result.unfinished == 0 and len(result.queries) == 24
    assert most_waiting > 5
    assert total == pytest.approx(-result.latencies_s().sum(), rel=1e-6)  # waiting ones count


def test_plans_beyond_the_limits_name_the_knob() -> None:
    narrow = QuerySchedulingEnv(small().with_overrides({"env.max_pipelines_per_query": 2}))
    with pytest.raises(ScenarioError, match=r"env\.max_pipelines_per_query: query \d+"):
        narrow.reset(seed=0)


def test_step_after_the_end_needs_a_reset() -> None:
    env = QuerySchedulingEnv(small().with_overrides({"workload.queries": 2}))
    run_heuristic(env, "fifo", 0)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.array([env.wait_slot, 0]))


# --------------------------------------------------------------------------- episodes
def test_same_seed_same_episode() -> None:
    def rollout(env: QuerySchedulingEnv, seed: int) -> list[tuple[float, float]]:
        rng = np.random.default_rng(11)
        obs, _ = env.reset(seed=seed)
        trace = [(float(obs["pipelines"].sum()), 0.0)]
        for _ in range(60):
            obs, reward, terminated, _, _ = env.step(random_action(env, rng))
            trace.append((float(obs["pipelines"].sum()), reward))
            if terminated:
                break
        return trace

    env = QuerySchedulingEnv(small())
    first = rollout(env, 4)
    assert rollout(env, 4) == first
    assert rollout(QuerySchedulingEnv(small()), 4) == first
    assert rollout(env, 5) != first


def test_unseeded_resets_draw_training_seeds_from_the_env_generator() -> None:
    env = QuerySchedulingEnv(small())
    env.reset(seed=1)
    env.reset()
    drawn = env.episode_seed
    assert drawn >= small().train_seed_offset
    env.reset(seed=1)
    env.reset()
    assert env.episode_seed == drawn


def test_truncation_by_time_and_by_finished_queries() -> None:
    env = QuerySchedulingEnv(small(), episode_time_s=100.0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    while True:
        _, _, terminated, truncated, info = env.step(random_action(env, rng))
        assert not terminated
        if truncated:
            break
    assert info["sim_time_s"] >= 100.0

    env = QuerySchedulingEnv(small(), episode_queries=3)
    env.reset(seed=0)
    finished = 0
    while True:
        _, _, terminated, truncated, info = env.step(random_action(env, rng))
        finished += len(info["completed"])
        if truncated:
            break
    assert finished >= 3 and not terminated
    result = env.result()
    assert len(result.queries) == finished and result.unfinished == 24 - finished
    assert result.mean_latency_s > 0


@pytest.mark.parametrize("padded", [True, False])
def test_graph_view_has_a_node_per_pipeline_and_an_edge_per_dependency(padded: bool) -> None:
    env = GraphObservation(gym.make(ENV_ID, scenario=small()), padded=padded)
    base = env.unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        assert env.observation_space.contains(obs)
        inner = base.unflatten(base._obs)
        graph = graph_instance(obs) if padded else obs["graph"]
        assert len(graph.nodes) == int(inner["pipeline_mask"].sum())
        assert len(graph.edge_links) == int(inner["adjacency"].sum())
        # node i is the i-th existing pipeline: its features are that slot's features
        slots = np.flatnonzero(obs["pipeline_mask"])
        width = inner["pipelines"].shape[-1]
        np.testing.assert_array_equal(
            graph.nodes[:, :width], inner["pipelines"].reshape(-1, width)[slots]
        )
        # every edge points from a parent to a later pipeline of the same query
        parent, child = slots[graph.edge_links[:, 0]], slots[graph.edge_links[:, 1]]
        assert (parent // base.max_pipelines == child // base.max_pipelines).all()
        assert (parent < child).all()
        obs, _, terminated, _, _ = env.step(random_action(base, rng))
        if terminated:
            break


def test_flat_view_holds_every_key_and_the_mask() -> None:
    env = FlatObservation(gym.make(ENV_ID, scenario=small()))
    obs, _ = env.reset(seed=0)
    inner = env.unwrapped._obs
    assert obs["observations"].shape == (
        sum(a.size for k, a in inner.items() if k != "action_mask"),
    )
    np.testing.assert_array_equal(obs["action_mask"], env.unwrapped.action_masks())


def test_gymnasium_is_within_the_declared_range() -> None:
    """`make test` reruns this file on the oldest gymnasium allowed; it must really be that."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in declared if d.startswith("gymnasium"))
    lower, upper = (part.lstrip("><=") for part in spec.removeprefix("gymnasium").split(","))
    version = tuple(int(x) for x in gym.__version__.split(".")[:3])
    assert (
        tuple(int(x) for x in lower.split(".")) <= version < tuple(int(x) for x in upper.split("."))
    )
    expected = os.environ.get("LSCHED_EXPECT_GYMNASIUM")
    if expected:
        assert gym.__version__ == expected


def test_scenarios_env_lists_the_default_sizes() -> None:
    from typer.testing import CliRunner

    from lsched.cli import app

    result = CliRunner().invoke(app, ["scenarios", "--env"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "tpch-streaming" in line)
    env = QuerySchedulingEnv("tpch-streaming")
    assert f"{env.observation_values:,}" in row and f" {env.max_queries} " in row


def test_sb3_vecnormalize_and_unmasked_ppo_take_the_defaults() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    envs = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID, scenario=small())] * 2))
    model = PPO("MultiInputPolicy", envs, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(total_timesteps=128)  # no mask: unoffered actions wait and pay the penalty
    obs = envs.reset()
    assert all(np.isfinite(array).all() for array in obs.values())


def test_result_after_a_time_limit_reports_the_finished_queries() -> None:
    env = gym.make(ENV_ID, scenario=small(), max_episode_steps=40)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    truncated = terminated = False
    while not (truncated or terminated):
        _, _, terminated, truncated, _ = env.step(random_action(env.unwrapped, rng))
    result = env.unwrapped.result()
    assert truncated and not terminated
    assert result.unfinished > 0 and len(result.queries) + result.unfinished == 24


def test_torchrl_accepts_the_env_specs() -> None:
    pytest.importorskip("torchrl", reason="torchrl not installed (pip install -e '.[dev]')")
    if gym.__version__.startswith("1.0."):
        pytest.skip("torchrl 0.14 refuses gymnasium 1.0 (it runs on the dev install's 1.2.2)")
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    check_env_specs(
        GymWrapper(gym.make(ENV_ID, scenario=small()), categorical_action_encoding=True)
    )
    check_env_specs(
        GymWrapper(
            FlatObservation(gym.make(ENV_ID, scenario=small())), categorical_action_encoding=True
        )
    )


def test_slot_scoring_policy_scores_a_slot_by_its_own_features() -> None:
    """Swapping two queries' rows swaps their slots' scores: no position-indexed weights."""
    pytest.importorskip("sb3_contrib")
    import torch
    from sb3_contrib import MaskablePPO

    from lsched.env.sb3 import SlotScoringExtractor, SlotScoringPolicy

    env = QuerySchedulingEnv(small())
    obs, _ = env.reset(seed=0)
    for _ in range(30):  # a few queries in the system
        obs, *_ = env.step(random_action(env, np.random.default_rng(0)))
    extractor = SlotScoringExtractor(env.observation_space)
    tensors = {key: torch.as_tensor(value)[None].float() for key, value in obs.items()}
    structured = env.unflatten(obs)
    assert structured["query_mask"][:2].all()
    swapped = {}
    for key, value in structured.items():
        if key in (
            "pipelines",
            "queries",
            "pipeline_mask",
            "schedulable",
            "operator",
            "query_mask",
        ):
            value = value.copy()
            value[[0, 1]] = value[[1, 0]]
        swapped[key] = torch.as_tensor(value.reshape(-1))[None].float()
    with torch.no_grad():
        scores = extractor(tensors)[0, : env.slots].reshape(env.max_queries, env.max_pipelines)
        after = extractor(swapped)[0, : env.slots].reshape(env.max_queries, env.max_pipelines)
    torch.testing.assert_close(after[[1, 0]], scores[:2])
    torch.testing.assert_close(after[2:], scores[2:])

    model = MaskablePPO(SlotScoringPolicy, gym.make(ENV_ID, scenario=small()), n_steps=64, seed=0)
    model.learn(total_timesteps=128)
    assert isinstance(model.policy.action_net, torch.nn.Identity)


def test_misuse_of_the_env_is_one_clear_error() -> None:
    """A batch of one action, a step after truncation, unknown reset options, overrides as a
    list and no scenario: each refused with what went wrong (a batch was read as an action,
    stepping went on past the truncation, the rest failed as AttributeErrors)."""
    env = QuerySchedulingEnv(small(), episode_queries=1)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="must be two integers"):
        env.step(np.array([[env.wait_slot, 0]]))  # what a vector env's predict returns
    truncated = False
    while not truncated:
        mask = env.action_masks()
        slot = int(np.flatnonzero(mask[: env.wait_slot + 1])[0])
        choice = int(np.flatnonzero(mask[env.wait_slot + 1 :])[0])
        _, _, terminated, truncated, _ = env.step(np.array([slot, choice]))
        assert not terminated
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.array([env.wait_slot, 0]))
    with pytest.raises(ValueError, match=r"reset options \['foo'\]: this env takes none"):
        env.reset(seed=0, options={"foo": 1})
    with pytest.raises(ValueError, match=r"overrides: .* must be a mapping"):
        QuerySchedulingEnv(small(), overrides=["cluster.nodes=2"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scenario: None is not a bundled name"):
        QuerySchedulingEnv(None)  # type: ignore[arg-type]


def test_a_policy_through_the_env_is_compared_as_lsched_run_compares_agents(
    tmp_path: Path,
) -> None:
    """`evaluate` runs an env policy on the evaluation seeds beside registered agents: a
    heuristic driven through the env lands on exactly the figures `lsched run` gives it, and
    the report writes a results folder that `lsched plot` reads."""
    from lsched.env import evaluate
    from lsched.plots import read_results
    from lsched.runner import write_results

    env = QuerySchedulingEnv(scenario("tpch-streaming", 40))
    fair = build_agent(env.scenario, "fair")
    episode = {"seed": None}

    def through_env(observation: dict, mask: np.ndarray) -> np.ndarray:
        if env.episode_seed != episode["seed"]:  # a new episode: the agent starts afresh
            episode["seed"] = env.episode_seed
            fair.reset(env.cluster)
        return env.decision_to_action(fair.decide(env.sim_observation))

    report = evaluate(through_env, env, seeds=2, label="fair-via-env", agents=["fifo", "fair"])
    assert list(report.agents) == ["fifo", "fair", "fair-via-env"]
    direct, driven = report.agents["fair"], report.agents["fair-via-env"]
    assert driven.mean_latency_s == direct.mean_latency_s
    assert driven.p99_latency_s == direct.p99_latency_s
    assert report.paired("fair")["fair-via-env"].ratio == 1.0
    out = tmp_path / "out"
    write_results(report, env.scenario, out)
    assert list(read_results(out).agents) == ["fifo", "fair", "fair-via-env"]
    with pytest.raises(ValueError, match="'fair' is also the name of one of the agents"):
        evaluate(through_env, env, seeds=1, label="fair", agents=["fair"])


def test_an_observation_budget_no_window_fits_is_refused() -> None:
    """The budget shrinks the window to its smallest; below that it was exceeded silently
    (2,857 values for a budget of 10)."""
    with pytest.raises(ScenarioError, match=r"env\.observation_budget: 10 values cannot hold"):
        QuerySchedulingEnv("tpch-streaming", overrides={"env.observation_budget": 10})


def test_evaluate_refuses_what_would_not_compare_or_not_finish() -> None:
    """A truncating env would compare partial episodes with whole runs; a policy that ignores
    the mask would step forever under the training penalty; a label of an agent would merge
    two agents' rows. Each is refused, the label before any agent runs."""
    from lsched.env import evaluate

    truncating = QuerySchedulingEnv(small(), episode_queries=5)
    with pytest.raises(ValueError, match="it truncates episodes"):
        evaluate(lambda o, m: np.array([0, 0]), truncating, seeds=1)
    env = QuerySchedulingEnv(small())
    with pytest.raises(InvalidActionError):
        evaluate(lambda o, m: np.array([env.slots - 1, 0]), env, seeds=1)
    assert env.invalid_action == "penalty"  # the env is left as it was given
    with pytest.raises(ValueError, match="'fifo' is also the name"):
        evaluate(lambda o, m: np.array([0, 0]), env, seeds=1, label="fifo", agents=["fifo"])
