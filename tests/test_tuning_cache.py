"""`tuned`'s choices kept on disk: a second command reuses the search, with identical results,
and anything the search reads, changed, searches again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agents.tuned
from agents.tuned import Tuned, TunedChoice
from lsched.runner import build_agent, run_scenario
from lsched.scenario import load_scenario
from lsched.tuning_cache import CACHE_ENV, scenario_store

SCENARIO = """\
name: cached
cluster: {nodes: 1, threads_per_node: 4, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 20
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.3}
      mix: "tpch-*"
      work_multiplier: 60
agents:
  - {name: tuned, families: [fifo, srpt, fair], seeds: 2}
"""
TUNED = "tuned[families=['fifo', 'srpt', 'fair'],seeds=2]"


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """The cache in a folder of this test's; the process-wide memo emptied; each search
    recorded."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(agents.tuned, "_SHARED_CHOICES", {})
    done: list[object] = []
    search = Tuned._search

    def counted(self: Tuned, cluster: object) -> TunedChoice:
        done.append(cluster)
        return search(self, cluster)

    monkeypatch.setattr(Tuned, "_search", counted)
    return done


def fresh_run(path: Path) -> dict:
    """A new process's view: a freshly loaded scenario and no memo."""
    agents.tuned._SHARED_CHOICES.clear()
    report = run_scenario(load_scenario(path), None, seeds=2)
    return report.to_document()


def test_a_second_command_reuses_the_search_with_identical_results(
    searches: list[object], tmp_path: Path
) -> None:
    path = tmp_path / "cached.yaml"
    path.write_text(SCENARIO)
    first = fresh_run(path)
    assert len(searches) == 1
    assert len(list((tmp_path / "cache" / "tuned").glob("*.json"))) == 1
    again = fresh_run(path)
    assert len(searches) == 1  # read back, not searched
    assert json.dumps(again) == json.dumps(first)  # byte-identical results


def test_what_the_search_reads_changed_searches_again(
    searches: list[object], tmp_path: Path
) -> None:
    path = tmp_path / "cached.yaml"
    path.write_text(SCENARIO)
    fresh_run(path)
    path.write_text(SCENARIO.replace("rate_per_s: 0.3", "rate_per_s: 0.4"))  # the workload
    fresh_run(path)
    path.write_text(SCENARIO.replace("seeds: 2}", "seeds: 2, max_queries: 10}"))  # its options
    fresh_run(path)
    path.write_text(SCENARIO.replace("name: cached\n", "name: cached\ndescription: x\n"))
    fresh_run(path)  # a described scenario is another document: searched, not wrong
    assert len(searches) == 4
    path.write_text(SCENARIO.replace("agents:\n", "agents:\n  - fifo\n"))
    fresh_run(path)  # the agents listed beside it are not read by the search
    assert len(searches) == 4


def test_an_unreadable_entry_is_searched_again_and_replaced(
    searches: list[object], tmp_path: Path
) -> None:
    path = tmp_path / "cached.yaml"
    path.write_text(SCENARIO)
    first = fresh_run(path)
    (entry,) = (tmp_path / "cache" / "tuned").glob("*.json")
    for broken in ("{not json", '{"best": {"family": "lifo"}}', "[]"):
        entry.write_text(broken)
        assert fresh_run(path) == first
    assert len(searches) == 4
    assert TunedChoice.from_document(json.loads(entry.read_text()))  # rewritten whole


def test_off_keeps_nothing_and_an_unwritable_folder_only_costs_the_search(
    searches: list[object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cached.yaml"
    path.write_text(SCENARIO)
    monkeypatch.setenv(CACHE_ENV, "off")
    assert scenario_store(load_scenario(path)) is None
    fresh_run(path)
    fresh_run(path)
    assert len(searches) == 2 and not (tmp_path / "cache").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # under a file: cannot be made
    fresh_run(path)
    assert len(searches) == 3


def test_a_choice_survives_its_document(tmp_path: Path) -> None:
    path = tmp_path / "cached.yaml"
    path.write_text(SCENARIO.replace("families: [fifo, srpt, fair]", "objective: p95_latency_s"))
    scenario = load_scenario(path)
    agent = build_agent(scenario, scenario.agents[0])
    assert isinstance(agent, Tuned)
    choice = agent.tune()
    assert len(choice.trials) > 10  # weighted_fair's class weights and the adaptive caps too
    assert TunedChoice.from_document(json.loads(json.dumps(choice.to_document()))) == choice
