"""The runner: same queries per seed for every agent, honest aggregation, baselines ordered."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from agents import UnknownAgentError
from lsched.errors import ScenarioError
from lsched.runner import (
    RunFigures,
    run_one,
    run_scenario,
    simulate_one,
    summarize,
)
from lsched.scenario import TRAIN_SEED_OFFSET, Scenario, bundled_scenarios, load_scenario

SMALL = """\
name: small
description: A tiny TPC-H stream for tests.
cluster: {nodes: 2, threads_per_node: 4, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 30
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.3}
      mix: "tpch-*"
      work_multiplier: 60
agents: [fifo, srpt, {name: fair, max_parallelism: 4}, random]
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SMALL)
    return load_scenario(path)


def without_wall(figures: RunFigures) -> RunFigures:
    return dataclasses.replace(figures, wall_s=0.0)


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_every_bundled_scenario_runs_a_seed_of_a_cheap_agent(name: str) -> None:
    scenario = load_scenario(name)
    result = simulate_one(scenario, "fifo", 0)
    assert len(result.queries) == len(scenario.queries(0))
    assert result.mean_latency_s >= result.lower_bound.mean_latency_s > 0
    assert 0 < result.utilization <= 1


def test_the_report_aggregates_per_seed_figures(small: Scenario) -> None:
    seen: list[tuple[int, int, str]] = []
    report = run_scenario(
        small,
        seeds=2,
        seed_start=5,
        progress=lambda done, total, run: seen.append((done, total, run.agent)),
    )
    labels = ["fifo", "srpt", "fair[max_parallelism=4]", "random"]
    assert report.seeds == (5, 6)
    assert list(report.agents) == labels
    assert [s[:2] for s in seen] == [(k, 8) for k in range(1, 9)]
    for label, summary in report.agents.items():
        runs = [r for r in report.runs if r.agent == label]
        assert [r.seed for r in runs] == [5, 6]
        assert summary.mean_latency_s == pytest.approx(np.mean([r.mean_latency_s for r in runs]))
        assert summary.mean_latency_std_s == pytest.approx(np.std([r.mean_latency_s for r in runs]))
        assert summary.p95_latency_s == pytest.approx(np.mean([r.p95_latency_s for r in runs]))
        assert summary.queries == 30
        assert summary.mean_latency_s >= report.lower_bound_mean_latency_s
    bounds = {r.seed: r.lower_bound_mean_latency_s for r in report.runs if r.agent == "fifo"}
    assert report.lower_bound_mean_latency_s == pytest.approx(np.mean(list(bounds.values())))
    document = report.to_document()
    assert document["seeds"] == [5, 6]
    assert set(document["agents"]["fifo"]) == {
        "mean_latency",
        "p50_latency",
        "p95_latency",
        "p99_latency",
        "mean_slowdown",
        "makespan",
        "utilization",
        "queries",
        "lost_tasks",
        "rerun_tasks",
        "missed_deadlines",
    }


def test_every_agent_is_compared_with_the_best_baseline_seed_by_seed(small: Scenario) -> None:
    report = run_scenario(small, ["fifo", "srpt", "random"], seeds=3)
    best = min(report.agents, key=lambda a: report.agents[a].mean_latency_s)
    assert report.best_baseline() == best
    by_seed = {(r.agent, r.seed): r.mean_latency_s for r in report.runs}
    for label, paired in report.paired("fifo").items():
        ratios = [by_seed[label, seed] / by_seed["fifo", seed] for seed in report.seeds]
        assert paired.baseline == "fifo"
        assert paired.ratio == pytest.approx(np.mean(ratios))
        # 95% Student-t half-width over 3 seeds: t(0.975, 2 df) = 4.303
        assert paired.ci95 == pytest.approx(4.303 * np.std(ratios, ddof=1) / np.sqrt(3))
    assert report.paired("fifo")["fifo"].ratio == 1.0
    assert report.paired("fifo")["fifo"].ci95 == 0.0
    document = report.to_document("srpt")
    assert document["paired"]["baseline"] == "srpt"
    assert all(a["ci95"] is not None for a in document["paired"]["agents"].values())
    # one seed gives a ratio and no interval: null in the document, none in the table
    single = run_scenario(small, ["fifo", "srpt"], seeds=1)
    assert not single.paired("fifo")["srpt"].has_interval
    assert single.to_document("fifo")["paired"]["agents"]["srpt"]["ci95"] is None
    assert document["paired"]["agents"]["fifo"]["ratio"] == report.paired("srpt")["fifo"].ratio
    assert report.to_document()["paired"]["baseline"] == best
    with pytest.raises(ValueError, match="'fair' is not one of the agents run"):
        report.paired("fair")


def test_a_learned_policy_is_never_the_best_baseline() -> None:
    runs = [
        RunFigures("s", agent, seed, 10, mean, mean, mean, mean, 1.0, 1.0, 1.0, 1.0, 1, 0, 0, 0)
        for seed in (0, 1)
        for agent, mean in (("fair", 2.0 + seed), ("lsched", 1.0 + seed), ("fifo", 3.0))
    ]
    report = summarize("s", runs, ["fair", "lsched", "fifo"])
    assert report.best_baseline() == "fair"
    assert report.paired()["lsched"].ratio == pytest.approx(np.mean([1 / 2, 2 / 3]))


def test_every_agent_of_a_seed_faces_the_same_queries_and_tasks(small: Scenario) -> None:
    fifo = simulate_one(small, "fifo", 2)
    srpt = simulate_one(small, "srpt", 2)
    assert [(q.query_id, q.template, q.arrival_s, q.isolated_s) for q in fifo.queries] == [
        (q.query_id, q.template, q.arrival_s, q.isolated_s) for q in srpt.queries
    ]
    assert fifo.lower_bound == srpt.lower_bound
    assert fifo.mean_latency_s != srpt.mean_latency_s


def test_one_run_is_picklable_and_independent_of_what_ran_before(small: Scenario) -> None:
    report = run_scenario(small, ["random", "fifo"], seeds=2)
    alone = run_one(small, "random", 1)
    assert without_wall(pickle.loads(pickle.dumps(alone))) == without_wall(
        next(r for r in report.runs if r.agent == "random" and r.seed == 1)
    )
    by_path = run_one(small.source, "fair", 0)
    assert by_path.agent == "fair[max_parallelism=4]"
    assert by_path.scenario == "small"


def test_summarize_does_not_care_where_or_in_which_order_runs_came(small: Scenario) -> None:
    runs = [run_one(small, agent, seed) for seed in (0, 1) for agent in ("fifo", "srpt")]
    forward = summarize("small", runs, ["fifo", "srpt"])
    backward = summarize("small", list(reversed(runs)), ["fifo", "srpt"])
    assert forward.to_document() == backward.to_document()
    with pytest.raises(ValueError, match="no runs of agent fair"):
        summarize("small", runs, ["fair"])


def test_bad_agents_and_seeds_fail_before_any_run(small: Scenario) -> None:
    calls: list[object] = []
    with pytest.raises(UnknownAgentError, match="unknown agent 'fifoo'"):
        run_scenario(small, ["fifo", "fifoo"], progress=lambda *a: calls.append(a))
    with pytest.raises(ValueError, match="--agents: fifo listed twice"):
        run_scenario(small, ["fifo", "fifo"])
    with pytest.raises(ValueError, match="below 1000000"):
        run_scenario(small, ["fifo"], seeds=2, seed_start=TRAIN_SEED_OFFSET - 1)
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        run_scenario(small, ["fifo"], seeds=0)
    assert not calls


def test_a_bad_option_in_the_file_names_the_file_and_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL.replace("max_parallelism: 4", "max_paralelism: 4"))
    with pytest.raises(ScenarioError, match=r"bad\.yaml: agents\[2\]: .*max_paralelism"):
        run_scenario(load_scenario(path), seeds=1)


def test_fair_and_srpt_beat_fifo_on_the_default_scenario() -> None:
    report = run_scenario(load_scenario("tpch-streaming"), ["fifo", "fair", "srpt"], seeds=3)
    fifo = report.agents["fifo"].mean_latency_s
    assert report.agents["fair"].mean_latency_s < 0.5 * fifo
    assert report.agents["srpt"].mean_latency_s < 0.5 * fifo
    for summary in report.agents.values():
        assert 0.7 <= summary.utilization <= 1.0


def test_run_scenario_takes_a_name_as_run_one_does() -> None:
    report = run_scenario("duckdb-batch", ["fifo"], seeds=1)
    assert report.scenario == "duckdb-batch" and list(report.agents) == ["fifo"]
