"""Baseline schedulers, the tuned meta-agent and the registry, run through the real simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents import (
    AGENTS,
    AgentContext,
    AgentOptionError,
    Candidate,
    Fair,
    Fifo,
    Knobs,
    RandomPick,
    Sjf,
    Srpt,
    Tuned,
    UnknownAgentError,
    WeightedFair,
    make_agent,
    register,
)
from agents.heuristics import CriticalPathFirst
from sim import (
    WAIT,
    ClusterConfig,
    Decision,
    FaultConfig,
    Observation,
    PipelineSpec,
    QuerySpec,
    Scheduler,
    SimResult,
    simulate,
)

QUIET = dict(moving_delay_s=0.0, warmup_s=0.0, parallel_overhead=0.0, task_skew=0.0)
"""No overheads and no task skew: start times become exact, so a test can read the order."""

STREAM_CLUSTER = ClusterConfig(nodes=2, threads_per_node=4)


def quiet(threads: int) -> ClusterConfig:
    return ClusterConfig(nodes=1, threads_per_node=threads, **QUIET)


def pipeline(
    index: int, work_s: float, tasks: int, parents: tuple[int, ...] = (), est_work_s: float = 0.0
) -> PipelineSpec:
    return PipelineSpec(index, parents, tasks, work_s, est_work_s or work_s)


def query(
    query_id: int,
    *pipelines: PipelineSpec,
    arrival_s: float = 0.0,
    query_class: str = "adhoc",
    priority: float = 1.0,
) -> QuerySpec:
    return QuerySpec(
        query_id, f"t{query_id}", query_class, arrival_s, tuple(pipelines), priority=priority
    )


def stream(seed: int, num_queries: int = 40, load: float = 0.9) -> list[QuerySpec]:
    """A Poisson stream on STREAM_CLUSTER: mostly small queries, some 10× larger ones.

    Plans are join trees (every pipeline feeds a later one; the last gives the result) and the
    optimizer's estimates are off by a lognormal factor, as in the real workloads.
    """
    rng = np.random.default_rng(seed)
    plans = []
    for _ in range(num_queries):
        is_long = rng.random() < 0.2
        count = int(rng.integers(2, 6))
        parents: list[list[int]] = [[] for _ in range(count)]
        for index in range(count - 1):
            parents[int(rng.integers(index + 1, count))].append(index)
        tasks = rng.integers(8, 33, count) if is_long else rng.integers(1, 7, count)
        task_s = 1.0 if is_long else 0.5
        plans.append(("long" if is_long else "short", parents, tasks, task_s))
    mean_work_s = np.mean([tasks.sum() * task_s for _, _, tasks, task_s in plans])
    gap_s = mean_work_s / (STREAM_CLUSTER.total_threads * load)
    arrivals = np.cumsum(rng.exponential(gap_s, num_queries))
    queries = []
    for query_id, ((query_class, parents, tasks, task_s), arrival) in enumerate(
        zip(plans, arrivals, strict=True)
    ):
        errors = rng.lognormal(0.0, 0.3, len(tasks))
        specs = [
            PipelineSpec(i, tuple(parents[i]), int(n), n * task_s, n * task_s * float(e))
            for i, (n, e) in enumerate(zip(tasks, errors, strict=True))
        ]
        queries.append(query(query_id, *specs, arrival_s=float(arrival), query_class=query_class))
    return queries


def context(
    cluster: ClusterConfig = STREAM_CLUSTER, seeds: tuple[int, ...] = (101, 102)
) -> AgentContext:
    return AgentContext(
        cluster=cluster,
        train_workload=stream,
        train_seeds=seeds,
        execution_rng=lambda seed: np.random.default_rng(seed + 7),
        rng=np.random.default_rng(0),
    )


def run(queries: list[QuerySpec], scheduler: Scheduler, cluster: ClusterConfig) -> SimResult:
    return simulate(queries, cluster, scheduler, np.random.default_rng(1))


def starts(result: SimResult) -> dict[int, float]:
    return {record.query_id: record.start_s for record in result.queries}


def first_task_s(result: SimResult, query_id: int, pipeline_index: int) -> float:
    mask = (result.tasks.query_id == query_id) & (result.tasks.pipeline == pipeline_index)
    return float(result.tasks.start_s[mask].min())


def threads_at_start(result: SimResult, query_id: int) -> int:
    """How many threads began a task of the query at time 0."""
    mask = (result.tasks.query_id == query_id) & (result.tasks.start_s == 0.0)
    return len(set(result.tasks.thread[mask].tolist()))


class Recorder:
    """Passes decisions through, remembering whether each left free threads idle."""

    def __init__(self, inner: Scheduler) -> None:
        self.inner = inner
        self.waits_with_work = 0
        self.limits: list[int] = []

    def reset(self, cluster: ClusterConfig) -> None:
        self.inner.reset(cluster)

    def decide(self, obs: Observation) -> Decision:
        decision = self.inner.decide(obs)
        if decision is WAIT or decision.pipeline is None:
            self.waits_with_work += 1
        else:
            self.limits.append(decision.limit)
        return decision


SMALL_TUNING = dict(families=("fair", "srpt"), parallelism_fractions=(1.0, 0.5), seeds=1)


# ------------------------------------------------------------------------ every agent
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_agent_finishes_every_query_despite_node_failures(name: str) -> None:
    cluster = dataclasses.replace(
        STREAM_CLUSTER, faults=FaultConfig(mean_time_between_failures_s=60.0, repair_time_s=5.0)
    )
    options = SMALL_TUNING if name == "tuned" else {}
    agent = make_agent(name, context(cluster), **options)
    assert isinstance(agent, Scheduler)
    workload = stream(3, num_queries=30)
    recorder = Recorder(agent)
    result = run(workload, recorder, cluster)
    assert sorted(r.query_id for r in result.queries) == [q.query_id for q in workload]
    assert all(r.finish_s >= r.arrival_s for r in result.queries)
    if name != "tuned":  # with default knobs no heuristic leaves a usable thread idle
        assert recorder.waits_with_work == 0


@pytest.mark.parametrize("name", ["fifo", "sjf", "srpt", "fair", "wfair", "cpf", "random"])
def test_max_parallelism_caps_every_decision(name: str) -> None:
    recorder = Recorder(make_agent(name, context(), max_parallelism=2))
    result = run(stream(4, num_queries=20), recorder, STREAM_CLUSTER)
    assert len(result.queries) == 20
    assert recorder.limits and max(recorder.limits) <= 2


# ------------------------------------------------------------------------ defining behaviour
def test_fifo_serves_the_earlier_arrival_before_a_smaller_later_query() -> None:
    big = query(5, pipeline(0, 40.0, 8), pipeline(1, 40.0, 8, parents=(0,)))
    small = query(1, pipeline(0, 4.0, 4), arrival_s=1.0)
    fifo = starts(run([big, small], Fifo(), quiet(4)))
    sjf = starts(run([big, small], Sjf(), quiet(4)))
    # Threads free up at 10 s when the big query's first pipeline ends: FIFO keeps them on
    # its second pipeline (until 20 s), SJF hands them to the small query.
    assert fifo[1] == pytest.approx(20.0)
    assert sjf[1] == pytest.approx(10.0)


def test_fifo_runs_a_querys_ready_pipelines_in_plan_order() -> None:
    plan = query(0, pipeline(0, 8.0, 4), pipeline(1, 8.0, 4), pipeline(2, 4.0, 4, parents=(0, 1)))
    result = run([plan], Fifo(), quiet(4))
    assert first_task_s(result, 0, 0) == 0.0
    assert first_task_s(result, 0, 1) == pytest.approx(2.0)


@pytest.mark.parametrize("scheduler", [Sjf, Srpt])
def test_size_based_rules_trust_the_estimate_not_the_true_work(scheduler: type) -> None:
    truly_small = query(0, pipeline(0, 10.0, 8, est_work_s=100.0))
    looks_small = query(1, pipeline(0, 100.0, 8, est_work_s=10.0))
    result = starts(run([truly_small, looks_small], scheduler(), quiet(4)))
    assert result[1] == 0.0
    assert result[0] > 0.0
    assert starts(run([truly_small, looks_small], Fifo(), quiet(4)))[0] == 0.0


def test_srpt_ranks_by_estimated_work_left_where_sjf_ranks_by_total() -> None:
    two_halves = query(0, pipeline(0, 40.0, 16), pipeline(1, 40.0, 16, parents=(0,)))
    one_block = query(1, pipeline(0, 60.0, 16), arrival_s=1.0)
    # At 10 s the first query has 40 s of estimated work left (< 60) but 80 s in total (> 60).
    assert starts(run([two_halves, one_block], Srpt(), quiet(4)))[1] == pytest.approx(20.0)
    assert starts(run([two_halves, one_block], Sjf(), quiet(4)))[1] == pytest.approx(10.0)


def test_adaptive_parallelism_shrinks_the_cap_with_the_queries_in_the_system() -> None:
    alone = [query(0, pipeline(0, 16.0, 16))]
    assert threads_at_start(run(alone, Srpt(Knobs(adaptive_parallelism=1.0)), quiet(8)), 0) == 8
    # Three queries at t=0: a cap of ceil(8 / 3) = 3 each, where plain SRPT gives all 8 to one.
    three = [query(k, pipeline(0, 16.0 + k, 16)) for k in range(3)]
    adaptive = run(three, Srpt(Knobs(adaptive_parallelism=1.0)), quiet(8))
    assert [threads_at_start(adaptive, k) for k in range(3)] == [3, 3, 2]
    plain = run(three, Srpt(), quiet(8))
    assert [threads_at_start(plain, k) for k in range(3)] == [8, 0, 0]
    # max_parallelism still bounds it; a factor of 2 doubles the share.
    capped = run(alone, Srpt(Knobs(max_parallelism=4, adaptive_parallelism=1.0)), quiet(8))
    assert threads_at_start(capped, 0) == 4
    doubled = run(three, Srpt(Knobs(adaptive_parallelism=2.0)), quiet(8))
    assert [threads_at_start(doubled, k) for k in range(3)] == [6, 2, 0]
    with pytest.raises(AgentOptionError, match="adaptive_parallelism"):
        Knobs(adaptive_parallelism=0)


def test_fair_splits_threads_evenly_between_two_queries() -> None:
    workload = [query(0, pipeline(0, 16.0, 16)), query(1, pipeline(0, 16.0, 16))]
    fair = run(workload, Fair(), quiet(8))
    assert [threads_at_start(fair, 0), threads_at_start(fair, 1)] == [4, 4]
    fifo = run(workload, Fifo(), quiet(8))
    assert [threads_at_start(fifo, 0), threads_at_start(fifo, 1)] == [8, 0]


def test_fair_hands_threads_beyond_a_share_out_unless_told_to_idle() -> None:
    workload = [query(0, pipeline(0, 1.0, 1)), query(1, pipeline(0, 16.0, 16))]
    conserving = run(workload, Fair(), quiet(8))
    assert threads_at_start(conserving, 1) == 7
    strict = run(workload, Fair(Knobs(work_conserving=False)), quiet(8))
    assert threads_at_start(strict, 1) == 4


@pytest.mark.parametrize(
    ("scheduler", "gold", "bronze"),
    [
        (WeightedFair(class_weights={"gold": 3.0, "bronze": 1.0}), 1.0, 1.0),
        (WeightedFair(), 3.0, 1.0),  # no class weights: the queries' priorities decide
    ],
)
def test_weighted_fair_splits_threads_by_weight(
    scheduler: WeightedFair, gold: float, bronze: float
) -> None:
    workload = [
        query(0, pipeline(0, 16.0, 16), query_class="bronze", priority=bronze),
        query(1, pipeline(0, 16.0, 16), query_class="gold", priority=gold),
    ]
    result = run(workload, scheduler, quiet(8))
    assert [threads_at_start(result, 0), threads_at_start(result, 1)] == [2, 6]


def test_critical_path_first_starts_the_deeper_pipeline() -> None:
    # 0 -> 3 and 1 -> 2 -> 3: pipeline 1 heads the longer path to the result.
    plan = query(
        0,
        pipeline(0, 8.0, 4),
        pipeline(1, 8.0, 4),
        pipeline(2, 8.0, 4, parents=(1,)),
        pipeline(3, 8.0, 4, parents=(0, 2)),
    )
    cpf = run([plan], CriticalPathFirst(), quiet(4))
    assert first_task_s(cpf, 0, 1) == 0.0
    assert first_task_s(cpf, 0, 0) > 0.0
    fifo = run([plan], Fifo(), quiet(4))
    assert first_task_s(fifo, 0, 0) == 0.0


def test_random_is_deterministic_per_seed() -> None:
    workload = stream(5, num_queries=25, load=1.5)

    def order(scheduler: Scheduler) -> list[tuple[int, int]]:
        result = run(workload, scheduler, STREAM_CLUSTER)
        tasks = result.tasks
        return list(zip(tasks.query_id.tolist(), tasks.pipeline.tolist(), strict=True))

    agent = RandomPick(np.random.default_rng(7))
    first = order(agent)
    assert order(agent) == first  # reset restores the stream
    assert order(RandomPick(np.random.default_rng(7))) == first
    assert order(RandomPick(np.random.default_rng(8))) != first


def test_fair_and_srpt_beat_fifo_on_mean_latency_under_high_load() -> None:
    workload = stream(11, num_queries=80, load=0.95)
    fifo = run(workload, Fifo(), STREAM_CLUSTER).mean_latency_s
    assert run(workload, Fair(), STREAM_CLUSTER).mean_latency_s < 0.8 * fifo
    assert run(workload, Srpt(), STREAM_CLUSTER).mean_latency_s < 0.8 * fifo


# ------------------------------------------------------------------------ tuned
def test_tuned_beats_its_families_defaults_on_training_seeds_and_never_sees_others() -> None:
    asked: list[int] = []

    def workload(seed: int) -> list[QuerySpec]:
        asked.append(seed)
        return stream(seed, num_queries=40)

    ctx = dataclasses.replace(context(), train_workload=workload, train_seeds=(21, 22))
    agent = make_agent("tuned", ctx, families=("fair", "srpt", "fifo"), seeds=2)
    assert isinstance(agent, Tuned)
    choice = agent.tune()
    assert set(asked) == {21, 22}
    assert {t.candidate.family for t in choice.trials} == {"fair", "srpt", "fifo"}
    for family in ("fair", "srpt", "fifo"):
        assert choice.score <= choice.default_score(family)
    # The score is what the chosen knobs really achieve on the training seeds.
    replayed = [
        simulate(
            stream(seed, 40), STREAM_CLUSTER, choice.best.build(), ctx.execution_rng_for(seed)
        ).mean_latency_s
        for seed in (21, 22)
    ]
    assert choice.score == pytest.approx(float(np.mean(replayed)))
    assert choice.best.family in agent.describe()

    evaluation = run(stream(99, num_queries=30), agent, STREAM_CLUSTER)
    assert len(evaluation.queries) == 30
    assert set(asked) == {21, 22} and len(asked) == 2  # tuned once, cached for the cluster
    again = make_agent("tuned", ctx, families=("fair", "srpt", "fifo"), seeds=2)
    assert isinstance(again, Tuned) and again.tune() == choice
    assert len(asked) == 2  # a fresh agent on the same context reuses the result


def test_tuned_searches_caps_and_class_weights() -> None:
    agent = make_agent("tuned", context(), seeds=1, max_queries=10)
    grid = [t.candidate for t in agent.tune().trials]
    threads = STREAM_CLUSTER.total_threads
    assert Candidate("fair") in grid and Candidate("fair", threads // 2) in grid
    weighted = [c for c in grid if c.class_weights]
    assert weighted and all(c.family == "weighted_fair" for c in weighted)
    weights = dict(weighted[0].class_weights)
    assert weights["short"] > weights["long"]  # small queries' class gets the larger weight


def test_tuned_tries_adaptive_caps_for_priority_rules() -> None:
    agent = make_agent(
        "tuned",
        context(),
        seeds=1,
        max_queries=10,
        adaptive_factors=[1.0],
        families=["srpt", "fair"],
    )
    grid = [t.candidate for t in agent.tune().trials]
    adaptive = [c for c in grid if c.adaptive_parallelism == 1.0]
    assert adaptive and {c.family for c in adaptive} == {"srpt"}
    assert Candidate("srpt", None, adaptive_parallelism=1.0) in grid
    assert "adaptive_parallelism=1" in adaptive[0].describe()
    with pytest.raises(AgentOptionError, match="adaptive_factors"):
        make_agent("tuned", context(), adaptive_factors=[-1])


def test_tuned_can_minimise_missed_deadlines_breaking_ties_by_latency() -> None:
    """`objective: missed_deadlines` picks the lowest share of late queries on the training
    seeds, the fastest among the candidates that share it; a workload without deadlines is a
    one-line error, not a search that scores every candidate 0."""

    def due(seed: int) -> list[QuerySpec]:  # half the queries must finish within 15 s
        return [
            dataclasses.replace(q, deadline_s=15.0) if i % 2 else q
            for i, q in enumerate(stream(seed, num_queries=40))
        ]

    ctx = dataclasses.replace(context(), train_workload=due)
    families = ("fair", "srpt", "fifo")
    choice = make_agent("tuned", ctx, families=families, seeds=2, objective="missed_deadlines")
    assert isinstance(choice, Tuned)
    tuned = choice.tune()
    assert tuned.objective == "missed_deadlines"
    assert tuned.score == min(t.score for t in tuned.trials) < max(t.score for t in tuned.trials)
    tied = [t for t in tuned.trials if t.score == tuned.score]
    assert tuned.best == min(tied, key=lambda t: t.mean_latency_s).candidate
    replayed = [
        simulate(due(seed), STREAM_CLUSTER, tuned.best.build(), ctx.execution_rng_for(seed))
        for seed in (101, 102)
    ]
    assert tuned.score == pytest.approx(float(np.mean([r.missed_deadlines for r in replayed])))
    by_latency = make_agent("tuned", ctx, families=families, seeds=2).tune()
    assert by_latency.best != tuned.best  # the objective changed the choice on this workload
    with pytest.raises(AgentOptionError, match="objective: missed_deadlines, and no query"):
        make_agent("tuned", context(), families=families, seeds=2, objective="missed_deadlines")


# ------------------------------------------------------------------------ registry
def test_unknown_agent_lists_the_known_names() -> None:
    with pytest.raises(UnknownAgentError, match=r"known agents: .*fifo.*wfair") as raised:
        make_agent("lifo", context())
    assert isinstance(raised.value, ValueError)


def test_unknown_option_names_the_agent_and_option() -> None:
    with pytest.raises(AgentOptionError, match="agent 'fair': unknown option 'max_paralelism'"):
        make_agent("fair", context(), max_paralelism=4)
    with pytest.raises(AgentOptionError, match="agent 'sjf': option max_parallelism"):
        make_agent("sjf", context(), max_parallelism=0)
    with pytest.raises(AgentOptionError, match=r"agent 'wfair': option class_weights\.gold"):
        make_agent("wfair", context(), class_weights={"gold": -1.0})
    with pytest.raises(AgentOptionError, match="agent 'tuned': option families"):
        make_agent("tuned", context(), families=("lifo",))


def test_options_set_knobs_and_registered_agents_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent("wfair", context(), max_parallelism=3, class_weights={"gold": 2.0})
    assert isinstance(agent, WeightedFair)
    assert agent.knobs.max_parallelism == 3 and agent.class_weights["gold"] == 2.0

    built: list[AgentContext] = []

    def factory(ctx: AgentContext) -> Scheduler:
        built.append(ctx)
        return Fifo()

    monkeypatch.setitem(AGENTS, "lsched-test", factory)
    assert isinstance(make_agent("lsched-test", context()), Fifo) and len(built) == 1


def test_tuned_needs_a_training_workload() -> None:
    with pytest.raises(AgentOptionError, match=r"context\.train_workload"):
        make_agent("tuned", dataclasses.replace(context(), train_workload=None))


def test_name_colon_path_passes_a_checkpoint_option() -> None:
    seen: dict[str, object] = {}

    def factory(context: AgentContext, **options: object) -> Fifo:
        seen.update(options)
        return Fifo()

    register("probe", factory)
    try:
        make_agent("probe:some/where.pt", context(), max_parallelism=4)
    finally:
        AGENTS.pop("probe")
    assert seen == {"max_parallelism": 4, "checkpoint": "some/where.pt"}


def test_a_policy_file_after_an_agent_that_takes_none_says_so() -> None:
    with pytest.raises(AgentOptionError, match=r"'fair:x': NAME:PATH names a policy file"):
        make_agent("fair:x", context())
