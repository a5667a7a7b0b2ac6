"""The learned scheduler: policy shapes and masking, message passing, the agent, checkpoints."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sim_helpers import QUIET, chain_query

from agents.context import AgentContext, AgentError
from agents.features import FEATURE_SCHEMA_VERSION, OPERATORS, PIPELINE_FEATURES
from agents.heuristics import Fifo, Knobs
from agents.learned.agent import (
    LearnedScheduler,
    ObservationLimits,
    PolicyOptions,
    Step,
    feature_sizes,
)
from agents.learned.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
    save_checkpoint,
)
from agents.learned.factory import lsched_agent
from agents.learned.policy import (
    WAIT_ACTION,
    Policy,
    PolicyBatch,
    PolicyConfig,
    collate,
    limit_for_level,
)
from sim import ClusterConfig, PipelineSpec, QuerySpec, Simulation, simulate

CLUSTER = ClusterConfig(nodes=2, threads_per_node=4, **QUIET)


def make_policy(seed: int = 0, **sizes: int) -> Policy:
    torch.manual_seed(seed)
    widths = feature_sizes()
    return Policy(PolicyConfig(widths.pipeline, widths.query, widths.global_, **sizes))


def diamond_query(query_id: int, arrival_s: float = 0.0) -> QuerySpec:
    """Two scans (0, 1) feeding a join (2) feeding the result (3)."""
    pipelines = (
        PipelineSpec(0, (), 4, 8.0, 8.0),
        PipelineSpec(1, (), 2, 2.0, 3.0),
        PipelineSpec(2, (0, 1), 3, 3.0, 2.0),
        PipelineSpec(3, (2,), 1, 1.0, 1.0),
    )
    return QuerySpec(query_id, f"t{query_id % 3}", "adhoc", arrival_s, pipelines)


def workload(count: int = 12) -> list[QuerySpec]:
    queries: list[QuerySpec] = []
    for k in range(count):
        if k % 2:
            queries.append(diamond_query(k, arrival_s=1.5 * k))
        else:
            queries.append(chain_query(k, [2.0, 4.0, 1.0], tasks=3, arrival_s=1.5 * k))
    return queries


def first_step(policy: Policy, queries: list[QuerySpec]):
    scheduler = LearnedScheduler(policy, ObservationLimits(max_queries=32))
    simulation = Simulation(queries, CLUSTER, np.random.default_rng(0))
    scheduler.reset(CLUSTER)
    observation = simulation.advance()
    assert observation is not None
    return scheduler, simulation, observation


def test_forward_shapes_and_masked_pipelines_never_chosen() -> None:
    policy = make_policy()
    queries = [diamond_query(k) for k in range(3)]
    scheduler, _, observation = first_step(policy, queries)
    step, _, _ = scheduler.observe(observation)
    batch = step.to_batch()
    logits, wait, node, query, glob = policy(batch)
    assert logits.shape == (12,) and node.shape == (12, policy.config.embed)
    # Nothing runs yet, so waiting is not allowed: no event would ever wake the scheduler.
    assert not step.wait_ok and torch.isneginf(wait).all()
    assert query.shape == (3, policy.config.embed) and glob.shape == (1, policy.config.embed)
    # Only the two scans of each query are ready at t=0.
    assert step.candidate.tolist() == [True, True, False, False] * 3
    assert torch.isneginf(logits[~batch.candidate]).all()
    chosen = {policy.act(batch, (u, 0.5))[0] for u in np.linspace(0.0, 0.999999, 400)}
    assert chosen <= set(np.flatnonzero(step.candidate).tolist())
    assert len(chosen) == 6  # every candidate is reachable by sampling
    # Limit levels at or below a pipeline's current threads are masked too.
    masked = batch._replace(min_level=torch.full_like(batch.min_level, 5))
    limit = policy.limit_logits(masked, torch.tensor([0]), node, query, glob)
    assert torch.isneginf(limit[0, :5]).all() and torch.isfinite(limit[0, 5:]).all()
    levels = {policy.act(masked, (0.3, u))[1] for u in np.linspace(0.0, 0.999999, 100)}
    assert levels <= {5, 6, 7, 8, 9}


def _two_query_batch(child_value: float = 0.0, parent_value: float = 0.0) -> PolicyBatch:
    """Query 0: pipeline 1 consumes pipeline 0. Query 1: pipeline 3 consumes pipeline 2."""
    sizes = feature_sizes()
    x = torch.zeros(4, sizes.pipeline)
    x[:, 0] = 0.5
    x[1, 1] = child_value
    x[0, 1] = parent_value
    return PolicyBatch(
        pipeline_x=x,
        query_x=torch.zeros(2, sizes.query),
        global_x=torch.zeros(1, sizes.global_),
        pipeline_query=torch.tensor([0, 0, 1, 1]),
        query_graph=torch.tensor([0, 0]),
        edge_child=torch.tensor([1, 3]),
        edge_parent=torch.tensor([0, 2]),
        candidate=torch.tensor([True, False, True, False]),
        min_level=torch.zeros(4, dtype=torch.int64),
        wait_ok=torch.tensor([False]),
    )


def test_message_passing_flows_from_children_to_parents_within_a_query() -> None:
    policy = make_policy(rounds=3)
    with torch.no_grad():
        base, _, _ = policy.embed(_two_query_batch())
        child_changed, _, _ = policy.embed(_two_query_batch(child_value=3.0))
        parent_changed, _, _ = policy.embed(_two_query_batch(parent_value=3.0))
    # A change in a consumer reaches the pipeline it depends on ...
    assert not torch.allclose(child_changed[0], base[0])
    # ... but not the other query's pipelines, nor (upstream) from parent to child.
    assert torch.equal(child_changed[2:], base[2:])
    assert torch.equal(parent_changed[1], base[1])


def test_agent_completes_a_workload_and_every_decision_binds_a_thread() -> None:
    policy = make_policy()
    for rng in (None, np.random.default_rng(3)):
        scheduler = LearnedScheduler(policy, ObservationLimits(max_queries=32), rng=rng)
        simulation = Simulation(workload(), CLUSTER, np.random.default_rng(1))
        scheduler.reset(CLUSTER)
        observation = simulation.advance()
        decisions = 0
        while observation is not None:
            decision = scheduler.decide(observation)
            if decision.pipeline is None:  # WAIT only while some task runs
                assert observation.free_threads < CLUSTER.total_threads
                simulation.apply(decision)
            else:
                assert 1 <= decision.limit <= CLUSTER.total_threads
                assert simulation.apply(decision) > 0
            decisions += 1
            observation = simulation.advance()
        result = simulation.result()
        assert len(result.queries) == 12 and decisions == result.decisions
    # Through sim.simulate, greedy runs repeat exactly.
    again = [
        simulate(workload(), CLUSTER, LearnedScheduler(policy), np.random.default_rng(1))
        for _ in range(2)
    ]
    assert again[0].mean_latency_s == again[1].mean_latency_s


def test_limit_levels_cover_one_to_all_threads() -> None:
    assert [limit_for_level(k, 10, 32) for k in range(10)] == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert [limit_for_level(k, 8, 32) for k in range(8)] == [1, 4, 6, 8, 12, 16, 24, 32]
    assert [limit_for_level(k, 10, 4) for k in range(10)] == [1, 1, 1, 1, 1, 1, 2, 2, 3, 4]


def test_collated_log_probs_match_single_steps() -> None:
    policy = make_policy()
    scheduler, simulation, observation = first_step(policy, workload(6))
    steps, actions = [], []
    for turn in range(6):
        step, _, _ = scheduler.observe(observation)
        chosen, level = policy.act(step.to_batch(), (0.4, 0.6))
        if turn == 5:  # a recorded WAIT mixes with pipeline choices in one batch
            assert step.wait_ok
            chosen, level = WAIT_ACTION, 0
        steps.append(step)
        actions.append((chosen, level))
        simulation.apply(scheduler.decide(observation))
        observation = simulation.advance()
        assert observation is not None
    batch, chosen, levels, graph = collate(steps, actions)
    together, entropy = policy.log_probs(batch, chosen, levels, graph)
    for k, (step, action) in enumerate(zip(steps, actions, strict=True)):
        one = collate([step], [action])
        alone, alone_entropy = policy.log_probs(*one)
        assert torch.allclose(together[k], alone[0], atol=1e-5)
        assert torch.allclose(entropy[k], alone_entropy[0], atol=1e-5)
    assert torch.isfinite(together).all() and (entropy >= 0).all()


# ------------------------------------------------------------------------- checkpoints
def _info(policy: Policy, version: int = FEATURE_SCHEMA_VERSION) -> CheckpointInfo:
    return CheckpointInfo(
        feature_schema_version=version,
        policy_config=policy.config,
        observation_limits=ObservationLimits().to_dict(),
        scenarios=("tiny",),
        iterations=3,
        git_revision=None,
    )


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    policy = make_policy(seed=5)
    path = save_checkpoint(tmp_path / "p.pt", policy, _info(policy))
    raw = torch.load(path, weights_only=True)  # plain tensors and types only
    assert raw["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    loaded, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION)
    assert info.policy_config == policy.config and info.scenarios == ("tiny",)
    for name, value in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    policy = make_policy()
    good = save_checkpoint(tmp_path / "good.pt", policy, _info(policy)).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    corrupt = tmp_path / "corrupt.pt"
    flipped = bytearray(good)
    flipped[len(flipped) // 3 : len(flipped) // 3 + 64] = b"\x00" * 64
    corrupt.write_bytes(bytes(flipped))
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(3)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    mismatched = save_checkpoint(
        tmp_path / "old.pt", policy, _info(policy, version=FEATURE_SCHEMA_VERSION + 7)
    )
    pickled = tmp_path / "pickled.pt"
    buffer = io.BytesIO()
    torch.save({"format": "lsched-policy", "hook": ObservationLimits()}, buffer)
    pickled.write_bytes(buffer.getvalue())
    return {
        "truncated": (truncated, "truncated or corrupt"),
        "corrupt": (corrupt, "corrupt"),
        "foreign": (foreign, "not an lsched policy checkpoint"),
        "text": (text, "not an lsched policy checkpoint"),
        "mismatched": (mismatched, "feature_schema_version"),
        "pickled": (pickled, "weights_only"),
        "missing": (tmp_path / "absent.pt", "no such checkpoint file"),
    }


@pytest.mark.parametrize(
    "kind", ["truncated", "corrupt", "foreign", "text", "mismatched", "pickled", "missing"]
)
def test_bad_checkpoints_give_one_line_errors_naming_the_file(tmp_path: Path, kind: str) -> None:
    path, problem = _bad_files(tmp_path)[kind]
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, FEATURE_SCHEMA_VERSION)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message


def test_weights_that_do_not_match_the_config_are_refused(tmp_path: Path) -> None:
    policy = make_policy()
    path = save_checkpoint(tmp_path / "p.pt", policy, _info(policy))
    document = torch.load(path, weights_only=True)
    document["policy_config"]["hidden"] = 7
    torch.save(document, path)
    with pytest.raises(CheckpointError, match="state_dict: weights do not match"):
        load_checkpoint(path, FEATURE_SCHEMA_VERSION)


def test_lsched_agent_loads_a_checkpoint_path(tmp_path: Path) -> None:
    policy = make_policy(seed=9)
    path = save_checkpoint(tmp_path / "mine.pt", policy, _info(policy))
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    scheduler = lsched_agent(context, checkpoint=path)
    assert torch.equal(
        scheduler.policy.state_dict()["pipeline_in.0.weight"],
        policy.state_dict()["pipeline_in.0.weight"],
    )
    result = simulate(workload(6), CLUSTER, scheduler, np.random.default_rng(0))
    assert len(result.queries) == 6
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        lsched_agent(context, checkpoint=tmp_path / "nope.pt")


def test_the_registry_builds_lsched_with_a_checkpoint_option(tmp_path: Path) -> None:
    from agents import make_agent

    policy = make_policy(seed=4)
    path = save_checkpoint(tmp_path / "mine.pt", policy, _info(policy))
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    scheduler = make_agent("lsched", context, checkpoint=str(path))
    assert isinstance(scheduler, LearnedScheduler)
    assert scheduler.rng is None  # greedy unless asked to sample
    assert make_agent("lsched", context, checkpoint=str(path), sample=True).rng is not None


# ------------------------------------------------------------------------- the guide
def test_guide_proposal_is_an_input_and_its_waits_show_globally() -> None:
    policy = make_policy()
    guide = Fifo(Knobs(max_parallelism=2))
    scheduler = LearnedScheduler(policy, ObservationLimits(max_queries=32), guide=guide)
    simulation = Simulation(workload(6), CLUSTER, np.random.default_rng(1))
    scheduler.reset(CLUSTER)
    reference = Fifo(Knobs(max_parallelism=2))
    reference.reset(CLUSTER)
    pick = len(PIPELINE_FEATURES) + len(OPERATORS)  # the guide's columns follow the one-hot
    seen_wait = seen_pick = False
    observation = simulation.advance()
    while observation is not None:
        step, rows, cols = scheduler.observe(observation)
        proposal = reference.decide(observation)
        assert scheduler.guide_decision == proposal
        marked = np.flatnonzero(step.pipeline_x[:, pick])
        if proposal.pipeline is None:
            assert len(marked) == 0 and step.global_x[-1] == 1.0
            seen_wait = True
        else:
            (node,) = marked
            assert scheduler._state.query_ids[rows[node]] == proposal.pipeline[0]
            assert cols[node] == proposal.pipeline[1] and step.global_x[-1] == 0.0
            level = scheduler.action_of(proposal, rows, cols)[1]
            assert step.pipeline_x[node, pick + 1] == pytest.approx(
                level / (policy.config.limit_levels - 1)
            )
            seen_pick = True
        simulation.apply(proposal)  # follow the guide: it caps at 2 threads, so it waits
        observation = simulation.advance()
    assert seen_wait and seen_pick


def test_checkpoint_names_its_guide_and_the_agent_builds_it(tmp_path: Path) -> None:
    policy = make_policy()
    info = _info(policy)
    path = save_checkpoint(
        tmp_path / "guided.pt",
        policy,
        replace(info, extra={**info.extra, "guide": "fifo"}),
    )
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    agent = lsched_agent(context, checkpoint=path)
    assert isinstance(agent.guide, Fifo)
    result = simulate(workload(), CLUSTER, agent, np.random.default_rng(1))
    assert len(result.queries) == 12


def test_a_checkpoint_with_an_unknown_guide_is_a_clear_error(tmp_path: Path) -> None:
    policy = make_policy()
    info = _info(policy)
    path = save_checkpoint(
        tmp_path / "odd.pt", policy, replace(info, extra={**info.extra, "guide": "no-such"})
    )
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    with pytest.raises(AgentError, match=r"odd\.pt: guide: .*unknown agent 'no-such'"):
        lsched_agent(context, checkpoint=path)


def test_a_policy_for_older_inputs_asks_for_retraining_not_a_shape_mismatch(
    tmp_path: Path,
) -> None:
    widths = feature_sizes()
    older = Policy(PolicyConfig(widths.pipeline - 2, widths.query, widths.global_ - 1))
    info = replace(_info(older), extra={"input_version": 1})
    path = save_checkpoint(tmp_path / "v1.pt", older, info)
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    with pytest.raises(CheckpointError, match=r"v1\.pt: input_version: .*version 1.*retrain"):
        lsched_agent(context, checkpoint=path)


def test_the_shipped_policy_loads_and_schedules_a_scenario(tmp_path: Path) -> None:
    """`make demo` runs the shipped policy: a feature or checkpoint change that breaks it must
    fail the tests, not only the demo."""
    from lsched.runner import run_scenario
    from lsched.scenario import load_scenario

    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\n"
        "cluster: {nodes: 2, threads_per_node: 4, moving_delay_s: 0.5, warmup_s: 0.1}\n"
        "workload:\n  queries: 20\n  streams:\n    - name: adhoc\n"
        "      arrivals: {process: poisson, rate_per_s: 0.5}\n"
        "      mix: 'tpch-*'\n      work_multiplier: 60\n"
    )
    report = run_scenario(load_scenario(path), ["lsched", "fifo"], seeds=1)
    shipped = report.agents["lsched"]
    assert shipped.queries == 20
    assert 0 < shipped.mean_latency_s <= report.agents["fifo"].mean_latency_s * 1.5


# ------------------------------------------------------------- scalability and query log
def test_the_scalability_prior_is_an_input_per_operator_and_the_ablation_zeroes_it() -> None:
    from agents.learned.agent import PRIOR_PIPELINE_FEATURES, SERIAL_FRACTION_SCALE
    from agents.scalability import ScalabilityPrior

    prior = ScalabilityPrior((1.0,), {"hash_build": (0.15,), "*": (0.01,)})
    queries = [
        QuerySpec(
            0,
            "t0",
            "adhoc",
            0.0,
            (
                PipelineSpec(0, (), 4, 8.0, 8.0, 0.0, "hash_build"),
                PipelineSpec(1, (0,), 2, 2.0, 2.0),
            ),
        )
    ]
    column = -len(PRIOR_PIPELINE_FEATURES)
    seen = {}
    for switch in (True, False):
        scheduler = LearnedScheduler(
            make_policy(),
            ObservationLimits(max_queries=8),
            scalability=prior,
            options=PolicyOptions(scalability_features=switch),
        )
        scheduler.reset(CLUSTER)
        observation = Simulation(queries, CLUSTER, np.random.default_rng(0)).advance()
        step, _, cols = scheduler.observe(observation)
        seen[switch] = step.pipeline_x[np.argsort(cols), column]
    assert seen[True] == pytest.approx([0.15 * SERIAL_FRACTION_SCALE, 0.01 * SERIAL_FRACTION_SCALE])
    assert not seen[False].any()


def test_the_query_log_correction_is_learned_from_finished_queries() -> None:
    """A template whose finished instance used twice its estimated work shows a positive log
    correction on its next instance; the workload ablation keeps the optimizer's estimate."""
    from agents.learned.agent import PRIOR_QUERY_FEATURES
    from sim.interface import CompletedQuery

    queries = [chain_query(k, [2.0, 1.0], tasks=2, arrival_s=float(k)) for k in range(3)]
    simulation = Simulation(queries, CLUSTER, np.random.default_rng(0))
    observation = simulation.advance()
    for switch in (True, False):
        scheduler = LearnedScheduler(
            make_policy(),
            ObservationLimits(max_queries=8),
            options=PolicyOptions(workload_features=switch),
        )
        scheduler.reset(CLUSTER)
        view = next(iter(observation.queries))
        log = [CompletedQuery(99, view.template, "adhoc", view.scale_factor, 0.0, 1.0, 3.0, 6.0)]
        fake = _WithLog(observation, log)
        step, _, _ = scheduler.observe(fake)
        correction = step.query_x[0, -len(PRIOR_QUERY_FEATURES) + 1]
        # one instance, shrunk towards the coarser levels (RuntimePredictor): 7/8 of log 2
        expected = 0.875 * np.log(2.0) if switch else 0.0
        assert correction == pytest.approx(expected, abs=1e-6)


class _WithLog:
    """An observation whose query log is `log` (everything else from `obs`)."""

    def __init__(self, obs, log) -> None:
        self._obs, self.completed = obs, log

    def __getattr__(self, name):
        return getattr(self._obs, name)


# ------------------------------------------------------------------- query-level form
def test_the_query_level_form_starts_only_waiting_queries_within_the_free_threads() -> None:
    from agents.learned.query_level import LearnedQueryPolicy
    from sim.query_level import QueryLevel

    class Checked(LearnedQueryPolicy):
        def start(self, state):
            choice = super().start(state)
            if choice is not None:
                assert choice.query_id in {q.query_id for q in state.waiting}
                assert 1 <= choice.threads <= state.free_threads
                starts.append(choice)
            return choice

    starts: list = []
    scheduler = LearnedScheduler(make_policy(3), ObservationLimits(max_queries=32))
    guide = QueryLevel(__import__("agents.query_level", fromlist=["QuerySjf"]).QuerySjf())
    agent = QueryLevel(Checked(scheduler, guide))
    result = simulate(workload(), CLUSTER, agent, np.random.default_rng(1))
    assert len(result.queries) == 12 and len(starts) == 12


def test_lsched_takes_decisions_query_and_runs_its_query_level_form(tmp_path: Path) -> None:
    from sim.query_level import QueryLevel

    policy = make_policy()
    info = _info(policy)
    path = save_checkpoint(
        tmp_path / "guided.pt", policy, replace(info, extra={**info.extra, "guide": "sjf"})
    )
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    agent = lsched_agent(context, checkpoint=path, decisions="query")
    assert isinstance(agent, QueryLevel) and agent.policy.scheduler.guide is None
    result = simulate(workload(), CLUSTER, agent, np.random.default_rng(1))
    assert len(result.queries) == 12
    with pytest.raises(AgentError, match="option decisions: 'task'"):
        lsched_agent(context, checkpoint=path, decisions="task")


def test_a_guided_policy_waits_only_when_its_guide_does() -> None:
    """WAIT is offered only where the guide waits (a FIFO capped at 2 threads waits while
    threads are free); with the knob off it is offered whenever a task runs."""
    offered = {}
    for switch in (True, False):
        scheduler = LearnedScheduler(
            make_policy(),
            ObservationLimits(max_queries=32),
            guide=Fifo(Knobs(max_parallelism=2)),
            options=PolicyOptions(wait_only_with_guide=switch),
        )
        simulation = Simulation(workload(6), CLUSTER, np.random.default_rng(1))
        scheduler.reset(CLUSTER)
        seen = []
        observation = simulation.advance()
        while observation is not None:
            step, _, _ = scheduler.observe(observation)
            guide_waits = scheduler.guide_decision.pipeline is None
            seen.append((step.wait_ok, guide_waits))
            simulation.apply(scheduler.guide_decision)
            observation = simulation.advance()
        offered[switch] = seen
    assert all(guide_waits for ok, guide_waits in offered[True] if ok)
    assert any(ok and not guide_waits for ok, guide_waits in offered[False])


# ------------------------------------------------------------------- deviation margin
def _first_decision() -> tuple[Policy, Step, PolicyBatch, tuple[int, int]]:
    """(policy, step, its batch, the greedy action) at the first decision of three diamonds."""
    policy = make_policy(4)
    scheduler, _, observation = first_step(policy, [diamond_query(k) for k in range(3)])
    step, _, _ = scheduler.observe(observation)
    batch = step.to_batch()
    return policy, step, batch, policy.act(batch)


def test_act_near_keeps_the_anchor_unless_the_policy_prefers_its_action_by_the_margin() -> None:
    policy, step, batch, greedy = _first_decision()
    options = np.flatnonzero(step.candidate)
    anchor = (int(next(k for k in options if k != greedy[0])), 3)
    log_p, _ = policy.log_probs(
        batch,
        torch.tensor([greedy[0], anchor[0]]),
        torch.tensor([greedy[1], anchor[1]]),
        torch.zeros(len(step.candidate), dtype=torch.int64),
    )
    gap = float((log_p[0] - log_p[1]).detach())
    assert gap > 0  # the greedy action is the most likely one
    assert policy.act_near(batch, anchor, gap * 0.99) == greedy
    assert policy.act_near(batch, anchor, gap * 1.01) is None
    assert policy.act_near(batch, greedy, 0.0) is None  # agreeing: keep the anchor as it is
    # An anchor the masks forbid (WAIT before anything runs) never wins over the policy.
    assert policy.act_near(batch, (WAIT_ACTION, 0), 1e9) == greedy


def test_act_near_compares_decisions_so_levels_granting_the_same_threads_are_one() -> None:
    policy, step, batch, greedy = _first_decision()
    levels = policy.config.limit_levels
    other_level = (greedy[1] + 1) % levels
    one_limit = [1] * levels  # e.g. a 1-thread engine: every level is one thread
    assert policy.act_near(batch, (greedy[0], other_level), 1e-6) == greedy  # by index: differs
    assert policy.act_near(batch, (greedy[0], other_level), 1e-6, level_limits=one_limit) is None
    # Against another pipeline, every level of each is one decision: the gap is the pipeline
    # head's alone.
    other = int(next(k for k in np.flatnonzero(step.candidate) if k != greedy[0]))
    with torch.inference_mode():
        logits, wait, *_ = policy(batch)
        log_p = torch.log_softmax(torch.cat((logits, wait)), dim=0)
    gap = float(log_p[greedy[0]] - log_p[other])
    assert policy.act_near(batch, (other, 0), gap * 0.99, level_limits=one_limit) == greedy
    assert policy.act_near(batch, (other, 0), gap * 1.01, level_limits=one_limit) is None
    # At query level a query is one decision, whichever of its ready pipelines is offered.
    groups = list(range(len(step.candidate)))
    groups[other] = groups[greedy[0]]
    assert policy.act_near(batch, (other, greedy[1]), 1e-6, pipeline_groups=groups) is None
    assert policy.act_near(batch, (other, greedy[1]), 1e-6) == greedy


def _latencies(agent) -> list[float]:
    result = simulate(workload(), CLUSTER, agent, np.random.default_rng(1))
    return [q.latency_s for q in sorted(result.queries, key=lambda q: q.query_id)]


def test_a_huge_deviation_margin_runs_the_guide_itself_and_zero_does_not() -> None:
    guide = Fifo(Knobs(max_parallelism=3))
    runs = {
        margin: _latencies(
            LearnedScheduler(
                make_policy(2),
                ObservationLimits(max_queries=32),
                guide=Fifo(Knobs(max_parallelism=3)),
                options=PolicyOptions(deviation_margin=margin),
            )
        )
        for margin in (0.0, 1e9)
    }
    assert runs[1e9] == _latencies(guide)
    assert runs[0.0] != runs[1e9]


def test_the_query_level_form_with_a_huge_margin_starts_what_its_guide_starts() -> None:
    from agents.learned.query_level import LearnedQueryPolicy
    from agents.query_level import QuerySjf
    from sim.query_level import QueryLevel

    def learned(margin: float) -> QueryLevel:
        scheduler = LearnedScheduler(
            make_policy(3),
            ObservationLimits(max_queries=32),
            options=PolicyOptions(deviation_margin=margin),
        )
        return QueryLevel(LearnedQueryPolicy(scheduler, QueryLevel(QuerySjf())))

    assert _latencies(learned(1e9)) == _latencies(QueryLevel(QuerySjf()))
    assert _latencies(learned(0.0)) != _latencies(learned(1e9))


def test_the_deviation_margin_comes_from_the_checkpoint_or_the_option(tmp_path: Path) -> None:
    policy = make_policy()
    info = _info(policy)
    extra = {**info.extra, "guide": "sjf", "deviation_margin": 0.5}
    path = save_checkpoint(tmp_path / "gated.pt", policy, replace(info, extra=extra))
    context = AgentContext(CLUSTER, None, (), None, np.random.default_rng(0))
    assert lsched_agent(context, checkpoint=path).options.deviation_margin == 0.5
    agent = lsched_agent(context, checkpoint=path, deviation_margin=2)
    assert agent.options.deviation_margin == 2.0
    for bad in (-1.0, "high", True):
        with pytest.raises(AgentError, match="option deviation_margin: must be a number >= 0"):
            lsched_agent(context, checkpoint=path, deviation_margin=bad)


def test_the_cached_plans_are_the_queries_own_edges_and_operators_at_every_decision() -> None:
    """Plans are cached per query while queries come and go: at every decision of a workload
    with arrivals and finishes, the policy's pipelines, edges and operators are exactly those
    of the queries in the system, query by query and in plan order."""
    queries = workload(16)
    for k, query in enumerate(queries):  # distinct operators, so a misplaced row shows
        names = [OPERATORS[(k + p.index) % len(OPERATORS)] for p in query.pipelines]
        queries[k] = replace(
            query,
            pipelines=tuple(
                replace(p, operator=name) for p, name in zip(query.pipelines, names, strict=True)
            ),
        )
    specs = {q.query_id: q for q in queries}
    scheduler = LearnedScheduler(make_policy(), ObservationLimits(max_queries=32))
    simulation = Simulation(queries, CLUSTER, np.random.default_rng(2))
    scheduler.reset(CLUSTER)
    observation = simulation.advance()
    seen_sets = set()
    while observation is not None:
        step, rows, cols = scheduler.observe(observation)
        owners = scheduler.query_ids_of(rows)
        in_system = [view.query_id for view in observation.queries]
        seen_sets.add(tuple(in_system))
        expected = [(q, p.index) for q in in_system for p in specs[q].pipelines]
        assert list(zip(owners.tolist(), cols.tolist(), strict=True)) == expected
        assert (step.pipeline_query == rows).all()
        edges = {
            (int(owners[c]), int(cols[c]), int(cols[p]))
            for c, p in zip(step.edge_child, step.edge_parent, strict=True)
        }
        assert all(owners[step.edge_child] == owners[step.edge_parent])
        assert edges == {
            (q, p.index, parent)
            for q in in_system
            for p in specs[q].pipelines
            for parent in p.parents
        }
        onehot = step.pipeline_x[
            :, len(PIPELINE_FEATURES) : len(PIPELINE_FEATURES) + len(OPERATORS)
        ]
        names = [OPERATORS[i] for i in onehot.argmax(axis=1)]
        assert names == [specs[q].pipelines[c].operator for q, c in expected]
        simulation.apply(scheduler.decide(observation))
        observation = simulation.advance()
    assert len(seen_sets) > 10  # the set of queries changed many times


def test_a_forced_query_level_start_skips_the_forward_pass_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When one start is legal (one waiting query, one free thread, no WAIT), the query-level
    form returns it without asking the policy; the run is the same to the last digit."""
    from agents.learned.query_level import LearnedQueryPolicy
    from lsched.runner import simulate_one
    from lsched.scenario import AgentChoice, load_scenario

    scenario = load_scenario("duckdb-stream-90")
    scenario = replace(scenario, workload=replace(scenario.workload, queries=80))
    choice = AgentChoice("lsched", {"decisions": "query"})
    forced_calls, policy_calls = [], []
    original_forced, original_act = LearnedQueryPolicy._forced, LearnedScheduler.act

    def counting_forced(self, *args):
        start = original_forced(self, *args)
        forced_calls.append(start is not None)
        return start

    def counting_act(self, *args, **kwargs):
        policy_calls.append(1)
        return original_act(self, *args, **kwargs)

    monkeypatch.setattr(LearnedQueryPolicy, "_forced", counting_forced)
    monkeypatch.setattr(LearnedScheduler, "act", counting_act)
    fast = simulate_one(scenario, choice, 0)
    assert sum(forced_calls) > 0 and len(policy_calls) == len(forced_calls) - sum(forced_calls)
    monkeypatch.setattr(LearnedQueryPolicy, "_forced", lambda self, *args: None)
    slow = simulate_one(scenario, choice, 0)
    assert [q.finish_s for q in fast.queries] == [q.finish_s for q in slow.queries]
