"""One focused test per modelled effect: each would fail if the effect were removed."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from sim_helpers import QUIET, FirstCome, chain_query

from sim import (
    WAIT,
    ClusterConfig,
    Decision,
    FaultConfig,
    PipelineSpec,
    QuerySpec,
    Simulation,
    simulate,
)
from sim.bounds import fluid_srpt_mean_latency_s, isolated_latency_s


def run(queries, scheduler=None, **cluster):
    config = ClusterConfig(**{**QUIET, **cluster})
    return simulate(queries, config, scheduler or FirstCome(), np.random.default_rng(0))


def latencies(result) -> list[float]:
    return [round(q.latency_s, 9) for q in result.queries]


def test_quiet_cluster_runs_tasks_at_their_true_duration() -> None:
    result = run([chain_query(0, [4.0, 6.0], tasks=2)], nodes=1, threads_per_node=2)
    assert latencies(result) == [5.0]  # 2 + 3: each pipeline's two tasks in parallel


def test_moving_delay_is_paid_when_a_thread_switches_query() -> None:
    workload = [chain_query(0, [10.0]), chain_query(1, [10.0])]
    without = run(workload, nodes=1, threads_per_node=1)
    moved = run(workload, nodes=1, threads_per_node=1, moving_delay_s=2.0)
    assert latencies(without) == [10.0, 20.0]
    assert latencies(moved) == [10.0, 22.0]  # the first assignment of a fresh thread is no move


def test_warmup_is_paid_once_per_thread_and_pipeline() -> None:
    workload = [chain_query(0, [9.0, 3.0], tasks=[3, 1])]
    cold = run(workload, nodes=1, threads_per_node=1, warmup_s=1.0)
    assert latencies(cold) == [9.0 + 3.0 + 2 * 1.0]  # one warm-up per pipeline, not per task


def test_parallel_efficiency_falls_with_threads_on_a_pipeline() -> None:
    workload = [chain_query(0, [8.0], tasks=4)]
    perfect = run(workload, nodes=1, threads_per_node=4)
    shared = run(workload, nodes=1, threads_per_node=4, parallel_overhead=0.1)
    assert latencies(perfect) == [2.0]
    assert latencies(shared) == [pytest.approx(2.0 * 1.3)]
    assert latencies(
        run(workload, FirstCome(limit=1), nodes=1, threads_per_node=4, parallel_overhead=0.1)
    ) == [8.0]


def test_each_pipeline_scales_by_its_own_serial_fraction() -> None:
    from dataclasses import replace

    query = chain_query(0, [8.0, 8.0], tasks=4)
    fractions = (0.0, 0.5)
    measured = replace(
        query,
        pipelines=tuple(
            replace(p, serial_fraction=f) for p, f in zip(query.pipelines, fractions, strict=True)
        ),
    )
    per_pipeline = run([measured], nodes=1, threads_per_node=4, parallel_overhead=None)
    # 8 s on 4 threads: 2 s at f = 0; 2 × (1 + 0.5 × 3) = 5 s at f = 0.5
    assert latencies(per_pipeline) == [pytest.approx(2.0 + 5.0)]
    # a number overrides every pipeline's own fraction: the uniform model, exactly
    uniform = run([measured], nodes=1, threads_per_node=4, parallel_overhead=0.1)
    assert latencies(uniform) == latencies(
        run([query], nodes=1, threads_per_node=4, parallel_overhead=0.1)
    )


def test_queries_running_side_by_side_on_a_node_slow_each_other() -> None:
    pair = [chain_query(0, [10.0], tasks=5), chain_query(1, [10.0], tasks=5)]
    assert latencies(run(pair, FirstCome(limit=1), nodes=1, threads_per_node=2)) == [10.0, 10.0]
    beside = run(pair, FirstCome(limit=1), nodes=1, threads_per_node=2, interference=0.1)
    # a task's slow-down is fixed when it starts: query 0's first task started alone
    assert latencies(beside) == [pytest.approx(2.0 + 4 * 2.2), pytest.approx(5 * 2.2)]
    apart = run(pair, FirstCome(limit=1), nodes=2, threads_per_node=1, interference=0.1)
    assert latencies(apart) == [10.0, 10.0]
    alone = run([chain_query(0, [20.0], tasks=2)], nodes=1, threads_per_node=2, interference=0.1)
    assert latencies(alone) == [10.0]  # one query's own threads do not interfere


def test_tasks_spill_when_a_node_is_out_of_memory() -> None:
    workload = [chain_query(0, [4.0], tasks=2, memory_gb=12.0)]
    fits = run(workload, nodes=1, threads_per_node=2, memory_per_node_gb=16.0, spill_factor=3.0)
    spills = run(workload, nodes=1, threads_per_node=2, memory_per_node_gb=8.0, spill_factor=3.0)
    assert latencies(fits) == [2.0]
    assert latencies(spills) == [6.0]


def test_memory_is_split_over_the_nodes_a_pipeline_runs_on() -> None:
    workload = [chain_query(0, [4.0], tasks=2, memory_gb=12.0)]
    spread = run(workload, nodes=2, threads_per_node=1, memory_per_node_gb=8.0, spill_factor=3.0)
    assert latencies(spread) == [2.0]  # 6 GB on each node fits


def test_node_failures_lose_tasks_which_are_rerun() -> None:
    workload = [chain_query(q, [40.0, 20.0], tasks=8, arrival_s=5.0 * q) for q in range(6)]
    faults = FaultConfig(mean_time_between_failures_s=20.0, repair_time_s=5.0)
    healthy = run(workload, nodes=2, threads_per_node=2)
    faulty = run(workload, nodes=2, threads_per_node=2, faults=faults)
    assert len(healthy.lost_tasks) == 0
    assert len(faulty.lost_tasks) > 0
    assert faulty.rerun_tasks > 0
    assert len(faulty.tasks) == len(healthy.tasks) == sum(q.num_tasks for q in workload)
    assert faulty.mean_latency_s > healthy.mean_latency_s


def test_isolated_latency_is_tight_for_a_lone_query_on_a_quiet_cluster() -> None:
    result = run([chain_query(0, [6.0, 2.0, 9.0], tasks=[3, 1, 3])], nodes=1, threads_per_node=3)
    assert result.queries[0].latency_s == pytest.approx(result.queries[0].isolated_s)
    assert result.queries[0].slowdown == pytest.approx(1.0)


def test_isolated_latency_counts_the_work_sibling_pipelines_share() -> None:
    """Two independent pipelines of 6 thread-seconds on 3 threads cannot both finish in 2 s
    (each alone could): the query needs at least its 12 thread-seconds over 3 threads."""
    siblings = QuerySpec(
        0,
        "siblings",
        "adhoc",
        0.0,
        (
            PipelineSpec(0, (), 3, 6.0, 6.0),
            PipelineSpec(1, (), 3, 6.0, 6.0),
            PipelineSpec(2, (0, 1), 1, 1.0, 1.0),
        ),
    )
    durations = [np.full(3, 2.0), np.full(3, 2.0), np.array([1.0])]
    assert isolated_latency_s(siblings, durations, total_threads=3) == pytest.approx(13 / 3)
    result = run([siblings], nodes=1, threads_per_node=3)
    assert result.queries[0].latency_s >= result.queries[0].isolated_s - 1e-9


def test_fluid_srpt_bound_matches_a_hand_computed_schedule() -> None:
    # One thread; sizes 1 and 2 at t=0, size 1 at t=1.5: SRPT finishes them at 1, 4, 2.5.
    mean = fluid_srpt_mean_latency_s([0.0, 0.0, 1.5], [1.0, 2.0, 1.0], total_threads=1)
    assert mean == pytest.approx((1 + 4 + 1) / 3)


def test_schedulers_see_estimates_not_true_work() -> None:
    simulation = Simulation(
        [chain_query(0, [10.0], est_factor=3.0)], ClusterConfig(), np.random.default_rng(0)
    )
    obs = simulation.advance()
    (pipeline,) = obs.schedulable
    assert pipeline.est_work_s == pytest.approx(30.0)
    with pytest.raises(PermissionError):
        _ = pipeline.true_work_s
    oracle = Simulation(
        [chain_query(0, [10.0])], ClusterConfig(), np.random.default_rng(0), oracle=True
    )
    assert next(iter(oracle.advance().schedulable)).true_work_s == 10.0


def test_every_scheduler_faces_the_same_task_durations() -> None:
    workload = [chain_query(q, [5.0, 5.0], tasks=4, arrival_s=q) for q in range(4)]
    config = ClusterConfig(**{**QUIET, "task_skew": 0.8}, nodes=1, threads_per_node=2)

    def durations(scheduler) -> dict:
        trace = simulate(workload, config, scheduler, np.random.default_rng(7)).tasks
        keys = zip(trace.query_id, trace.pipeline, trace.task, strict=True)
        return {
            tuple(map(int, k)): round(e - s, 9)
            for k, s, e in zip(keys, trace.start_s, trace.end_s, strict=True)
        }

    assert durations(FirstCome()) == durations(FirstCome(limit=1))


class TestInvalidDecisions:
    def start(self):
        workload = [chain_query(0, [1.0, 1.0])]
        simulation = Simulation(
            workload, ClusterConfig(nodes=1, threads_per_node=2), np.random.default_rng(0)
        )
        simulation.advance()
        return simulation

    def test_pipeline_not_ready(self) -> None:
        with pytest.raises(ValueError, match="not ready"):
            self.start().apply(Decision((0, 1), 1))

    def test_unknown_query(self) -> None:
        with pytest.raises(ValueError, match="query 9 is not in the system"):
            self.start().apply(Decision((9, 0), 1))

    def test_unknown_pipeline(self) -> None:
        with pytest.raises(ValueError, match="has no pipeline 5"):
            self.start().apply(Decision((0, 5), 1))

    @pytest.mark.parametrize("limit", [0, -1, 3, 1.5])
    def test_limit_out_of_range(self, limit) -> None:
        with pytest.raises(ValueError, match="out of range"):
            self.start().apply(Decision((0, 0), limit))

    def test_waiting_forever_on_an_idle_cluster(self) -> None:
        with pytest.raises(ValueError, match="could never finish"):
            self.start().apply(WAIT)


def test_utilization_is_the_same_with_or_without_the_task_trace() -> None:
    workload = [chain_query(q, [5.0, 3.0], tasks=3, arrival_s=2.0 * q) for q in range(5)]
    config = ClusterConfig(nodes=1, threads_per_node=2)
    traced = simulate(workload, config, FirstCome(), np.random.default_rng(3))
    untraced = simulate(workload, config, FirstCome(), np.random.default_rng(3), record_tasks=False)
    busy = float((traced.tasks.end_s - traced.tasks.start_s).sum())
    assert traced.busy_thread_s == pytest.approx(busy)
    assert len(untraced.tasks) == 0
    assert untraced.utilization == traced.utilization > 0
    assert untraced.queries == traced.queries


def test_a_grant_on_a_full_cluster_binds_nothing() -> None:
    """A decision made while no thread is free (a driver that applies twice without
    advancing) binds nothing and says so, for one thread as for several."""
    queries = [chain_query(q, [4.0], tasks=4) for q in range(2)]
    simulation = Simulation(queries, ClusterConfig(**QUIET, nodes=1, threads_per_node=2),
                            np.random.default_rng(0))  # fmt: skip
    simulation.advance()
    assert simulation.apply(Decision((0, 0), 2)) == 2
    assert simulation.apply(Decision((1, 0), 1)) == 0
    assert simulation.apply(Decision((1, 0), 2)) == 0


def test_missed_deadlines_count_the_queries_that_finish_after_theirs() -> None:
    """Two 4-second queries on one thread: the second waits 4 s, so a 6-second deadline is
    missed by it and met by the first; queries without a deadline are not counted."""
    queries = [chain_query(q, [4.0]) for q in range(3)]
    queries = [replace(q, deadline_s=6.0) for q in queries[:2]] + [queries[2]]
    result = run(queries, nodes=1, threads_per_node=1)
    assert sorted(q.latency_s for q in result.queries[:2]) == [4.0, 8.0]
    assert result.missed_deadlines == 0.5
    assert run(queries[2:], nodes=1, threads_per_node=1).missed_deadlines is None


def test_a_decision_that_is_not_a_decision_is_named() -> None:
    """An agent's decide() returning a tuple or None failed deep inside the engine with an
    AttributeError; it is now one line saying what came back."""
    simulation = Simulation([chain_query(0, [4.0])], ClusterConfig(), np.random.default_rng(0))
    simulation.advance()
    for wrong in ((0, 0), None):
        expected = rf"decide\(\) returned {re.escape(repr(wrong))}, not a sim\.Decision"
        with pytest.raises(ValueError, match=expected):
            simulation.apply(wrong)  # type: ignore[arg-type]
