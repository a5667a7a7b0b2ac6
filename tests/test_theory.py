"""The theory baselines (heSRPT, LPF, SERPT), the query-log runtime predictor in front of SRPT,
and the scalability prior they read: each rule's defining behaviour, run through the simulator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from agents import AgentContext, AgentOptionError, Candidate, Srpt, make_agent
from agents.predictor import PredictedSrpt, PredictorSettings, RuntimePredictor
from agents.scalability import ScalabilityPrior, efficient_threads, speedup
from agents.theory import HeSrpt, LeastParallelizableFirst, Serpt
from agents.tuned import TuningBudget, candidates
from sim import ClusterConfig, PipelineSpec, QuerySpec, SimResult, simulate
from sim.interface import CompletedQuery

QUIET = dict(moving_delay_s=0.0, warmup_s=0.0, parallel_overhead=0.0, task_skew=0.0)

PRIOR = ScalabilityPrior((1.0, 100.0), {"*": (0.05, 0.05), "sort": (1.0, 1.0), "scan": (0.0, 0.0)})
"""A database's operator model: sorts do not scale at all, scans scale linearly."""


def quiet(threads: int) -> ClusterConfig:
    return ClusterConfig(nodes=1, threads_per_node=threads, **QUIET)


def one_pipeline(
    query_id: int,
    work_s: float,
    tasks: int,
    operator: str = "scan",
    est_work_s: float = 0.0,
    arrival_s: float = 0.0,
    template: str = "",
    serial_fraction: float = 0.0,
) -> QuerySpec:
    pipeline = PipelineSpec(
        0, (), tasks, work_s, est_work_s or work_s, operator=operator,
        serial_fraction=serial_fraction,
    )  # fmt: skip
    return QuerySpec(query_id, template or f"t{query_id}", "adhoc", arrival_s, (pipeline,))


def run(queries: list[QuerySpec], scheduler: object, cluster: ClusterConfig) -> SimResult:
    return simulate(queries, cluster, scheduler, np.random.default_rng(1))  # type: ignore[arg-type]


def threads_at_start(result: SimResult, query_id: int) -> int:
    mask = (result.tasks.query_id == query_id) & (result.tasks.start_s == 0.0)
    return len(set(result.tasks.thread[mask].tolist()))


def finish(result: SimResult) -> dict[int, float]:
    return {r.query_id: r.finish_s for r in result.queries}


# --------------------------------------------------------------- the scalability prior


def test_prior_interpolates_in_log_data_size_and_holds_beyond_its_ends() -> None:
    prior = ScalabilityPrior((1.0, 100.0), {"*": (0.2, 0.0)}, data_multiplier=10.0)
    assert prior.serial_fraction("join", 1.0) == pytest.approx(0.1)  # data size 10: halfway
    assert prior.serial_fraction("join", 0.01) == pytest.approx(0.2)
    assert prior.serial_fraction("join", 1000.0) == pytest.approx(0.0)
    by_class = ScalabilityPrior((1.0, 100.0), {"*": (0.2, 0.0)}, 10.0, {"etl": 1.0})
    assert by_class.serial_fraction("join", 1.0, "etl") == pytest.approx(0.2)
    with pytest.raises(ValueError, match='"\\*"'):
        ScalabilityPrior((1.0,), {"sort": (1.0,)})


def test_efficient_threads_stop_where_another_thread_adds_little() -> None:
    assert efficient_threads(1.0, 0.5, 16) == 1  # a serial pipeline gains nothing from more
    assert efficient_threads(0.0, 0.5, 16) == 16  # a linear one uses every thread
    k = efficient_threads(0.05, 0.5, 64)
    assert speedup(0.05, k) - speedup(0.05, k - 1) >= 0.5 > speedup(0.05, k + 1) - speedup(0.05, k)


def test_the_runner_gives_agents_the_operator_model_at_the_scenarios_data_size() -> None:
    from lsched.runner import agent_context
    from lsched.scenario import load_scenario

    prior = agent_context(load_scenario("tpch-streaming")).scalability
    assert prior is not None and prior.data_multiplier == 400.0
    # the bundled TPC-H model: aggregations scale (f ≈ 0.05) and join builds do not (f = 1)
    assert prior.serial_fraction("aggregate", 1.0) < 0.1
    assert prior.serial_fraction("join_build", 1.0) == pytest.approx(1.0)


# --------------------------------------------------------------- the theory rules


def test_theory_rules_never_read_the_hidden_serial_fraction() -> None:
    """Two workloads that differ only in the simulator's hidden serial fractions get the
    same schedule decisions: the rules see operator types, not the hidden numbers."""

    def workload(fraction: float) -> list[QuerySpec]:
        return [
            one_pipeline(0, 32.0, 16, "sort", serial_fraction=fraction),
            one_pipeline(1, 32.0, 16, "scan", serial_fraction=fraction),
        ]

    for rule in (
        HeSrpt(scalability=PRIOR),
        LeastParallelizableFirst(scalability=PRIOR),
        Serpt(scalability=PRIOR),
    ):
        cluster = dataclasses.replace(quiet(8), parallel_overhead=None)
        low, high = run(workload(0.0), rule, cluster), run(workload(0.9), rule, cluster)
        assert [threads_at_start(low, q) for q in (0, 1)] == [
            threads_at_start(high, q) for q in (0, 1)
        ]


def test_lpf_gives_the_serial_pipeline_one_thread_first_and_the_rest_to_the_scalable() -> None:
    workload = [one_pipeline(0, 64.0, 16, "scan"), one_pipeline(1, 64.0, 16, "sort")]
    result = run(workload, LeastParallelizableFirst(scalability=PRIOR), quiet(8))
    assert threads_at_start(result, 1) == 1  # the sort: first, and one thread is all it uses
    assert threads_at_start(result, 0) == 7


def test_serpt_runs_the_scalable_query_first_where_srpt_sees_equal_work() -> None:
    scalable = one_pipeline(0, 40.0, 8, "scan", est_work_s=41.0)
    serial = one_pipeline(1, 40.0, 8, "sort")
    # SRPT: the serial query has less estimated work, so it goes first and hogs every thread
    srpt = run([scalable, serial], Srpt(), quiet(8))
    assert threads_at_start(srpt, 1) == 8 and threads_at_start(srpt, 0) == 0
    # SERPT: 41 s on 8 threads takes far less than 40 s on one
    serpt = run([scalable, serial], Serpt(scalability=PRIOR), quiet(8))
    assert threads_at_start(serpt, 0) == 8
    assert finish(serpt)[0] < finish(srpt)[0]


def test_scalable_rules_leave_threads_a_pipeline_cannot_use_idle_unless_told() -> None:
    serial = [one_pipeline(0, 8.0, 8, "sort")]
    assert threads_at_start(run(serial, Serpt(scalability=PRIOR), quiet(4)), 0) == 1
    filled = run(serial, Serpt(fill_idle=True, scalability=PRIOR), quiet(4))
    assert threads_at_start(filled, 0) == 4


def test_hesrpt_shares_follow_the_rank_formula() -> None:
    cluster = quiet(16)
    sizes = [40.0, 10.0, 20.0, 30.0]
    workload = [one_pipeline(q, w, 32) for q, w in enumerate(sizes)]
    p = 0.5
    result = run(workload, HeSrpt(speedup_exponent=p), cluster)
    got = {q: threads_at_start(result, q) for q in range(4)}
    # ranks from the largest (i = 1) to the smallest (i = 4), c = 1 / (1 - p) = 2
    cumulative = [round(16 * (i / 4) ** 2) for i in range(5)]
    expected_by_rank = [cumulative[i] - cumulative[i - 1] for i in range(1, 5)]  # 1, 3, 5, 7
    order = sorted(range(4), key=lambda q: -sizes[q])
    assert [got[q] for q in order] == expected_by_rank
    assert sum(got.values()) == 16


def test_hesrpt_is_fair_sharing_without_speedup_and_srpt_with_linear_speedup() -> None:
    workload = [one_pipeline(q, 10.0 * (q + 1), 32) for q in range(4)]
    flat = run(workload, HeSrpt(speedup_exponent=0.0), quiet(8))
    assert [threads_at_start(flat, q) for q in range(4)] == [2, 2, 2, 2]
    nearly_linear = run(workload, HeSrpt(speedup_exponent=0.99), quiet(8))
    assert threads_at_start(nearly_linear, 0) == 8  # the smallest takes everything


def test_hesrpt_exponent_comes_from_the_prior() -> None:
    workload = [one_pipeline(q, 10.0, 8, "sort") for q in range(2)]
    serial = run(workload, HeSrpt(scalability=PRIOR), quiet(8))  # f = 1: p = 0, equal shares
    assert [threads_at_start(serial, q) for q in range(2)] == [4, 4]
    with pytest.raises(AgentOptionError, match="speedup_exponent"):
        HeSrpt(speedup_exponent=1.0)


# --------------------------------------------------------------- the runtime predictor


def record(
    template: str, est_work_s: float, cpu_s: float, scale_factor: float = 1.0
) -> CompletedQuery:
    return CompletedQuery(0, template, "adhoc", scale_factor, 0.0, 1.0, est_work_s, cpu_s)


def test_predictor_learns_a_templates_error_and_falls_back_to_the_estimate() -> None:
    predictor = RuntimePredictor(PredictorSettings(shrinkage=0.0))
    assert predictor.correction("q1", 1.0) == 1.0  # no log yet: the optimizer's estimate
    predictor.observe(record("q1", 10.0, 40.0))
    predictor.observe(record("q1", 10.0, 40.0))
    assert predictor.correction("q1", 1.0) == pytest.approx(4.0)
    # another scale factor of the same template: the template's ratio
    predictor.observe(record("q1", 10.0, 10.0, scale_factor=10.0))
    assert predictor.correction("q1", 10.0) == pytest.approx(1.0)
    assert predictor.correction("q1", 3.0) == pytest.approx(4.0 ** (2 / 3))
    # an unseen template: the log's overall ratio
    assert predictor.correction("q9", 1.0) == pytest.approx(4.0 ** (2 / 3))
    predictor.observe(record("q2", 10.0, math.nan))  # no CPU time in the log: ignored
    assert predictor.correction("q2", 1.0) == pytest.approx(4.0 ** (2 / 3))


def test_predictor_shrinks_a_short_history_towards_the_coarser_ratio() -> None:
    """Each level (all templates, the template, template and scale factor) is its mean log
    ratio with one pseudo-instance at the level above; above all is the estimate (ratio 1)."""
    predictor = RuntimePredictor(PredictorSettings(shrinkage=1.0))
    predictor.observe(record("q1", 10.0, 40.0))
    ratio = math.log(4.0)
    overall = ratio / 2
    template = (ratio + overall) / 2
    assert predictor.correction("q1", 1.0) == pytest.approx(math.exp((ratio + template) / 2))
    assert predictor.correction("q7", 1.0) == pytest.approx(math.exp(overall))


def test_the_simulator_logs_each_querys_cpu_time() -> None:
    result_queries = [one_pipeline(0, 12.0, 6), one_pipeline(1, 5.0, 5)]
    seen: list[CompletedQuery] = []

    class Spy(Srpt):
        def decide(self, obs):  # type: ignore[no-untyped-def]
            seen[:] = list(obs.completed)
            return super().decide(obs)

    result = run([*result_queries, one_pipeline(2, 1.0, 1, arrival_s=100.0)], Spy(), quiet(4))
    assert {r.query_id: r.cpu_s for r in seen} == pytest.approx({0: 12.0, 1: 5.0})
    assert result.busy_thread_s == pytest.approx(18.0)


def test_predicted_srpt_learns_that_a_template_is_underestimated() -> None:
    """Template "big" is estimated at a tenth of its work. Once one instance is in the log,
    SRPT on the prediction runs a truly smaller query before the next "big" one; plain SRPT,
    trusting the estimate, does not."""
    first = one_pipeline(0, 40.0, 4, est_work_s=4.0, template="big")
    first_small = one_pipeline(3, 8.0, 4, est_work_s=8.0, template="small", arrival_s=10.0)
    later_big = one_pipeline(1, 40.0, 4, est_work_s=4.0, template="big", arrival_s=20.0)
    small = one_pipeline(2, 8.0, 4, est_work_s=8.0, template="small", arrival_s=20.0)
    workload = [first, first_small, later_big, small]
    plain = finish(run(workload, Srpt(), quiet(4)))
    predicted = finish(run(workload, PredictedSrpt(shrinkage=0.0), quiet(4)))
    assert plain[2] > plain[1]
    assert predicted[2] < predicted[1]
    assert predicted[2] == pytest.approx(20.0 + 2.0)


def test_predicted_srpt_caps_a_small_pipeline_at_the_threads_its_work_keeps_busy() -> None:
    workload = [one_pipeline(0, 4.0, 8)]
    result = run(workload, PredictedSrpt(work_per_thread_s=2.0), quiet(8))
    assert threads_at_start(result, 0) == 2
    with pytest.raises(AgentOptionError, match="work_per_thread_s"):
        PredictedSrpt(work_per_thread_s=0.0)


# --------------------------------------------------------------- registry and tuned


def context(prior: ScalabilityPrior | None = PRIOR) -> AgentContext:
    return AgentContext(quiet(8), None, (), None, np.random.default_rng(0), scalability=prior)


@pytest.mark.parametrize("name", ["hesrpt", "lpf", "serpt", "predicted_srpt"])
def test_registered_with_knobs_and_checked_options(name: str) -> None:
    agent = make_agent(name, context(), max_parallelism=4)
    assert agent.knobs.max_parallelism == 4  # type: ignore[attr-defined]
    with pytest.raises(AgentOptionError, match="unknown option 'scalability'"):
        make_agent(name, context(), scalability=None)


def test_theory_agents_read_the_contexts_prior() -> None:
    agent = make_agent("lpf", context())
    assert agent.scalability.prior is PRIOR  # type: ignore[attr-defined]
    with pytest.raises(AgentOptionError, match="min_marginal_speedup"):
        make_agent("serpt", context(), min_marginal_speedup=-1)


def test_tuned_searches_the_new_families() -> None:
    grid = candidates(TuningBudget(), quiet(8), [one_pipeline(0, 1.0, 1)])
    families = {c.family for c in grid}
    assert {"hesrpt", "lpf", "serpt", "predicted_srpt"} <= families
    assert Candidate("serpt", None, min_marginal_speedup=0.7) in grid
    built = Candidate("serpt").build(PRIOR)
    assert isinstance(built, Serpt) and built.scalability.prior is PRIOR


@pytest.mark.parametrize("name", ["hesrpt", "lpf", "serpt", "predicted_srpt"])
def test_a_reused_agent_repeats_its_run_exactly(name: str) -> None:
    """`reset` forgets per-run state (the predictor's query log, cached scalability), so the
    same object on the same seed gives the same schedule whatever ran before it."""
    from lsched.runner import agent_context
    from lsched.scenario import load_scenario

    scenario = load_scenario("tpch-streaming")
    agent = make_agent(name, agent_context(scenario))

    def latencies(seed: int) -> list[float]:
        queries = scenario.queries(seed)[:60]
        result = simulate(queries, scenario.cluster, agent, scenario.execution_rng(seed))
        return [q.latency_s for q in result.queries]

    first = latencies(0)
    latencies(1)
    assert latencies(0) == first
