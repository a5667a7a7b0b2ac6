"""`lsched real`: a tiny workload on real DuckDB end to end (results folder, not timing), the
query-level rule, faults recorded, refusals as one line, and data never left half-written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsched import real
from lsched.cli import app
from lsched.io import read_csv

pytestmark = [
    pytest.mark.xdist_group("duckdb"),
    pytest.mark.skipif(
        importlib.util.find_spec("duckdb") is None
        or importlib.util.find_spec("duckdb_extension_tpch") is None,
        reason="duckdb and duckdb-extension-tpch not installed (pip install 'lsched[calibrate]')",
    ),
]

TINY = """\
name: tiny-real
description: 20 quick TPC-H queries at SF 0.1 on a 2-thread DuckDB.
cluster: {engine: duckdb}
workload:
  queries: 20
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 40}
      mix: [tpch-q1, tpch-q3, tpch-q6, tpch-q14]
      scale_factors: 0.1
agents: [fifo, sjf]
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("duckdb-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(real.DATA_ENV, str(folder))
        real.ensure_database("tpch", 0.1)
    return folder


@pytest.fixture
def scenario_file(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(real.DATA_ENV, str(data))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def fifo_once(scenario_file: Path, out: Path, *options: str) -> list[dict[str, str]]:
    """`lsched real` with fifo, one repeat and `options`; its query rows (exit 0 asserted)."""
    result = invoke(
        "real", scenario_file, "--agents", "fifo", "--repeats", "1", *options, "--out", out
    )
    assert result.exit_code == 0, result.output
    return read_csv(out / "queries-fifo-seed0.csv")


def test_a_tiny_real_workload_writes_a_results_folder(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("real", scenario_file, "--repeats", "1", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document["results"]["agents"]) == {"fifo", "sjf"}
    assert set(document["fidelity"]["pairs"]) == {"fifo / sjf"}
    for agent in ("fifo", "sjf"):
        rows = read_csv(out / f"queries-{agent}-seed0.csv")
        assert len(rows) == 20 and all(not row["error"] for row in rows)
        assert all(float(row["latency_s"]) > 0 for row in rows)
        figures = document["fidelity"]["agents"][agent]
        assert figures["real_mean_latency"] > 0 and figures["predicted_mean_latency"] > 0
        # the policy's own time, measured around its decisions: some, and far below the run's
        run_s = max(float(row["finish_s"]) for row in rows)
        assert 0 < figures["decide_s"] < run_s
        # ... and per decision, which the prediction charges: 20 queries take 20 starts or more
        assert 0 < figures["decision_s"] <= figures["decide_s"] / 20
        assert figures["predicted_mean_latency_free"] > 0
        # the runner's own latency around each query: hand-over to start, finish to notice
        assert 0 < figures["dispatch_ms"] < 1e3 and 0 < figures["notice_ms"] < 1e3
    # the speed factor weighs each template as the workload does: summed real isolated
    # latencies of the queries run over the summed simulated ones
    from lsched.scenario import load_scenario
    from lsched.workloads.scalability import isolated_latency_s

    scenario = load_scenario(scenario_file)
    rows = read_csv(out / "queries-fifo-seed0.csv")
    simulated = sum(
        isolated_latency_s(
            scenario.templates[r["template"]], float(r["scale_factor"]), scenario.cluster
        )
        for r in rows
    )
    real_sum = sum(float(r["isolated_s"]) for r in rows)
    assert document["fidelity"]["speed_factor"] == pytest.approx(real_sum / simulated, rel=1e-6)
    assert document["fidelity"]["speed_factor_median"] > 0
    # every run bracketed by isolated passes: 2 runs, 3 passes; each run's own factor
    low, high = document["fidelity"]["speed_factor_runs"]
    assert 0 < low <= high
    for agent in ("fifo", "sjf"):
        assert abs(document["fidelity"]["agents"][agent]["mean_error_matched"]) < 10
    assert "ratio_error_matched" in document["fidelity"]["pairs"]["fifo / sjf"]
    # one repeat measures no spread: unknown, not a noise floor of 0
    assert document["fidelity"]["noise_floor"] is None
    assert all(a["real_spread"] is None for a in document["fidelity"]["agents"].values())
    saved = json.loads((out / "results.json").read_text())
    assert saved == document["results"]
    assert len(json.loads((out / "fidelity.json").read_text())["queries"]) == 40
    for plot in ("parity.png", "comparison.png", "gantt-fifo.png"):
        assert (out / plot).stat().st_size > 0
    assert not list(out.glob(".*.tmp"))
    assert (out / "scenario.yaml").read_text().startswith("name: tiny-real")  # as run
    # `lsched report` on the folder answers the same question as the command's output did
    from lsched.report import report_html

    page = report_html(out)
    assert "Simulator against DuckDB" in page and "fifo / sjf: predicted" in page
    assert "targets (means within 10%, ratios within 5%)" in page and 'alt="parity.png"' in page


def test_queries_that_time_out_are_recorded_and_the_run_goes_on(
    scenario_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    rows = fifo_once(scenario_file, out, "--timeout-s", "0.0001")
    assert len(rows) == 20
    assert any("timed out" in row["error"] or "nterrupt" in row["error"] for row in rows)
    assert json.loads((out / "results.json").read_text())["agents"]["fifo"]["failed_queries"] > 0


def test_the_learned_policy_runs_on_the_real_engine_in_its_query_level_form(
    scenario_file: Path, tmp_path: Path
) -> None:
    """The shipped checkpoint at query level: every query started (never before it arrived),
    run and recorded."""
    out = tmp_path / "out"
    result = invoke(
        "real", scenario_file, "--agents", "lsched,tuned", "--repeats", "1", "--out", out
    )
    assert result.exit_code == 0, result.output
    # what each ran, as `lsched run` notes it: tuned's rule (its query-level forms), lsched's
    # following of its guide; in the results, keyed by the labels asked for
    descriptions = json.loads((out / "results.json").read_text())["descriptions"]
    assert descriptions["tuned"].startswith("tuned: ") and "decisions" not in descriptions
    assert "guide" in descriptions["lsched"] and descriptions["tuned"] in result.output
    rows = read_csv(out / "queries-lsched-seed0.csv")
    assert len(rows) == 20 and all(not row["error"] for row in rows)
    assert all(float(row["start_s"]) >= float(row["arrival_s"]) for row in rows)


def test_an_auto_time_scale_stretches_arrivals_by_the_engines_speed(
    scenario_file: Path, tmp_path: Path
) -> None:
    """`--time-scale auto`: arrivals times the speed factor measured before the run, recorded
    in results.json and fidelity.json, and the queries submitted at those times."""
    from lsched.scenario import load_scenario

    out = tmp_path / "out"
    rows = fifo_once(scenario_file, out, "--time-scale", "auto")
    saved = json.loads((out / "results.json").read_text())
    fidelity = json.loads((out / "fidelity.json").read_text())
    scale = saved["time_scale"]
    assert scale > 0 and fidelity["time_scale"] == scale and fidelity["time_scale_auto"]
    planned = {q.query_id: q.arrival_s for q in load_scenario(scenario_file).queries(0)}
    for row in rows:
        assert float(row["arrival_s"]) == pytest.approx(planned[int(row["query_id"])] * scale)
        assert float(row["start_s"]) >= float(row["arrival_s"])


@pytest.mark.parametrize("value", ["fast", "0", "-1", "inf"])
def test_a_bad_time_scale_is_a_one_line_error(scenario_file: Path, value: str) -> None:
    result = invoke("real", scenario_file, "--time-scale", value)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--time-scale" in result.output


def test_an_agent_without_a_query_level_form_is_one_line(scenario_file: Path) -> None:
    result = invoke("real", scenario_file, "--agents", "cpf")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "has no query-level form" in result.output


def test_a_failed_generation_leaves_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(real.DATA_ENV, str(tmp_path))

    def broken(con, suite, scale_factor):
        con.execute("CREATE TABLE half (x INTEGER)")
        raise KeyboardInterrupt  # as if killed mid-generation

    monkeypatch.setattr(real.calibrate, "_prepare", broken)
    with pytest.raises(KeyboardInterrupt):
        real.ensure_database("tpch", 0.01)
    assert list(tmp_path.iterdir()) == []


def test_workers_on_the_database_file_run_the_same_queries(
    scenario_file: Path, tmp_path: Path
) -> None:
    """`--storage file` (no per-worker copy) answers every query as the default does."""
    rows = fifo_once(scenario_file, tmp_path / "out", "--storage", "file")
    assert len(rows) == 20 and all(not row["error"] for row in rows)


def test_an_in_memory_worker_copies_the_files_tables(data: Path) -> None:
    """A `memory` worker answers from its own copy of the file's tables (in-memory tables:
    what the templates were calibrated on), and a table the file lacks is an error."""
    import multiprocessing

    path = data / real.database_path("tpch", 0.1).name
    requests, results = multiprocessing.Queue(), multiprocessing.Queue()
    join = "SELECT count(*) FROM lineitem JOIN orders ON l_orderkey = o_orderkey"
    requests.put((7, join, 30.0))
    requests.put((8, "SELECT count(*) FROM source.lineitem", 30.0))
    requests.put(None)
    real._serve(str(path), requests, results, "memory")
    assert results.get(timeout=5) is None  # ready
    assert results.get(timeout=5)[::3] == (7, "")
    query_id, _, _, error, _ = results.get(timeout=5)
    assert query_id == 8 and "source" in error  # the file was detached after the copy


def test_an_unknown_storage_is_a_one_line_error(scenario_file: Path) -> None:
    result = invoke("real", scenario_file, "--storage", "disk")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--storage" in result.output


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            ("scale_factors: 0.1", "scale_factors: 0.1\n      work_multiplier: 30"),
            "work_multiplier: 30",
        ),
        (("{engine: duckdb}", "{engine: duckdb, nodes: 2}"), "cluster.nodes: 2"),
    ],
)
def test_a_scenario_off_the_engines_scale_is_refused(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch, change: tuple, named: str
) -> None:
    """The engine runs each query at its scale factor on one process: scaled work or several
    nodes would compare the run with another engine, so they are one line, before any data."""
    empty = tmp_path / "data"
    monkeypatch.setenv(real.DATA_ENV, str(empty))
    path = tmp_path / "scaled.yaml"
    path.write_text(TINY.replace(*change))
    result = invoke("real", path, "--agents", "fifo", "--out", tmp_path / "out")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert named in result.output and "duckdb-*" in result.output
    assert not (tmp_path / "out").exists() and not empty.exists()


def test_in_memory_copies_past_the_machines_memory_are_refused(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `memory` worker holds a copy of the data: on a machine without room for them the
    run is refused before a worker starts (one line, exit 2, nothing written), pointing at
    `--storage file`, which holds none."""
    database = tmp_path / "db.duckdb"
    database.write_bytes(b"x" * 1000)
    need = 3 * real.MEMORY_COPY_RATIO * 1000
    real.check_memory([database], 3, available=round(need / real.MEMORY_SHARE) + 1)
    with pytest.raises(real.RealEngineError, match="--storage file"):
        real.check_memory([database], 3, available=round(need / real.MEMORY_SHARE) - 1)
    assert real.available_memory_bytes() is None or real.available_memory_bytes() > 0

    monkeypatch.setattr(real, "available_memory_bytes", lambda: 10**6)
    out = tmp_path / "out"
    result = invoke("real", scenario_file, "--agents", "fifo", "--repeats", "1", "--out", out)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--storage file" in result.output, result.output
    assert not out.exists()
    assert fifo_once(scenario_file, out, "--storage", "file")  # the file needs no copies


def test_a_containers_memory_limit_is_the_room_the_copies_have(tmp_path: Path) -> None:
    """Inside a container MemAvailable is the host's: the cgroup's limit less its usage (v2 or
    v1, the tightest of the process's group and those above it) is what the copies may take."""
    v2 = tmp_path / "v2"
    (v2 / "a" / "b").mkdir(parents=True)
    (v2 / "a" / "memory.max").write_text("3000000000\n")
    (v2 / "a" / "memory.current").write_text("1000000000\n")
    (v2 / "a" / "b" / "memory.max").write_text("max\n")
    (v2 / "a" / "b" / "memory.current").write_text("900000000\n")
    assert real._cgroup_room(v2, "0::/a/b\n") == 2_000_000_000
    v1 = tmp_path / "v1" / "memory" / "job"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("1500000000\n")
    (v1 / "memory.usage_in_bytes").write_text("500000000\n")
    assert real._cgroup_room(tmp_path / "v1", "4:memory:/job\n1:cpu:/\n") == 1_000_000_000
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert real._cgroup_room(tmp_path / "v1", "4:memory:/job\n") is None
    assert real._cgroup_room(tmp_path / "none", "0::/\n") is None


def test_each_worker_keeps_the_thread_count_it_was_opened_with(scenario_file: Path) -> None:
    """Every query runs on a worker opened at its grant (`SET threads` to a new count restarts
    DuckDB's thread pool, a cost no engine running its queries on one pool has): with arrivals
    100x closer together, fair grants one thread to queries that meet and fifo two to each in
    turn, and the same pool serves both at their counts."""
    from lsched.scenario import AgentChoice, load_scenario

    assert real.worker_threads(1) == (1,)
    assert real.worker_threads(2) == (1, 1, 2)
    assert real.worker_threads(4) == (1, 1, 1, 1, 2, 2, 3, 4)
    scenario = load_scenario(scenario_file)
    agents = [AgentChoice("fair"), AgentChoice("fifo")]
    report = real.run_real(scenario, agents, [0], repeats=1, time_scale=0.01)
    assert report.threads == 2
    fixed = real.worker_threads(2)
    granted = set()
    for agent in ("fair", "fifo"):
        run = report.runs[agent, 0, 0]
        assert len(run) == 20 and not any(q.error for q in run)
        assert all(fixed[q.worker] == q.threads for q in run)
        granted |= {q.threads for q in run}
    assert {q.threads for q in report.runs["fifo", 0, 0]} == {2}
    assert granted == {1, 2}


def test_a_worker_runs_at_the_thread_count_it_was_opened_with(data: Path) -> None:
    import multiprocessing

    path = data / real.database_path("tpch", 0.1).name
    requests, results = multiprocessing.Queue(), multiprocessing.Queue()
    requests.put((4, "SELECT current_setting('threads')", 30.0))
    requests.put(None)
    real._serve(str(path), requests, results, "file", 2)
    assert results.get(timeout=5) is None  # ready
    assert results.get(timeout=5)[::3] == (4, "")


def test_the_pool_never_grants_past_its_thread_budget(data: Path) -> None:
    path = data / real.database_path("tpch", 0.1).name
    pool = real._Pool(path, 2, "file")
    try:
        first = pool.submit(1, "SELECT 1", 1, 30.0)
        second = pool.submit(2, "SELECT 1", 1, 30.0)
        assert first != second and pool.threads[first] == pool.threads[second] == 1
        with pytest.raises(real.RealEngineError, match="exceeds the 2-thread budget"):
            pool.submit(3, "SELECT 1", 1, 30.0)
        with pytest.raises(real.RealEngineError, match="with 2 threads in use exceeds"):
            pool.submit(3, "SELECT 1", 2, 30.0)
        finished = {pool.poll(5.0)[0], pool.poll(5.0)[0]}
        assert finished == {1, 2}
        assert pool.threads[pool.submit(4, "SELECT 1", 2, 30.0)] == 2
        assert pool.poll(5.0)[::3] == (4, "")
    finally:
        pool.close()


def test_the_verdict_says_whether_rankings_and_ratios_hold_on_the_engine() -> None:
    """The table's per-agent errors did not answer the question asked: a simulator that ranked
    three agents in another order than the engine printed nothing that said so."""
    from lsched.real import fidelity_verdict

    def agent(predicted: float, real: float) -> dict[str, float]:
        return {
            "predicted_mean_latency": predicted,
            "real_mean_latency": real,
            "mean_error": predicted / real - 1,
        }

    agents = {"fifo": agent(3.0, 2.0), "sjf": agent(2.0, 1.0), "tuned": agent(1.0, 3.0)}
    pairs = {
        f"{a} / {b}": {
            "predicted_ratio": (
                p := agents[a]["predicted_mean_latency"] / agents[b]["predicted_mean_latency"]
            ),
            "real_ratio": (r := agents[a]["real_mean_latency"] / agents[b]["real_mean_latency"]),
            "ratio_error": p / r - 1,
        }
        for a, b in (("fifo", "sjf"), ("fifo", "tuned"), ("sjf", "tuned"))
    }
    lines = fidelity_verdict({"agents": agents, "pairs": pairs, "noise_floor": None})
    assert "ranking (fastest first): predicted tuned, sjf, fifo; real sjf, fifo, tuned" in lines
    assert lines[-1].startswith("targets (means within 10%, ratios within 5%): missed")
    assert lines[-1].endswith("noise unknown with one repeat")
    same = {name: agent(1.0 + i, 1.0 + i) for i, name in enumerate(agents)}
    ratios = {
        "fifo / sjf": {"predicted_ratio": 0.5, "real_ratio": 0.5, "ratio_error": 0.0},
    }
    lines = fidelity_verdict({"agents": same, "pairs": ratios, "noise_floor": 0.2})
    assert "the same on the engine: fifo, sjf, tuned" in lines[-2]
    assert "met (worst 0.0% and 0.0%)" in lines[-1] and "within noise" in lines[-1]
    drifted = {"agents": same, "pairs": ratios, "noise_floor": 0.2, "time_scale_auto": True,
               "time_scale": 7.77, "speed_factor": 4.39}  # fmt: skip
    assert any("about 56% of the scenario's load" in line for line in fidelity_verdict(drifted))


def test_a_misspelt_agent_lists_the_agents_that_steer_duckdb(scenario_file: Path) -> None:
    result = invoke("real", scenario_file, "--agents", "fifo,sjff")
    assert result.exit_code == 2 and "unknown agent 'sjff'" in result.output
    assert "steered by fair, fifo, lsched, sjf, srpt, tuned" in result.output
    assert "cpf" not in result.output  # a pipeline-only agent is no answer here
