"""The observation encoder: layout, masks, padding, recurrence statistics, incremental updates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.features import (
    FEATURE_SCHEMA_VERSION,
    GLOBAL_FEATURES,
    OPERATORS,
    PIPELINE_FEATURES,
    QUERY_FEATURES,
    FeatureConfig,
    FeatureLimitError,
    FeatureState,
    class_vocabulary,
    encode,
    observation_shapes,
)
from sim.engine import Simulation
from sim.interface import WAIT, CompletedQuery, Decision, Observation, PipelineView, QueryView
from sim.model import ClusterConfig, FaultConfig, PipelineSpec, QuerySpec

CLUSTER = ClusterConfig(nodes=2, threads_per_node=4)
P = {name: i for i, name in enumerate(PIPELINE_FEATURES)}
Q = {name: i for i, name in enumerate(QUERY_FEATURES)}
G = {name: i for i, name in enumerate(GLOBAL_FEATURES)}
HISTORY_COLUMNS = [
    Q["template_recent_arrivals"],
    Q["template_completed"],
    Q["template_mean_latency"],
    Q["age_over_template_latency"],
]


@dataclass(frozen=True)
class Limits:
    max_queries: int = 32
    max_pipelines_per_query: int = 8


def random_queries(seed: int, count: int = 25, rate_per_s: float = 0.6) -> list[QuerySpec]:
    """Random plan DAGs with mixed operators, classes, templates and deadlines."""
    rng = np.random.default_rng(seed)
    operators = (*OPERATORS[1:], "something_new")
    arrival_s = 0.0
    queries = []
    for query_id in range(count):
        arrival_s += float(rng.exponential(1.0 / rate_per_s))
        template = int(rng.integers(4))
        plan = []
        for index in range(int(rng.integers(1, 7))):
            parents = tuple(p for p in range(index) if rng.random() < 0.4)
            work_s = float(rng.uniform(1.0, 15.0))
            plan.append(
                PipelineSpec(
                    index,
                    parents,
                    int(rng.integers(1, 10)),
                    work_s,
                    work_s * float(rng.lognormal(0.0, 0.3)),
                    float(rng.uniform(0.0, 40.0)),
                    operators[int(rng.integers(len(operators)))],
                )
            )
        queries.append(
            QuerySpec(
                query_id,
                f"t{template}",
                ("short", "long")[template % 2],
                arrival_s,
                tuple(plan),
                scale_factor=float(1 + template),
                priority=1.0 + template,
                deadline_s=20.0 if template == 0 else None,
            )
        )
    return queries


def random_decision(obs: Observation, rng: np.random.Generator) -> Decision:
    candidates = [p for p in obs.schedulable if p.threads < obs.cluster.total_threads]
    if not candidates or rng.random() < 0.1:
        return WAIT
    pipeline = candidates[int(rng.integers(len(candidates)))]
    limit = int(rng.integers(pipeline.threads + 1, obs.cluster.total_threads + 1))
    return Decision(pipeline.ref, limit)


def apply_safely(simulation: Simulation, decision: Decision, obs: Observation) -> None:
    """WAIT with nothing running and nothing to come is illegal: pick the first pipeline then."""
    try:
        simulation.apply(decision)
    except ValueError:
        simulation.apply(Decision(next(iter(obs.schedulable)).ref, 1))


def test_schema_is_versioned_and_shapes_match_the_encoding() -> None:
    assert isinstance(FEATURE_SCHEMA_VERSION, int) and FEATURE_SCHEMA_VERSION >= 1
    for names in (PIPELINE_FEATURES, QUERY_FEATURES, GLOBAL_FEATURES, OPERATORS):
        assert len(set(names)) == len(names)
    limits = Limits()
    simulation = Simulation(random_queries(0), CLUSTER, np.random.default_rng(0))
    obs = simulation.advance()
    assert obs is not None
    encoded = encode(obs, limits, FeatureState(limits))
    shapes = observation_shapes(limits)
    assert set(encoded) == set(shapes)
    for key, shape in shapes.items():
        assert encoded[key].shape == shape, key
    assert encoded["pipelines"].dtype == np.float32
    assert encoded["schedulable"].dtype == bool


def test_rows_masks_padding_and_dag_match_the_observation() -> None:
    limits = Limits()
    queries = random_queries(1, rate_per_s=5.0)  # many queries in the system at once
    specs = {q.query_id: q for q in queries}
    simulation = Simulation(queries, CLUSTER, np.random.default_rng(1))
    state = FeatureState(limits, FeatureConfig(query_classes=("long", "short")))
    rng = np.random.default_rng(1)
    obs = simulation.advance()
    checked = 0
    while obs is not None:
        encoded = encode(obs, limits, state)
        views = list(obs.queries)
        count = len(views)
        assert state.num_queries == count
        assert state.query_ids[:count].tolist() == [v.query_id for v in views]
        assert (state.query_ids[count:] == -1).all()
        assert encoded["query_mask"].tolist() == [True] * count + [False] * (32 - count)
        schedulable = {
            (int(state.query_ids[r]), int(c))
            for r, c in zip(*np.nonzero(encoded["schedulable"]), strict=True)
        }
        assert schedulable == {p.ref for p in obs.schedulable}
        for row, view in enumerate(views):
            spec = specs[view.query_id]
            size = len(spec.pipelines)
            assert encoded["pipeline_mask"][row].tolist() == [True] * size + [False] * (8 - size)
            parents = {(i, j) for i, j in zip(*np.nonzero(encoded["adjacency"][row]), strict=True)}
            assert parents == {(p.index, q) for p in spec.pipelines for q in p.parents}
            operators = [OPERATORS.index(p.operator) if p.operator in OPERATORS else 0
                         for p in spec.pipelines]  # fmt: skip
            assert encoded["operator"][row, :size].tolist() == operators
            assert encoded["query_class"][row] == 1 + ("long", "short").index(spec.query_class)
            features = encoded["pipelines"][row]
            for pipeline in view.pipelines:
                f = features[pipeline.index]
                assert f[P["tasks_left"]] * 100 == pytest.approx(pipeline.tasks_left)
                assert f[P["threads"]] * 8 == pytest.approx(pipeline.threads)
                assert f[P["est_remaining_work"]] * 100 == pytest.approx(
                    pipeline.est_remaining_work_s, rel=1e-5
                )
                assert f[P["ready"]] == float(pipeline.is_ready and not pipeline.is_finished)
                assert f[P["finished"]] == float(pipeline.is_finished)
            assert not features[size:].any()
            query = encoded["queries"][row]
            assert query[Q["progress"]] == pytest.approx(view.progress, rel=1e-6)
            assert query[Q["est_remaining_work"]] * 100 == pytest.approx(
                view.est_remaining_work_s, rel=1e-5, abs=1e-6
            )
            assert query[Q["age"]] * 60 == pytest.approx(obs.now_s - spec.arrival_s, abs=1e-4)
        assert not encoded["pipelines"][count:].any()
        assert not encoded["queries"][count:].any()
        assert not encoded["adjacency"][count:].any()
        g = encoded["global"]
        assert g[G["free_threads"]] == pytest.approx(obs.free_threads / 8)
        assert g[G["queries_in_system"]] == pytest.approx(count / 32)
        checked += count
        apply_safely(simulation, random_decision(obs, rng), obs)
        obs = simulation.advance()
    assert checked > 100


@pytest.mark.parametrize("faults", [False, True])
@pytest.mark.parametrize("seed", [2, 3])
def test_incremental_encoding_equals_a_fresh_encoding(seed: int, faults: bool) -> None:
    """Only history features may differ: a fresh state never saw the queries that left."""
    cluster = ClusterConfig(
        nodes=2,
        threads_per_node=4,
        faults=FaultConfig(mean_time_between_failures_s=30.0 if faults else 0.0, repair_time_s=5),
    )
    limits = Limits(max_queries=40)
    simulation = Simulation(random_queries(seed, count=40), cluster, np.random.default_rng(seed))
    state = FeatureState(limits)
    rng = np.random.default_rng(seed)
    obs = simulation.advance()
    steps = 0
    while obs is not None:
        incremental = {k: v.copy() for k, v in encode(obs, limits, state).items()}
        fresh = encode(obs, limits, FeatureState(limits))
        for key in ("pipelines", "pipeline_mask", "schedulable", "adjacency", "operator"):
            np.testing.assert_array_equal(incremental[key], fresh[key], err_msg=key)
        keep = [i for i in range(len(QUERY_FEATURES)) if i not in HISTORY_COLUMNS]
        np.testing.assert_allclose(incremental["queries"][:, keep], fresh["queries"][:, keep])
        apply_safely(simulation, random_decision(obs, rng), obs)
        obs = simulation.advance()
        steps += 1
    assert steps > 50
    if faults:
        assert simulation.result().rerun_tasks > 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    rate_per_s=st.floats(0.1, 5.0),
    threads_per_node=st.integers(1, 6),
)
def test_incremental_encoding_is_exact_for_any_workload(
    seed: int, rate_per_s: float, threads_per_node: int
) -> None:
    cluster = ClusterConfig(nodes=2, threads_per_node=threads_per_node)
    limits = Limits(max_queries=20)
    queries = random_queries(seed, count=20, rate_per_s=rate_per_s)
    simulation = Simulation(queries, cluster, np.random.default_rng(seed))
    state = FeatureState(limits)
    rng = np.random.default_rng(seed)
    obs = simulation.advance()
    while obs is not None:
        incremental = encode(obs, limits, state)
        pipelines, schedulable = incremental["pipelines"].copy(), incremental["schedulable"].copy()
        fresh = encode(obs, limits, FeatureState(limits))
        np.testing.assert_array_equal(pipelines, fresh["pipelines"])
        np.testing.assert_array_equal(schedulable, fresh["schedulable"])
        apply_safely(simulation, random_decision(obs, rng), obs)
        obs = simulation.advance()


class FakeSimulation:
    """Just enough state for an Observation: a hand-written history."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.active_queries: dict[int, QueryView] = {}
        self.schedulable: dict[tuple[int, int], PipelineView] = {}
        self.free_threads = 8
        self.free_per_node = [4, 4]
        self.memory_used_gb = [16.0, 0.0]
        self.node_up = [True, False]
        self.completed: list[CompletedQuery] = []
        self.arrivals_so_far = 0

    def arrive(self, query_id: int, template: str, arrival_s: float) -> None:
        view = PipelineView(query_id, 0, (), 4, 10.0, 1.0, "sort")
        self.active_queries[query_id] = QueryView(
            query_id, template, "adhoc", arrival_s, 1.0, 1.0, None, (view,)
        )
        self.schedulable[query_id, 0] = view
        self.arrivals_so_far += 1

    def finish(self, query_id: int, finish_s: float) -> None:
        query = self.active_queries.pop(query_id)
        del self.schedulable[query_id, 0]
        self.completed.append(
            CompletedQuery(query_id, query.template, "adhoc", 1.0, query.arrival_s, finish_s, 10.0)
        )


def test_recurrence_statistics_follow_a_known_history() -> None:
    config = FeatureConfig(window_s=100.0, time_scale_s=10.0, count_scale=1.0, day_s=400.0)
    limits = Limits()
    state = FeatureState(limits, config)
    sim = FakeSimulation()
    obs = Observation(sim, CLUSTER, oracle=False)  # type: ignore[arg-type]

    sim.arrive(0, "a", 0.0)
    sim.arrive(1, "a", 5.0)
    sim.arrive(2, "b", 8.0)
    sim.now_s = 10.0
    encoded = encode(obs, limits, state)
    rows = encoded["queries"]
    assert rows[0, Q["template_recent_arrivals"]] == 2  # a arrived twice in the window
    assert rows[2, Q["template_recent_arrivals"]] == 1
    assert rows[0, Q["template_completed"]] == 0
    assert rows[0, Q["template_mean_latency"]] == 0  # no history yet
    assert rows[0, Q["age_over_template_latency"]] == 0
    assert encoded["global"][G["arrival_rate"]] == pytest.approx(3 * 10.0 / 100.0)
    assert encoded["global"][G["time_of_day_sin"]] == pytest.approx(math.sin(2 * math.pi / 40))
    assert encoded["global"][G["nodes_up"]] == 0.5
    assert encoded["global"][G["memory_used"]] == pytest.approx(16.0 / 128.0)

    sim.finish(0, 20.0)  # latency 20
    sim.finish(1, 45.0)  # latency 40
    sim.finish(2, 50.0)  # latency 42
    sim.arrive(3, "a", 90.0)
    sim.now_s = 95.0
    encoded = encode(obs, limits, state)
    row = encoded["queries"][0]
    assert state.query_ids[0] == 3 and state.num_queries == 1
    assert row[Q["template_recent_arrivals"]] == 3  # 0, 5 and 90 are within 100 s of 95
    assert row[Q["template_completed"]] == 2
    assert row[Q["template_mean_latency"]] == pytest.approx(30.0 / 10.0)
    assert row[Q["age_over_template_latency"]] == pytest.approx(5.0 / 30.0)
    assert state.template_stats("a") == (3, 2, 30.0)
    assert state.template_stats("b") == (1, 1, 42.0)

    sim.now_s = 106.0  # arrivals at 0 and 5 leave the window, 8 (template b) stays
    encoded = encode(obs, limits, state)
    assert encoded["queries"][0, Q["template_recent_arrivals"]] == 1
    assert state.recent_arrivals == 2
    sim.now_s = 108.5
    encode(obs, limits, state)
    assert state.template_stats("b") == (0, 1, 42.0)

    state.reset()
    assert state.template_stats("a") == (0, 0, 0.0)
    assert state.num_queries == 0


def test_deadline_slack_and_static_query_features() -> None:
    limits = Limits()
    query = QuerySpec(
        7, "t", "c", 3.0, (PipelineSpec(0, (), 2, 4.0, 6.0),), 2.0, 3.0, deadline_s=12.0
    )
    simulation = Simulation([query], CLUSTER, np.random.default_rng(0))
    obs = simulation.advance()
    assert obs is not None
    row = encode(obs, limits, FeatureState(limits))["queries"][0]
    assert row[Q["has_deadline"]] == 1.0
    assert row[Q["deadline_slack"]] == pytest.approx(12.0 / 60.0)  # decided at its arrival
    assert row[Q["priority"]] == 3.0
    assert row[Q["scale_factor"]] == pytest.approx(0.2)
    assert row[Q["est_work"]] == pytest.approx(0.06)
    assert row[Q["num_pipelines"]] == pytest.approx(1 / 8)


def test_too_many_queries_names_the_scenario_knob() -> None:
    limits = Limits(max_queries=3)
    batch = [QuerySpec(i, "t", "c", 0.0, (PipelineSpec(0, (), 1, 1.0, 1.0),)) for i in range(4)]
    obs = Simulation(batch, CLUSTER, np.random.default_rng(0)).advance()
    assert obs is not None
    with pytest.raises(FeatureLimitError, match=r"env\.max_queries: 4 queries .* holds 3"):
        encode(obs, limits, FeatureState(limits))


def test_too_many_pipelines_names_the_scenario_knob() -> None:
    limits = Limits(max_pipelines_per_query=2)
    plan = tuple(PipelineSpec(i, (i - 1,) if i else (), 1, 1.0, 1.0) for i in range(3))
    obs = Simulation([QuerySpec(0, "t", "c", 0.0, plan)], CLUSTER, np.random.default_rng(0))
    observation = obs.advance()
    assert observation is not None
    with pytest.raises(FeatureLimitError) as caught:
        encode(observation, limits, FeatureState(limits))
    assert caught.value.knob == "env.max_pipelines_per_query"
    assert "has 3 pipelines" in str(caught.value)


def test_encode_refuses_limits_other_than_the_states() -> None:
    obs = Simulation(random_queries(0), CLUSTER, np.random.default_rng(0)).advance()
    assert obs is not None
    with pytest.raises(ValueError, match="limits differ"):
        encode(obs, Limits(max_queries=4), FeatureState(Limits()))


def test_config_rejects_non_positive_scales() -> None:
    with pytest.raises(ValueError, match=r"FeatureConfig\.window_s"):
        FeatureConfig(window_s=0.0)


def test_class_vocabulary_is_sorted_and_unique() -> None:
    assert class_vocabulary(["b", "a", "b"]) == ("a", "b")
