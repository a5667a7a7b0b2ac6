"""The scheduler contract, measured: `sim.checker.check_scheduler` over every registered agent
(and the query-level forms), plus the checker catching each kind of violation it names."""

from __future__ import annotations

import pytest

import agents.learned  # noqa: F401 - registers the learned agent, so it is checked too
from agents.query_level import QUERY_FORMS
from agents.registry import AGENTS, make_agent
from lsched.runner import agent_context
from lsched.scenario import load_scenario
from sim.checker import CheckSettings, ContractViolation, check_scheduler
from sim.interface import WAIT, Decision, Observation
from sim.model import ClusterConfig

SCENARIO = load_scenario("tpch-streaming").with_overrides({"workload.queries": 10})
"""Where agents that tune or train get their training workload (kept small)."""
LIGHT = CheckSettings(workloads=1, queries=6)
"""For the learned agent, whose forward passes dominate."""
OPTIONS = {"tuned": {"families": ["fair", "srpt"], "parallelism_fractions": [1.0], "seeds": 1}}
"""A small grid: tuning runs once per random cluster."""


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_registered_agent_keeps_the_contract(name: str) -> None:
    scheduler = make_agent(name, agent_context(SCENARIO), **OPTIONS.get(name, {}))
    check_scheduler(scheduler, name=name, settings=LIGHT if name == "lsched" else None)


@pytest.mark.parametrize("name", sorted(QUERY_FORMS))
def test_every_query_level_form_keeps_the_contract(name: str) -> None:
    scheduler = make_agent(name, agent_context(SCENARIO), decisions="query")
    check_scheduler(scheduler, name=f"{name} (decisions: query)")


class _Greedy:
    """Every free thread to the first schedulable pipeline: keeps the contract."""

    def reset(self, cluster: ClusterConfig) -> None:
        self.total = cluster.total_threads

    def decide(self, obs: Observation) -> Decision:
        pipeline = next(iter(obs.schedulable))
        return Decision(pipeline.ref, self.total)


class _Mutating(_Greedy):
    def decide(self, obs: Observation) -> Decision:
        next(iter(obs.schedulable)).limit = 99
        return super().decide(obs)


class _Idle(_Greedy):
    """Names a pipeline but never raises its limit above the threads it has."""

    def decide(self, obs: Observation) -> Decision:
        for pipeline in obs.schedulable:
            if pipeline.threads:
                return Decision(pipeline.ref, pipeline.threads)
        return Decision(next(iter(obs.schedulable)).ref, 1)


class _Forgetful(_Greedy):
    """Keeps a counter across runs: its second run of a workload differs."""

    runs = 0

    def reset(self, cluster: ClusterConfig) -> None:
        super().reset(cluster)
        self.runs += 1

    def decide(self, obs: Observation) -> Decision:
        pipelines = list(obs.schedulable)
        return Decision(pipelines[self.runs % len(pipelines)].ref, self.total)


class _OutOfRange(_Greedy):
    def decide(self, obs: Observation) -> Decision:
        return Decision(next(iter(obs.schedulable)).ref, 10**6)


class _AlwaysWaits(_Greedy):
    """Leaves every thread idle, so no query ever finishes."""

    def decide(self, obs: Observation) -> Decision:
        return WAIT


def test_a_scheduler_that_keeps_the_contract_passes() -> None:
    check_scheduler(_Greedy())


@pytest.mark.parametrize(
    ("scheduler", "rule"),
    [
        (_Mutating(), "changed the views"),
        (_Forgetful(), "after reset"),
        (_Idle(), "bound no thread"),
        (_OutOfRange(), "not an integer in 1.."),
        (_AlwaysWaits(), "left the whole cluster idle"),
        (object(), "has no reset"),
    ],
)
def test_the_checker_names_the_broken_rule(scheduler: object, rule: str) -> None:
    with pytest.raises(ContractViolation, match=rule):
        check_scheduler(scheduler)  # type: ignore[arg-type]


def test_the_operator_vocabulary_lives_in_sim_and_the_encoding_names_its_gap() -> None:
    """Every bundled breaker is in sim's vocabulary; the policy's encoding has a slot for each
    one but UNENCODED_OPERATORS (until the next feature schema)."""
    from agents.features import OPERATORS as ENCODED
    from agents.features import UNENCODED_OPERATORS
    from lsched.workloads.templates import load_library
    from sim.operators import OPERATORS

    used = [p.operator for t in load_library().values() for p in t.pipelines]
    assert set(used) <= OPERATORS
    assert OPERATORS - set(ENCODED) == UNENCODED_OPERATORS
    assert {op for op in used if op not in ENCODED} <= UNENCODED_OPERATORS
    share = sum(op in UNENCODED_OPERATORS for op in used) / len(used)
    assert 0 < share < 0.15  # 11% of bundled pipelines encode as "other" today
