"""The Gymnasium environment: the gym contract, equivalence with the runner, rewards, errors."""

from __future__ import annotations

from functools import cache

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from agents import AGENTS
from lsched.env import (
    ENV_ID,
    GraphObservation,
    InvalidActionError,
    QuerySchedulingEnv,
    register_env,
)
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
    return np.array([legal[rng.integers(len(legal))], rng.integers(len(env.parallelism_limits))])


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


# --------------------------------------------------------------------------- the gym contract
def test_check_env_passes_on_the_unwrapped_env() -> None:
    env = gym.make(ENV_ID, scenario=small(), invalid_action="penalty")
    check_env(env.unwrapped, skip_render_check=True)


def test_make_by_name_builds_the_bundled_scenario_with_its_limits() -> None:
    register_env()  # idempotent
    env = gym.make(ENV_ID, scenario="tpch-streaming")
    inner = env.unwrapped
    assert isinstance(inner, QuerySchedulingEnv)
    limits = inner.scenario.env
    assert env.observation_space["pipelines"].shape[:2] == (
        limits.max_queries,
        limits.max_pipelines_per_query,
    )
    slots = limits.max_queries * limits.max_pipelines_per_query
    assert env.action_space.nvec.tolist() == [slots + 1, inner.cluster.total_threads]
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["episode_seed"] == 0 and info["sim_time_s"] >= 0.0
    np.testing.assert_array_equal(info["action_mask"], inner.action_masks())
    np.testing.assert_array_equal(obs["action_mask"], inner.action_masks())


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
                actions.append([legal[rng.integers(len(legal))], rng.integers(4)])
            obs, rewards, _, _, _ = envs.step(np.array(actions))
            assert rewards.shape == (2,) and (rewards <= 0).all()
    finally:
        envs.close()


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
    assert env.parallelism_limits == (4, 8, 12, 16, 20, 24, 28, 32)
    env.reset(seed=0)
    ref = next(iter(env.sim_observation.schedulable)).ref
    with pytest.raises(InvalidActionError, match="not one of this env's limits"):
        env.decision_to_action(Decision(ref, 5))


def test_invalid_actions_raise_by_default() -> None:
    env = QuerySchedulingEnv(small())
    obs, _ = env.reset(seed=0)
    empty_row = env.max_pipelines * (env.max_queries - 1)
    with pytest.raises(InvalidActionError, match="holds no query"):
        env.step(np.array([empty_row, 0]))
    waiting = (obs["pipeline_mask"] > obs["schedulable"]).reshape(-1)  # exists, parents unfinished
    with pytest.raises(InvalidActionError, match="not schedulable"):
        env.step(np.array([int(np.flatnonzero(waiting)[0]), 0]))
    with pytest.raises(InvalidActionError, match="out of range"):
        env.step(np.array([env.wait_slot + 1, 0]))
    with pytest.raises(InvalidActionError, match="parallelism index"):
        env.step(np.array([env.wait_slot, 99]))
    # Nothing runs yet and nothing else has arrived: waiting would stall the cluster for good.
    env_one = QuerySchedulingEnv(small().with_overrides({"workload.queries": 1}))
    obs, _ = env_one.reset(seed=0)
    assert obs["action_mask"][env_one.wait_slot] == 0
    with pytest.raises(InvalidActionError, match="WAIT would leave the whole cluster idle"):
        env_one.step(np.array([env_one.wait_slot, 0]))


def test_invalid_actions_in_penalty_mode_change_nothing() -> None:
    env = QuerySchedulingEnv(small(), invalid_action="penalty", invalid_penalty=3.0)
    obs, info = env.reset(seed=0)
    after, reward, terminated, truncated, step_info = env.step(np.array([env.slots - 1, 0]))
    assert reward == -3.0 and not terminated and not truncated
    assert step_info["invalid_action"] is True
    assert step_info["sim_time_s"] == info["sim_time_s"]
    for key in obs:
        np.testing.assert_array_equal(after[key], obs[key])
        assert after[key] is not obs[key]


def test_workloads_beyond_the_limits_name_the_knob() -> None:
    narrow = QuerySchedulingEnv(small().with_overrides({"env.max_pipelines_per_query": 2}))
    with pytest.raises(ScenarioError, match=r"env\.max_pipelines_per_query: query \d+"):
        narrow.reset(seed=0)
    crowded = QuerySchedulingEnv(
        small().with_overrides({"env.max_queries": 2, "workload.streams.0.arrivals.rate_per_s": 5})
    )
    crowded.reset(seed=0)
    rng = np.random.default_rng(0)
    with pytest.raises(ScenarioError, match=r"env\.max_queries: \d+ queries are in the system"):
        for _ in range(1000):
            crowded.step(random_action(crowded, rng))


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


def test_graph_view_has_a_node_per_pipeline_and_an_edge_per_dependency() -> None:
    env = GraphObservation(gym.make(ENV_ID, scenario=small()))
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        assert env.observation_space.contains(obs)
        inner = env.unwrapped._obs
        graph = obs["graph"]
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
        assert (parent // env.unwrapped.max_pipelines == child // env.unwrapped.max_pipelines).all()
        assert (parent < child).all()
        obs, _, terminated, _, _ = env.step(random_action(env.unwrapped, rng))
        if terminated:
            break
