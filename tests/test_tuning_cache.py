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
from lsched.tuning_cache import CACHE_ENV, choice_store

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

    def counted(self: Tuned, cluster: object, *inputs: object) -> TunedChoice:
        done.append(cluster)
        return search(self, cluster, *inputs)

    monkeypatch.setattr(Tuned, "_search", counted)
    return done


def cached_file(tmp_path: Path, text: str = SCENARIO) -> Path:
    path = tmp_path / "cached.yaml"
    path.write_text(text)
    return path


def fresh_run(path: Path) -> dict:
    """A new process's view: a freshly loaded scenario and no memo."""
    agents.tuned._SHARED_CHOICES.clear()
    report = run_scenario(load_scenario(path), None, seeds=2)
    return report.to_document()


def test_a_second_command_reuses_the_search_with_identical_results(
    searches: list[object], tmp_path: Path
) -> None:
    path = cached_file(tmp_path)
    first = fresh_run(path)
    assert len(searches) == 1
    assert len(list((tmp_path / "cache" / "tuned").glob("*.json"))) == 1
    again = fresh_run(path)
    assert len(searches) == 1  # read back, not searched
    assert json.dumps(again) == json.dumps(first)  # byte-identical results


def test_what_the_search_reads_changed_searches_again(
    searches: list[object], tmp_path: Path
) -> None:
    path = cached_file(tmp_path)
    fresh_run(path)
    path.write_text(SCENARIO.replace("rate_per_s: 0.3", "rate_per_s: 0.4"))  # the workload
    fresh_run(path)
    path.write_text(SCENARIO.replace("seeds: 2}", "seeds: 2, max_queries: 10}"))  # its options
    fresh_run(path)
    assert len(searches) == 3
    path.write_text(SCENARIO.replace("name: cached\n", "name: cached\ndescription: x\n"))
    fresh_run(path)  # what the search does not read: a description, the agents beside it
    path.write_text(SCENARIO.replace("agents:\n", "agents:\n  - fifo\n"))
    fresh_run(path)
    assert len(searches) == 3


def test_a_template_file_or_object_changed_after_loading_is_searched_again(
    searches: list[object], tmp_path: Path
) -> None:
    """The key is the workload as drawn, not the files it came from: a scenario changed in
    Python (`dataclasses.replace`) and a template file edited since are new searches, and the
    file as it was finds its first entry again."""
    import dataclasses

    from lsched.workloads.templates import bundled_template_set, write_template_file

    mine = tmp_path / "mine.json"
    write_template_file(bundled_template_set("tpch"), mine)
    first = mine.read_text()
    listed = "  queries: 20\n  template_files: [mine.json]\n"
    path = cached_file(tmp_path, SCENARIO.replace("  queries: 20\n", listed))
    fresh_run(path)
    loaded = load_scenario(path)
    slower = {
        name: dataclasses.replace(
            t, pipelines=tuple(dataclasses.replace(p, work_s_sf1=3 * p.work_s_sf1)
                               for p in t.pipelines)
        )
        for name, t in loaded.templates.items()
    }  # fmt: skip
    agents.tuned._SHARED_CHOICES.clear()
    run_scenario(dataclasses.replace(loaded, templates=slower), None, seeds=1)
    assert len(searches) == 2  # the object's own workload, not its document's
    document = json.loads(first)
    for template in document["templates"].values():
        for pipeline in template["pipelines"]:
            pipeline["work_s_sf1"] *= 2
    mine.write_text(json.dumps(document))
    fresh_run(path)
    assert len(searches) == 3  # the file edited
    mine.write_text(first)
    fresh_run(path)
    assert len(searches) == 3  # as it was: the first search's entry


def test_an_unreadable_entry_is_searched_again_and_replaced(
    searches: list[object], tmp_path: Path
) -> None:
    path = cached_file(tmp_path)
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
    path = cached_file(tmp_path)
    monkeypatch.setenv(CACHE_ENV, "off")
    assert choice_store() is None
    fresh_run(path)
    fresh_run(path)
    assert len(searches) == 2 and not (tmp_path / "cache").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # under a file: cannot be made
    fresh_run(path)
    assert len(searches) == 3


def test_a_choice_survives_its_document(tmp_path: Path) -> None:
    path = cached_file(
        tmp_path, SCENARIO.replace("families: [fifo, srpt, fair]", "objective: p95_latency_s")
    )
    scenario = load_scenario(path)
    agent = build_agent(scenario, scenario.agents[0])
    assert isinstance(agent, Tuned)
    choice = agent.tune()
    assert len(choice.trials) > 10  # weighted_fair's class weights and the adaptive caps too
    assert TunedChoice.from_document(json.loads(json.dumps(choice.to_document()))) == choice


def test_no_home_to_keep_the_cache_in_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's uid with no passwd entry and no HOME: every run crashed building agents."""
    from lsched.tuning_cache import cache_folder

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache_folder() is None and choice_store() is None


def test_an_edited_plugin_is_other_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin may patch what the search runs: its name alone kept a stale choice's key."""
    from lsched.tuning_cache import _plugins

    plugin = tmp_path / "mine.py"
    plugin.write_text("A = 1\n")
    monkeypatch.setenv("LSCHED_PLUGINS", str(plugin))
    before = _plugins()
    plugin.write_text("A = 2\n")
    assert _plugins() != before and str(plugin) in _plugins()[0]
