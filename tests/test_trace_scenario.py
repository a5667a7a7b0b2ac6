"""A scenario can replay a query log (alone or merged with generated streams)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lsched.errors import ScenarioError
from lsched.runner import run_one
from lsched.scenario import load_scenario

SCENARIO = """\
name: replay
cluster: {{nodes: 1, threads_per_node: 8, moving_delay_s: 0.1, warmup_s: 0.05}}
workload:
  queries: {queries}
  trace: {{path: {path}, threads: 4}}
{streams}
agents: [fair]
"""

STREAM = """\
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.5}
      mix: "tpch-*"
      work_multiplier: 50
"""


def write_log(path: Path) -> None:
    """A Redset-style log: 12 queries, 5 s apart, two fingerprints, 1-3 s each."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["arrival_timestamp", "feature_fingerprint", "execution_duration_ms", "num_joins",
             "num_scans", "num_aggregations", "query_type", "mbytes_scanned"]
        )  # fmt: skip
        for i in range(12):
            fingerprint = "a" if i % 2 else "b"
            writer.writerow(
                [f"2024-03-01 00:00:{5 * i:02d}", fingerprint, 1000 + 1000 * (i % 3),
                 2 if fingerprint == "a" else 4, 3, 1, "select", 100]
            )  # fmt: skip


def scenario(tmp_path: Path, queries: int, streams: str = "", log: str = "log.csv") -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text(SCENARIO.format(queries=queries, path=log, streams=streams))
    return path


def test_a_replayed_log_keeps_its_arrival_gaps_and_fingerprints(tmp_path: Path) -> None:
    write_log(tmp_path / "log.csv")
    replay = load_scenario(scenario(tmp_path, queries=12))
    queries = replay.queries(0)
    assert [q.arrival_s for q in queries] == [5.0 * i for i in range(12)]
    assert [q.query_id for q in queries] == list(range(12))
    by_fingerprint = {q.arrival_s // 5 % 2: q.template for q in queries}
    assert all(q.template == by_fingerprint[q.arrival_s // 5 % 2] for q in queries)
    assert replay.queries(0) == queries
    assert run_one(replay, "fair", 0).queries == 12


def test_a_log_alone_replays_whole_without_a_query_count(tmp_path: Path) -> None:
    """A trace ends by itself: without `queries` or `duration_s` every record replays; streams
    never end by themselves, so with them one of the two is still required."""
    write_log(tmp_path / "log.csv")
    whole = tmp_path / "whole.yaml"
    whole.write_text(scenario(tmp_path, queries=1).read_text().replace("  queries: 1\n", ""))
    assert len(load_scenario(whole).queries(0)) == 12
    both = tmp_path / "both.yaml"
    both.write_text(whole.read_text().replace("agents:", STREAM + "agents:"))
    with pytest.raises(ScenarioError, match=r"workload\.queries: set queries, duration_s or both"):
        load_scenario(both)


def test_a_log_merges_with_streams_in_arrival_order(tmp_path: Path) -> None:
    write_log(tmp_path / "log.csv")
    mixed = load_scenario(scenario(tmp_path, queries=30, streams=STREAM)).queries(1)
    arrivals = [q.arrival_s for q in mixed]
    assert arrivals == sorted(arrivals) and len(mixed) == 30
    assert [q.query_id for q in mixed] == list(range(30))
    logged = {5.0 * i for i in range(12) if 5.0 * i <= arrivals[-1]}
    assert logged <= set(arrivals)  # every log entry before the cut is there ...
    assert len(logged) < len(mixed)  # ... among the streams' queries


def test_a_missing_log_is_a_one_line_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"replay\.yaml: workload\.trace\.path: .*nowhere"):
        load_scenario(scenario(tmp_path, queries=5, log="nowhere.csv"))


def test_trace_templates_limit_the_mapping_to_a_suite(tmp_path: Path) -> None:
    """A log of one engine's queries maps onto that suite when `templates` says so (without
    it, any of the library's templates of the nearest shape); a pattern that matches nothing
    is a one-line error naming the field."""
    write_log(tmp_path / "log.csv")
    path = scenario(tmp_path, queries=12)
    path.write_text(path.read_text().replace("threads: 4}", 'threads: 4, templates: "ssb-*"}'))
    mapped = {q.template for q in load_scenario(path).queries(0)}
    assert mapped and all(name.startswith("ssb-") for name in mapped)
    path.write_text(path.read_text().replace('"ssb-*"', "[nothing-*]"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == (
        f"{path}: workload.trace.templates: pattern 'nothing-*': matches no template"
    )


def test_results_record_the_log_and_a_rerun_refuses_it_changed(tmp_path: Path) -> None:
    """scenario.yaml of a results folder carries the log's SHA-256: rerun from it, the same
    log replays; edited since, loading says so (a rerun would replay another workload)."""
    import hashlib

    import yaml

    from lsched.runner import run_scenario, write_results
    from lsched.scenario import scenario_from_document

    log = tmp_path / "log.csv"
    write_log(log)
    replay = load_scenario(scenario(tmp_path, queries=12))
    report = run_scenario(replay, ["fair"], seeds=1, keep_results=True)
    write_results(report, replay, tmp_path / "out")
    saved = yaml.safe_load((tmp_path / "out" / "scenario.yaml").read_text())
    recorded = saved["workload"]["trace"]["sha256"]
    assert recorded == hashlib.sha256(log.read_bytes()).hexdigest()
    again = scenario_from_document(saved, "scenario.yaml")
    assert again.queries(0) == replay.queries(0)
    with log.open("a") as handle:
        handle.write("2024-03-01 00:01:00,a,1000,2,3,1,select,100\n")
    with pytest.raises(ScenarioError, match=r"workload\.trace\.sha256: .*log\.csv changed"):
        scenario_from_document(saved, "scenario.yaml")
    del saved["workload"]["trace"]["sha256"]
    assert len(scenario_from_document(saved, "scenario.yaml").queries(0)) == 12  # as it is now


def test_a_sweep_over_a_log_edited_between_resumes_refuses_to_mix_them(tmp_path: Path) -> None:
    from lsched.sweep import SweepError, run_sweep

    write_log(tmp_path / "log.csv")
    scenario(tmp_path, queries=12)
    spec = tmp_path / "sweep.yaml"
    spec.write_text("scenarios: [replay.yaml]\nagents: [fifo, fair]\nseeds: 1\n")

    def stop(done: int, total: int, row: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "out", progress=stop)
    with (tmp_path / "log.csv").open("a") as handle:
        handle.write("2024-03-01 00:01:00,a,1000,2,3,1,select,100\n")
    with pytest.raises(SweepError, match="changed since run"):
        run_sweep(spec, tmp_path / "out")
