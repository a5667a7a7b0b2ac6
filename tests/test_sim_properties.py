"""Invariants of every schedule, checked from the task trace.

Random clusters, plan DAGs and schedulers, with and without faults.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import RandomLimits

from sim import ClusterConfig, FaultConfig, PipelineSpec, QuerySpec, SimResult, simulate


@st.composite
def queries(draw: st.DrawFn) -> list[QuerySpec]:
    result = []
    for query_id in range(draw(st.integers(1, 5))):
        pipelines = []
        for index in range(draw(st.integers(1, 5))):
            parents = (
                tuple(sorted(draw(st.sets(st.integers(0, index - 1), max_size=2)))) if index else ()
            )
            work = draw(st.floats(0.1, 20.0))
            pipelines.append(
                PipelineSpec(
                    index=index,
                    parents=parents,
                    num_tasks=draw(st.integers(1, 6)),
                    work_s=work,
                    est_work_s=work * draw(st.floats(0.2, 5.0)),
                    memory_gb=draw(st.sampled_from([0.0, 1.0, 6.0])),
                )
            )
        arrival = draw(st.floats(0.0, 30.0))
        result.append(QuerySpec(query_id, f"t{query_id % 2}", "adhoc", arrival, tuple(pipelines)))
    return result


@st.composite
def clusters(draw: st.DrawFn) -> ClusterConfig:
    faulty = draw(st.booleans())
    return ClusterConfig(
        nodes=draw(st.integers(1, 3)),
        threads_per_node=draw(st.integers(1, 4)),
        memory_per_node_gb=8.0,
        moving_delay_s=draw(st.sampled_from([0.0, 0.5, 2.0])),
        warmup_s=draw(st.sampled_from([0.0, 1.0])),
        parallel_overhead=draw(st.sampled_from([0.0, 0.1])),
        spill_factor=draw(st.sampled_from([1.0, 2.0])),
        task_skew=draw(st.sampled_from([0.0, 0.5])),
        faults=FaultConfig(mean_time_between_failures_s=15.0, repair_time_s=3.0)
        if faulty
        else FaultConfig(),
    )


def check_trace(workload: list[QuerySpec], result: SimResult) -> None:
    tasks = result.tasks
    specs = {q.query_id: q for q in workload}
    # Every task runs exactly once to completion.
    done = sorted(zip(tasks.query_id, tasks.pipeline, tasks.task, strict=True))
    expected = sorted(
        (q.query_id, p.index, t) for q in workload for p in q.pipelines for t in range(p.num_tasks)
    )
    assert [tuple(map(int, row)) for row in done] == expected
    # Lost attempts were re-run, and are counted.
    completed = set(map(tuple, np.stack([tasks.query_id, tasks.pipeline, tasks.task], 1).tolist()))
    lost = list(
        zip(
            result.lost_tasks.query_id,
            result.lost_tasks.pipeline,
            result.lost_tasks.task,
            strict=True,
        )
    )
    assert all(tuple(map(int, row)) in completed for row in lost)
    assert result.rerun_tasks == len({tuple(map(int, row)) for row in lost})
    # No thread runs two tasks (or a lost attempt and a task) at once.
    intervals = defaultdict(list)
    for trace in (tasks, result.lost_tasks):
        for thread, start, end in zip(trace.thread, trace.start_s, trace.end_s, strict=True):
            intervals[int(thread)].append((float(start), float(end)))
    for spans in intervals.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 1e-9
    # No task starts before all its parent pipelines have finished.
    finish = defaultdict(float)
    for q, p, end in zip(tasks.query_id, tasks.pipeline, tasks.end_s, strict=True):
        finish[int(q), int(p)] = max(finish[int(q), int(p)], float(end))
    for q, p, start in zip(tasks.query_id, tasks.pipeline, tasks.start_s, strict=True):
        for parent in specs[int(q)].pipelines[int(p)].parents:
            assert start >= finish[int(q), parent] - 1e-9
    # No query finishes before its last task, nor starts before it arrives.
    for record in result.queries:
        last = max(v for (q, _), v in finish.items() if q == record.query_id)
        assert record.finish_s >= last - 1e-9
        assert record.start_s >= record.arrival_s
        assert record.slowdown >= 1 - 1e-9
    assert result.mean_latency_s >= result.lower_bound.mean_latency_s - 1e-6


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=queries(), cluster=clusters(), seed=st.integers(0, 2**16))
def test_every_schedule_respects_the_invariants(
    workload: list[QuerySpec], cluster: ClusterConfig, seed: int
) -> None:
    result = simulate(workload, cluster, RandomLimits(seed), np.random.default_rng(seed))
    check_trace(workload, result)


@settings(max_examples=20, deadline=None)
@given(workload=queries(), cluster=clusters(), seed=st.integers(0, 2**16))
def test_same_seed_same_result(
    workload: list[QuerySpec], cluster: ClusterConfig, seed: int
) -> None:
    first = simulate(workload, cluster, RandomLimits(seed), np.random.default_rng(seed))
    second = simulate(workload, cluster, RandomLimits(seed), np.random.default_rng(seed))
    assert first.queries == second.queries
    for column in ("query_id", "thread", "start_s", "end_s"):
        assert np.array_equal(getattr(first.tasks, column), getattr(second.tasks, column))


def test_a_task_completion_runs_through_simpys_step() -> None:
    """The engine's per-task event (`_TaskDue`) carries only the two fields SimPy's
    `Environment.step` reads of an event: a SimPy that reads more fails here first."""
    import simpy
    from simpy.events import NORMAL

    from sim.engine import _TaskDue

    env = simpy.Environment()
    seen: list[object] = []
    event = _TaskDue(seen.append)
    env.schedule(event, NORMAL, 2.5)  # type: ignore[arg-type]
    env.step()
    assert seen == [event] and env.now == 2.5 and event.callbacks is None


def test_the_readmes_scheduler_example_keeps_the_contract() -> None:
    """The plain scheduler the README shows, run as written, passes `check_scheduler` (its
    first version capped a 2-thread cluster at 0 threads and idled it for good)."""
    import re
    from pathlib import Path

    from sim.checker import check_scheduler

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "class BiggestFirst" in b
    )
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    check_scheduler(namespace["BiggestFirst"](), name="BiggestFirst")  # type: ignore[operator]
