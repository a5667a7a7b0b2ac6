"""Query-level decisions: a started query keeps its granted threads, the engine rule runs its
pipelines inside them, and the heuristics' query-level forms order and admit as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sim_helpers import QUIET, chain_query

from agents import AgentContext
from agents.context import AgentOptionError
from agents.query_level import QueryFair, QueryFifo, QueryKnobs, QuerySjf
from agents.registry import make_agent
from sim import ClusterConfig, Decision, Simulation, simulate
from sim.query_level import QueryLevel, QueryState, Start


def run(queries, policy, **cluster):
    config = ClusterConfig(**{**QUIET, "nodes": 1, "threads_per_node": 2, **cluster})
    return simulate(queries, config, QueryLevel(policy), np.random.default_rng(0))


def finish_order(result) -> list[int]:
    return [q.query_id for q in sorted(result.queries, key=lambda q: q.finish_s)]


def test_one_slot_runs_queries_one_after_another_with_every_thread() -> None:
    queries = [chain_query(0, [4.0], tasks=4), chain_query(1, [2.0], tasks=2)]
    result = run(queries, QueryFifo(QueryKnobs(max_concurrent_queries=1)))
    assert [q.latency_s for q in result.queries] == [pytest.approx(2.0), pytest.approx(3.0)]


def test_two_slots_give_each_query_its_share_of_threads() -> None:
    queries = [chain_query(0, [4.0], tasks=4), chain_query(1, [4.0], tasks=4)]
    result = run(queries, QueryFifo(QueryKnobs(max_concurrent_queries=2)))
    assert [q.latency_s for q in result.queries] == [pytest.approx(4.0), pytest.approx(4.0)]
    tasks = result.tasks
    assert set(tasks.thread[tasks.query_id == 0]) == {0}  # one thread each
    assert set(tasks.thread[tasks.query_id == 1]) == {1}


def test_sjf_starts_the_smallest_estimate_first() -> None:
    queries = [chain_query(0, [6.0], tasks=2), chain_query(1, [2.0], tasks=2, est_factor=1.0)]
    fifo = run(queries, QueryFifo(QueryKnobs(max_concurrent_queries=1)))
    sjf = run(queries, QuerySjf(QueryKnobs(max_concurrent_queries=1)))
    assert finish_order(fifo) == [0, 1] and finish_order(sjf) == [1, 0]
    assert sjf.mean_latency_s < fifo.mean_latency_s


def test_granted_threads_stay_with_their_query_even_when_idle() -> None:
    # query 0's plan is a one-task pipeline: its second thread idles rather than serving query 1
    queries = [chain_query(0, [4.0], tasks=1), chain_query(1, [2.0], tasks=2)]
    result = run(queries, QueryFifo())  # no slot limit: the first query gets both threads
    assert [q.latency_s for q in result.queries] == [pytest.approx(4.0), pytest.approx(5.0)]


def test_fair_shares_threads_among_the_queries_in_the_system() -> None:
    queries = [chain_query(i, [2.0], tasks=2) for i in range(2)]
    result = run(queries, QueryFair())
    assert [q.latency_s for q in result.queries] == [pytest.approx(2.0), pytest.approx(2.0)]


class _Greedy:
    """Starts a query with more threads than are free: the driver must refuse it."""

    def reset(self, cluster: ClusterConfig) -> None:
        self.total = cluster.total_threads

    def start(self, state: QueryState) -> Start | None:
        return Start(state.waiting[0].query_id, self.total + 1)


def test_an_out_of_range_grant_is_refused() -> None:
    with pytest.raises(ValueError, match=r"out of range 1\.\.2"):
        run([chain_query(0, [1.0])], _Greedy())


def test_agent_entries_select_the_query_level_form() -> None:
    context = AgentContext(
        cluster=ClusterConfig(nodes=1, threads_per_node=2),
        train_workload=None,
        train_seeds=(),
        execution_rng=None,
        rng=np.random.default_rng(0),
    )
    agent = make_agent("sjf", context, decisions="query", max_concurrent_queries=2)
    assert isinstance(agent, QueryLevel) and isinstance(agent.policy, QuerySjf)
    assert agent.policy.knobs.max_concurrent_queries == 2
    with pytest.raises(AgentOptionError, match="has no query-level form"):
        make_agent("cpf", context, decisions="query")
    with pytest.raises(AgentOptionError, match="unknown option 'adaptive_parallelism'"):
        make_agent("fifo", context, decisions="query", adaptive_parallelism=1.0)
    with pytest.raises(AgentOptionError, match="decisions"):
        make_agent("fifo", context, decisions="stage")


@pytest.mark.parametrize("name", ["fifo", "sjf", "srpt", "fair", "cpf", "random"])
def test_max_concurrent_queries_admits_pipeline_level_heuristics_too(name: str) -> None:
    context = AgentContext(
        cluster=ClusterConfig(nodes=1, threads_per_node=4),
        train_workload=None,
        train_seeds=(),
        execution_rng=None,
        rng=np.random.default_rng(0),
    )
    agent = make_agent(name, context, max_concurrent_queries=1, max_parallelism=1)
    queries = [chain_query(i, [2.0], tasks=1) for i in range(3)]
    config = ClusterConfig(**{**QUIET, "nodes": 1, "threads_per_node": 4})
    result = simulate(queries, config, agent, np.random.default_rng(0))
    # one query at a time although three threads idle
    assert sorted(q.finish_s for q in result.queries) == pytest.approx([2.0, 4.0, 6.0])
    free = simulate(
        queries, config, make_agent(name, context, max_parallelism=1), np.random.default_rng(0)
    )
    assert [q.finish_s for q in free.queries] == pytest.approx([2.0, 2.0, 2.0])


def test_tuned_searches_the_query_level_forms() -> None:
    from lsched.runner import build_agent
    from lsched.scenario import AgentChoice, load_scenario

    scenario = load_scenario("duckdb-stream-60")
    tuned = build_agent(scenario, AgentChoice("tuned", {"decisions": "query", "max_queries": 60}))
    tuned.reset(scenario.cluster)
    assert isinstance(tuned.query_level, QueryLevel)
    trials = tuned.chosen.trials
    assert all(t.candidate.query_level for t in trials)
    assert {t.candidate.family for t in trials} == {"srpt", "fair"}  # sjf is srpt here
    assert {t.candidate.max_concurrent_queries for t in trials} == {None, 1, 2}
    assert tuned.chosen.score == min(t.score for t in trials)


def test_each_ask_of_the_policy_delays_the_starts_it_makes_by_decision_s() -> None:
    """The scheduler's own time: the starts of one admission begin asks × decision_s later."""
    config = ClusterConfig(**{**QUIET, "nodes": 1, "threads_per_node": 2})

    def latencies(queries, policy, decision_s: float) -> list[float]:
        scheduler = QueryLevel(policy, decision_s)
        result = simulate(queries, config, scheduler, np.random.default_rng(0))
        return [q.latency_s for q in result.queries]

    one_slot = QueryFifo(QueryKnobs(max_concurrent_queries=1))
    queries = [chain_query(0, [4.0], tasks=4), chain_query(1, [2.0], tasks=2)]
    assert latencies(queries, one_slot, 0.0) == [pytest.approx(2.0), pytest.approx(3.0)]
    # one ask per start: q0 starts at 0.25, q1 0.25 after q0 ends (2.25)
    assert latencies(queries, one_slot, 0.25) == [pytest.approx(2.25), pytest.approx(3.5)]
    # two starts from one admission (two asks) both wait for both decisions
    single = QueryFifo(QueryKnobs(max_parallelism=1))
    pair = [chain_query(i, [2.0], tasks=2) for i in range(2)]
    assert latencies(pair, single, 0.25) == [pytest.approx(2.5), pytest.approx(2.5)]
    # free deciding is the default, to the last digit
    free = simulate(queries, config, QueryLevel(one_slot), np.random.default_rng(0))
    assert [q.latency_s for q in free.queries] == latencies(queries, one_slot, 0.0)
    with pytest.raises(ValueError, match="decision_s"):
        QueryLevel(one_slot, -1.0)


def test_a_decision_delay_that_is_not_a_duration_is_refused() -> None:
    config = ClusterConfig(**{**QUIET, "nodes": 1, "threads_per_node": 2})
    simulation = Simulation([chain_query(0, [1.0], tasks=1)], config, np.random.default_rng(0))
    observation = simulation.advance()
    ref = next(iter(observation.schedulable)).ref
    for bad in (-0.5, math.inf, True):
        with pytest.raises(ValueError, match="delay"):
            simulation.apply(Decision(ref, 1, bad))
    assert simulation.apply(Decision(ref, 1, 0.5)) == 1


def test_every_query_level_entry_takes_decision_s_and_tuned_searches_with_it() -> None:
    """`decision_s` on an agent entry charges its query-level form (tuned: the search too);
    at pipeline level it is refused, since only a scheduler beside the engine pays it."""
    from lsched.runner import build_agent
    from lsched.scenario import AgentChoice, load_scenario

    scenario = load_scenario("duckdb-stream-60")
    sjf = build_agent(scenario, AgentChoice("sjf", {"decisions": "query", "decision_s": 0.002}))
    assert isinstance(sjf, QueryLevel) and sjf.decision_s == 0.002
    options = {"decisions": "query", "max_queries": 60}
    charged = build_agent(scenario, AgentChoice("tuned", {**options, "decision_s": 0.002}))
    charged.reset(scenario.cluster)
    assert charged.query_level.decision_s == 0.002
    free = build_agent(scenario, AgentChoice("tuned", options))
    free.reset(scenario.cluster)
    assert free.query_level.decision_s == 0.0
    # the search ran with the charge: the same candidates, each scored slower
    pairs = zip(charged.chosen.trials, free.chosen.trials, strict=True)
    assert all(c.candidate == f.candidate and c.score > f.score for c, f in pairs)
    learned = build_agent(scenario, AgentChoice("lsched", {"decisions": "query", "decision_s": 1}))
    assert learned.decision_s == 1.0
    for name in ("sjf", "tuned", "lsched"):
        with pytest.raises(AgentOptionError, match="decision_s"):
            build_agent(scenario, AgentChoice(name, {"decision_s": 0.002}))
    with pytest.raises(AgentOptionError, match="decision_s: must be seconds"):
        build_agent(scenario, AgentChoice("fifo", {"decisions": "query", "decision_s": -1}))
