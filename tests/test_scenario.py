"""Scenario files: the bundled set, one-line errors naming file and field, seeds and overrides."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from lsched.errors import ScenarioError
from lsched.scenario import (
    TRAIN_SEED_OFFSET,
    AgentChoice,
    EnvLimits,
    Scenario,
    bundled_scenarios,
    load_scenario,
)

REQUIRED = (
    "tpch-batch",
    "tpch-streaming",
    "ssb-dashboards",
    "tpcds-mixed",
    "diurnal-mixed",
    "etl-burst",
    "skewed-estimates",
    "faulty-cluster",
)

SMALL = """\
name: small
description: A tiny TPC-H stream for tests.
cluster: {nodes: 2, threads_per_node: 4, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 20
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.2}
      mix: "tpch-*"
      work_multiplier: 50
agents: [fifo, {name: fair, max_parallelism: 4}]
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture()
def small(tmp_path: Path) -> Scenario:
    return load_scenario(write(tmp_path, SMALL))


def test_the_bundled_set_has_the_scenarios_users_recognise() -> None:
    bundled = bundled_scenarios()
    assert set(REQUIRED) <= set(bundled)
    for name, path in bundled.items():
        scenario = load_scenario(name)
        assert scenario.name == name == path.stem
        assert scenario.description and "\n" not in scenario.description
        assert scenario.agents


def test_the_default_scenario_is_loaded_and_heavy_enough_to_matter() -> None:
    scenario = load_scenario("tpch-streaming")
    queries = scenario.queries(0)
    span_s = max(q.arrival_s for q in queries) - min(q.arrival_s for q in queries)
    offered = sum(q.work_s for q in queries) / (span_s * scenario.cluster.total_threads)
    assert 0.5 <= offered <= 1.0


def test_sections_become_the_simulator_and_env_settings(small: Scenario) -> None:
    assert small.cluster.nodes == 2 and small.cluster.total_threads == 8
    assert small.cluster.moving_delay_s == 0.5
    assert not small.cluster.faults.enabled
    assert small.env == EnvLimits()
    assert small.agents == (AgentChoice("fifo"), AgentChoice("fair", {"max_parallelism": 4}))
    assert small.agents[1].label == "fair[max_parallelism=4]"
    assert small.agent("fair").options == {"max_parallelism": 4}
    assert small.agent("srpt") == AgentChoice("srpt")


def test_faults_oracle_and_env_limits_are_read(tmp_path: Path) -> None:
    text = SMALL + (
        "simulation: {faults: {mean_time_between_failures_s: 300, repair_time_s: 30}, "
        "oracle: true}\nenv: {max_queries: 16, parallelism_levels: 4}\n"
    )
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.cluster.faults.enabled
    assert scenario.cluster.faults.repair_time_s == 30
    assert scenario.oracle
    assert scenario.env == EnvLimits(
        max_queries=16, max_pipelines_per_query=None, parallelism_levels=4
    )


def test_a_seed_gives_the_same_queries_every_time_and_seeds_differ(small: Scenario) -> None:
    first, again, other = small.queries(3), small.queries(3), small.queries(4)
    assert first == again
    assert [q.arrival_s for q in first] != [q.arrival_s for q in other]


def test_execution_noise_is_a_stream_separate_from_the_workload(small: Scenario) -> None:
    assert small.execution_rng(5).random() == small.execution_rng(5).random()
    assert small.execution_rng(5).random() != small.workload_rng(5).random()
    assert small.execution_rng(5).random() != small.execution_rng(6).random()
    with pytest.raises(ValueError, match="non-negative"):
        small.queries(-1)


def test_training_seeds_never_meet_evaluation_seeds(small: Scenario) -> None:
    train = small.train_seeds(8)
    assert min(train) >= TRAIN_SEED_OFFSET == small.train_seed_offset
    assert len(set(train)) == 8


def test_overrides_revalidate_a_copy(small: Scenario) -> None:
    bigger = small.with_overrides({"cluster.nodes": 4, "workload.queries": 7})
    assert bigger.cluster.total_threads == 16 and len(bigger.queries(0)) == 7
    assert small.cluster.nodes == 2 and len(small.queries(0)) == 20
    rate = bigger.with_overrides({"workload.streams.0.arrivals.rate_per_s": 2.0})
    assert rate.queries(0)[-1].arrival_s < bigger.queries(0)[-1].arrival_s
    with pytest.raises(
        ScenarioError, match=r"\(with overrides\): cluster\.nodez: unknown key .*'nodes'"
    ):
        small.with_overrides({"cluster.nodez": 4})
    with pytest.raises(ScenarioError, match=r"cluster\.nodes: .*greater than or equal to 1"):
        small.with_overrides({"cluster.nodes": 0})
    with pytest.raises(ScenarioError, match=r"workload\.queries: .*valid integer \(got '7'\)"):
        small.with_overrides({"workload.queries": "7"})  # no silent string-to-number
    with pytest.raises(ScenarioError, match=r"workload\.streams\.5: no such list item"):
        small.with_overrides({"workload.streams.5.priority": 2})
    with pytest.raises(ScenarioError, match=r"streams\.adhoc: .*go by index: 0 to 0\)"):
        small.with_overrides({"workload.streams.adhoc.priority": 2})  # by index, not by name
    for path in ("agents.0.name", "agents.0.x.y"):  # agents.0 is a bare name: no section
        with pytest.raises(ScenarioError, match=r"agents\.0: is not a section"):
            small.with_overrides({path: "srpt"})


def test_a_scenario_pickles_for_worker_processes_without_its_built_agents(
    small: Scenario,
) -> None:
    small.agent_cache["fifo"] = object()
    copy = pickle.loads(pickle.dumps(small))
    assert copy.queries(1) == small.queries(1)
    assert copy.agent_cache == {} and "fifo" in small.agent_cache


BROKEN = {
    "wrong type": (
        SMALL.replace("nodes: 2", "nodes: two"),
        r"cluster\.nodes: Input should be a valid integer.*\(got 'two'\)",
    ),
    "unknown key": (
        SMALL.replace("warmup_s", "warm_up_s"),
        r"cluster\.warm_up_s: unknown key \(did you mean 'warmup_s'\?",
    ),
    "negative rate": (
        SMALL.replace("rate_per_s: 0.2", "rate_per_s: -0.2"),
        r"workload\.streams\[0\]\.arrivals\.rate_per_s: Input should be greater than 0",
    ),
    "missing template": (
        SMALL.replace('"tpch-*"', "tpch-q23"),
        r"workload\.streams\[0\]\.mix\[0\]\.templates\[0\]: pattern 'tpch-q23' matches no",
    ),
    "bad YAML": (SMALL.replace("cluster: {", "cluster: {{"), r"line \d+, column \d+: invalid YAML"),
    "missing section": (SMALL.split("workload:")[0], r": workload: required key is missing"),
    "not a mapping": ("- just\n- a list\n", r": expected a mapping of sections, got a list"),
    "bad agent item": (
        SMALL.replace("agents: [fifo,", "agents: [3,"),
        r"agents\[0\]: expected an agent name",
    ),
    "empty file": ("", r": expected a mapping of sections, got an empty file"),
    "nothing to run": (
        "name: x\nworkload: {queries: 3}\n",
        r"streams: set streams, a trace, or both$",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_file_is_one_line_naming_file_and_field(tmp_path: Path, case: str) -> None:
    text, pattern = BROKEN[case]
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert caught.value.source == str(path)
    assert re.search(pattern, message), message


def test_a_name_without_its_suffix_points_at_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, SMALL).rename(tmp_path / "mine.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError, match=r"^mine: no such file .*; did you mean mine\.yaml\?$"):
        load_scenario("mine")


def test_a_missing_file_or_unknown_name_says_so(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such file$"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(
        ScenarioError, match=r"^tpch-streeming: no such file or bundled .*tpch-streaming"
    ):
        load_scenario("tpch-streeming")


def test_relative_template_files_resolve_next_to_the_scenario(tmp_path: Path) -> None:
    text = SMALL.replace("  queries: 20\n", "  queries: 20\n  template_files: [mine.json]\n")
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(f"{path}: workload.template_files: ")
    assert str(tmp_path / "mine.json") in str(caught.value)


def test_every_bundled_scenario_generates_a_sane_workload() -> None:
    for name in bundled_scenarios():
        scenario = load_scenario(name)
        queries = scenario.queries(0)
        assert 50 <= len(queries) <= 2000, name
        assert all(np.isfinite(q.work_s) and q.work_s > 0 for q in queries), name
        assert sum(q.num_tasks for q in queries) < 200_000, name


def test_a_scenario_error_survives_pickling_across_processes() -> None:
    from lsched.errors import ScenarioError

    error = ScenarioError("a.yaml", "cluster.nodes", "must be >= 1")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ScenarioError
    assert str(copy) == str(error) == "a.yaml: cluster.nodes: must be >= 1"
