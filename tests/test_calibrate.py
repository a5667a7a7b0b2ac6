"""Calibration: profiles are cut into pipelines at DuckDB's breakers, power laws are fitted,
and a real (tiny) DuckDB run yields valid templates. The DuckDB run skips without duckdb."""

from __future__ import annotations

import importlib.util
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsched.workloads.calibrate import (
    HASH_ENTRY_OVERHEAD_BYTES,
    MIN_PIPELINE_WORK_S,
    ROWS_PER_MORSEL,
    CalibrationError,
    MeasuredPipeline,
    fit_power_law,
    fit_template,
    resolve_queries,
    run_calibration,
    split_pipelines,
)
from lsched.workloads.templates import (
    TemplateSet,
    load_template_file,
    parse_template_set,
    template_set_to_dict,
)


def op(kind: str, timing: float, rows: float, *children: dict, **extra: object) -> dict:
    """A node as DuckDB's JSON profile writes it."""
    return {
        "operator_type": kind,
        "operator_timing": timing,
        "operator_cardinality": rows,
        "operator_rows_scanned": extra.pop("scanned", 0),
        "result_set_size": extra.pop("bytes", rows * 8),
        "extra_info": extra,
        "children": list(children),
    }


def scan(timing: float, rows: float, scanned: float) -> dict:
    return op("TABLE_SCAN", timing, rows, scanned=scanned)


def test_hash_join_build_side_is_its_own_pipeline() -> None:
    probe, build = scan(0.4, 1000, 1_000_000), scan(0.1, 3000, 5000)
    join = op("HASH_JOIN", 0.2, 900, probe, build)
    agg = op("HASH_GROUP_BY", 0.05, 10, op("PROJECTION", 0.01, 900, join))
    pipelines = split_pipelines({"children": [op("ORDER_BY", 0.001, 10, agg)]})
    assert [p.operator for p in pipelines] == ["hash_build", "aggregate", "sort", "result"]
    assert [p.parents for p in pipelines] == [(), (0,), (1,), (2,)]
    build_share = 3000 / 4000  # the join's timer splits by input rows
    assert pipelines[0].work_s == pytest.approx(0.1 + 0.2 * build_share)
    assert pipelines[1].work_s == pytest.approx(0.4 + 0.2 * (1 - build_share) + 0.01 + 0.05)
    assert pipelines[0].memory_bytes == 3000 * 8 + HASH_ENTRY_OVERHEAD_BYTES * 3000
    assert pipelines[1].source_rows == 1_000_000  # rows scanned, not rows passing the filter
    assert pipelines[2].source_rows == 10
    assert [p.table_scans for p in pipelines] == [1, 1, 0, 0]
    assert pipelines[-1].work_s == MIN_PIPELINE_WORK_S


def test_cte_and_its_scans() -> None:
    definition = op("HASH_GROUP_BY", 0.1, 50, scan(0.2, 100, 100))
    consumer = op(
        "HASH_JOIN",
        0.0,
        50,
        op("CTE_SCAN", 0.0, 50, **{"CTE Index": "7"}),
        op("CTE_SCAN", 0.0, 50, **{"CTE Index": "7"}),
    )
    cte = op("CTE", 0.01, 0, definition, consumer, **{"Table Index": "7"})
    pipelines = split_pipelines({"children": [cte]})
    assert [p.operator for p in pipelines] == [
        "aggregate",
        "cte",
        "hash_build",
        "result",
    ]
    assert pipelines[1].parents == (0,)
    assert pipelines[2].parents == (1,)  # the build side reads the CTE
    assert pipelines[3].parents == (1, 2)


def test_union_branches_share_a_pipeline() -> None:
    union = op("UNION", 0.0, 30, scan(0.1, 10, 10), scan(0.2, 20, 20))
    pipelines = split_pipelines({"children": [op("UNGROUPED_AGGREGATE", 0.01, 1, union)]})
    assert [p.operator for p in pipelines] == ["aggregate", "result"]
    assert pipelines[0].work_s == pytest.approx(0.31)
    assert pipelines[0].table_scans == 2 and pipelines[0].source_rows == 30


def test_left_delim_join_materialises_its_side_first() -> None:
    """TPC-H Q2's shape: the delim join's left side feeds a column-data scan and a delim scan."""
    side = scan(0.1, 200, 200)
    inner = op(
        "HASH_JOIN",
        0.02,
        60,
        op("COLUMN_DATA_SCAN", 0.0, 60),
        op("HASH_GROUP_BY", 0.03, 40, op("HASH_JOIN", 0.01, 50, scan(0.05, 500, 800),
                                        op("DELIM_SCAN", 0.0, 0))),
    )  # fmt: skip
    delim = op("LEFT_DELIM_JOIN", 0.04, 0, side, inner, op("HASH_GROUP_BY", 0.005, 40))
    pipelines = split_pipelines({"children": [delim]})
    assert [p.operator for p in pipelines] == [
        "delim_join",
        "hash_build",
        "aggregate",
        "hash_build",
        "result",
    ]
    assert pipelines[0].work_s == pytest.approx(0.1 + 0.04 + 0.005)
    assert pipelines[1].parents == (0,)  # the delim scan reads the distinct side
    assert pipelines[2].parents == (1,)
    assert pipelines[4].parents == (0, 3)  # the column-data scan reads the materialised side


def test_right_delim_join_builds_the_inner_hash_table() -> None:
    """TPC-H Q17's shape: the inner join's build child is a DUMMY_SCAN placeholder."""
    inner = op("HASH_JOIN", 0.02, 5, scan(0.3, 5000, 6000), op("DUMMY_SCAN", 0.0, 0))
    delim = op("RIGHT_DELIM_JOIN", 0.01, 0, scan(0.05, 100, 200), inner, op("HASH_GROUP_BY", 0, 9))
    pipelines = split_pipelines({"children": [op("UNGROUPED_AGGREGATE", 0.0, 1, delim)]})
    assert [p.operator for p in pipelines] == ["delim_join", "aggregate", "result"]
    assert pipelines[1].parents == (0,)
    assert pipelines[1].work_s == pytest.approx(0.3 + 0.02)


_timings = st.floats(min_value=1e-3, max_value=1.0)
_rows_st = st.integers(min_value=0, max_value=10**7)
_leaves = st.one_of(
    st.builds(lambda t, r: scan(t, r, r), _timings, _rows_st),
    st.builds(lambda t, r: op("DELIM_SCAN", t, r), _timings, _rows_st),
    st.builds(lambda t, r: op("COLUMN_DATA_SCAN", t, r), _timings, _rows_st),
    st.builds(lambda t, r: op("CTE_SCAN", t, r, **{"CTE Index": "1"}), _timings, _rows_st),
)


def _extend(children: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    unary = st.sampled_from(
        ["PROJECTION", "FILTER", "HASH_GROUP_BY", "UNGROUPED_AGGREGATE", "ORDER_BY", "TOP_N",
         "WINDOW", "STREAMING_LIMIT"]
    )  # fmt: skip
    binary = st.sampled_from(["HASH_JOIN", "NESTED_LOOP_JOIN", "CROSS_PRODUCT", "UNION"])
    return st.one_of(
        st.builds(lambda k, t, r, c: op(k, t, r, c), unary, _timings, _rows_st, children),
        st.builds(lambda k, t, r, a, b: op(k, t, r, a, b), binary, _timings, _rows_st,
                  children, children),
        st.builds(lambda t, a, b: op("CTE", t, 0, a, b, **{"Table Index": "1"}), _timings,
                  children, children),
        st.builds(lambda t, a, b, d: op("LEFT_DELIM_JOIN", t, 0, a, b, op("HASH_GROUP_BY", d, 1)),
                  _timings, children, children, _timings),
    )  # fmt: skip


def _timing_sum(node: dict) -> float:
    return node["operator_timing"] + sum(_timing_sum(c) for c in node["children"])


def _count(node: dict, kind: str) -> int:
    return (node["operator_type"] == kind) + sum(_count(c, kind) for c in node["children"])


@settings(max_examples=150, deadline=None)
@given(st.recursive(_leaves, _extend, max_leaves=12))
def test_any_plan_becomes_a_valid_pipeline_dag(root: dict) -> None:
    """Whatever the tree: a DAG in topological order with one sink, the result, every other
    pipeline feeding a later one; work and scans are conserved."""
    pipelines = split_pipelines({"children": [root]})
    assert pipelines[-1].operator == "result"
    assert all(0 <= parent < i for i, p in enumerate(pipelines) for parent in p.parents)
    consumed = {parent for p in pipelines for parent in p.parents}
    assert consumed == set(range(len(pipelines) - 1))
    floors = len(pipelines) * MIN_PIPELINE_WORK_S  # a pipeline with no timed operator
    assert sum(p.work_s for p in pipelines) == pytest.approx(_timing_sum(root), abs=floors)
    assert sum(p.table_scans for p in pipelines) == _count(root, "TABLE_SCAN")
    template, _ = fit_template("x-q1", "x", {1.0: pipelines})
    data = template_set_to_dict(TemplateSet("x", "duckdb", "1.5.5", (1.0,), 2, {"x-q1": template}))
    parse_template_set(data, "generated")  # the loader accepts what calibration produces


def test_fit_recovers_a_power_law_and_clamps() -> None:
    at_one, exponent = fit_power_law([0.1, 0.3, 1.0, 3.0], [2.0 * s**1.3 for s in (0.1, 0.3, 1, 3)])
    assert at_one == pytest.approx(2.0) and exponent == pytest.approx(1.3)
    assert fit_power_law([0.5], [4.0]) == pytest.approx((8.0, 1.0))
    at_one, exponent = fit_power_law([0.1, 1.0], [5.0, 1.0])  # shrinking: noise on a tiny pipeline
    assert exponent == 0.0 and at_one == pytest.approx(math.sqrt(5.0))
    assert fit_power_law([0.1, 1.0], [0.0, 0.0]) == (0.0, 1.0)


def _plan(scale: float, operators: tuple[str, ...]) -> tuple[MeasuredPipeline, ...]:
    return tuple(
        MeasuredPipeline(op_, (i - 1,) if i else (), (i + 1) * scale, 1e6 * scale, 1e8 * scale, 1)
        for i, op_ in enumerate(operators)
    )


def test_fit_template_per_pipeline_and_fallback() -> None:
    same = {sf: _plan(sf, ("aggregate", "result")) for sf in (0.1, 1.0)}
    template, per_pipeline = fit_template("x-q1", "x", same, (0.01, 0.1))
    assert per_pipeline
    assert [p.work_s_sf1 for p in template.pipelines] == pytest.approx([1.0, 2.0])
    assert [p.work_exponent for p in template.pipelines] == pytest.approx([1.0, 1.0])
    assert template.pipelines[0].tasks_sf1 == pytest.approx(1e6 / ROWS_PER_MORSEL)
    assert template.pipelines[0].memory_gb_sf1 == pytest.approx(0.1)
    differ = {0.1: _plan(0.1, ("aggregate", "result")), 1.0: _plan(1.0, ("sort", "result"))}
    template, per_pipeline = fit_template("x-q1", "x", differ)
    assert not per_pipeline
    assert [p.operator for p in template.pipelines] == ["sort", "result"]
    assert template.work_s_sf1 == pytest.approx(3.0)


def test_query_names_resolve_and_unknown_ones_fail() -> None:
    assert resolve_queries("tpch", ["q3", "1", "tpch-q3"]) == ["tpch-q1", "tpch-q3"]
    assert resolve_queries("ssb", ["1.2"]) == ["ssb-q1.2"]
    assert len(resolve_queries("tpcds", None)) == 99
    with pytest.raises(CalibrationError, match="unknown tpch query 'q23'"):
        resolve_queries("tpch", ["q23"])
    with pytest.raises(CalibrationError, match="unknown suite 'job'"):
        resolve_queries("job", None)


needs_duckdb = pytest.mark.skipif(
    importlib.util.find_spec("duckdb") is None
    or importlib.util.find_spec("duckdb_extension_tpch") is None,
    reason="duckdb and duckdb-extension-tpch not installed (pip install 'lsched[calibrate]')",
)


@needs_duckdb
def test_tiny_tpch_calibration_writes_valid_templates(tmp_path: Path) -> None:
    out = tmp_path / "tpch.json"
    lines: list[str] = []
    result = run_calibration(
        "tpch", [0.01, 0.02], [1, 2], out, ["q1", "q3", "q5"], repeats=1, progress=lines.append
    )
    assert load_template_file(out).templates == result.templates
    assert result.scale_factors == (0.01, 0.02) and result.threads == 1
    assert result.calibration["thread_counts"] == [1, 2]
    assert result.calibration["command"].startswith("lsched calibrate tpch --scale-factors 0.01")
    assert 0 < result.engine_costs["warmup_s"] < 0.01
    # measured scalability at the two scale factors, TPC-H's 1-to-24-thread table beyond them
    assert result.scalability_scale_factors == (0.01, 0.02, 100.0, 500.0)
    assert result.engine == "duckdb" and result.engine_version.startswith("1.")
    assert list(result.templates) == ["tpch-q1", "tpch-q3", "tpch-q5"]
    joins = {"tpch-q1": 0, "tpch-q3": 2, "tpch-q5": 5}
    for name, template in result.templates.items():
        # 1 + joins + aggregates + sorts: each of these has one aggregate and one sort/top-n.
        assert len(template.pipelines) == 1 + joins[name] + 2, name
        assert template.shape.joins == joins[name]
        assert all(p.work_s_sf1 > 0 and p.tasks_sf1 > 0 for p in template.pipelines)
        assert template.pipelines[-1].operator == "result"
        assert len(template.parameter_work) == 6
        # One timed run per draw beside other tests: a load spike can bend any one of them,
        # not their median (bench_calibration holds the timing targets).
        assert all(math.isfinite(w) and w > 0 for w in template.parameter_work), name
        assert 0.3 < statistics.median(template.parameter_work) < 3.0, name
        assert all(len(p.estimate_ratio) == 2 for p in template.pipelines)
        assert all(len(p.serial_fraction) == 4 for p in template.pipelines)
    q1 = result.templates["tpch-q1"]
    assert q1.pipelines[0].tasks_sf1 == pytest.approx(6_001_215 / ROWS_PER_MORSEL, rel=0.05)
    # On 100 GB each query carries the table's measured Amdahl f (Q1 0.0042, Q3 0.0194, Q5
    # 0.0209) as its work-weighted mean over pipelines. How it splits over pipelines follows
    # the operator model fitted on these three queries' local profiles, which load moves (one
    # CI run put 0.0164 on Q1's scan pipeline), so only the mean is asserted; a pipeline's
    # fraction clipped at 1 can only lower it. The file rounds fractions to 4 significant
    # digits and work exponents to 3 decimals: 1% covers that.
    table = {"tpch-q1": 0.0042, "tpch-q3": 0.0194, "tpch-q5": 0.0209}
    for name, measured_f in table.items():
        template = result.templates[name]
        fractions = np.array(template.serial_fractions(100.0))
        works = np.array([p.work_s_sf1 * 100.0**p.work_exponent for p in template.pipelines])
        mean = float(fractions @ works / works.sum())
        if fractions.max() < 1.0:
            assert mean == pytest.approx(measured_f, rel=0.01), name
        else:
            assert 0.0 < mean <= measured_f * 1.01, name
    assert any("tpch-q5 sf=0.02" in line for line in lines)


@needs_duckdb
def test_ssb_schema_runs_all_thirteen_queries(tmp_path: Path) -> None:
    result = run_calibration("ssb", [0.01], [1, 2], tmp_path / "ssb.json", repeats=1)
    assert len(result.templates) == 13
    for template in result.templates.values():
        assert template.shape.joins >= 1
        assert all(p.work_exponent == 1.0 for p in template.pipelines)  # one scale factor


def test_bad_settings_are_rejected_before_running(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="scale_factors"):
        run_calibration("tpch", [0.0], 2, tmp_path / "x.json")
    with pytest.raises(CalibrationError, match="threads"):
        run_calibration("tpch", [0.1], 0, tmp_path / "x.json")
    with pytest.raises(CalibrationError, match="threads: must include 1"):
        run_calibration("tpch", [0.1], [2, 4], tmp_path / "x.json")


def test_interference_is_the_time_weighted_slowdown_when_clear_of_noise() -> None:
    from lsched.workloads.engine_costs import BESIDE_ALL, CoRun, interference_from

    def runs(*pairs: tuple[float, float]) -> list[CoRun]:
        return [CoRun(f"q{k}", BESIDE_ALL, a, b) for k, (a, b) in enumerate(pairs)]

    # every template slower beside the loop: the summed time says by how much (the long one
    # weighs most), not the median template
    slower = runs((1.0, 1.04), (0.01, 0.0115), (0.02, 0.0212), (0.5, 0.52))
    assert interference_from(slower) == pytest.approx((1.04 + 0.0115 + 0.0212 + 0.52) / 1.53 - 1)
    # the middle half straddles 1: noise, 0
    assert interference_from(runs((1.0, 0.9), (1.0, 1.1), (1.0, 0.95), (1.0, 1.08))) == 0.0
    # faster beside the loop (as this machine measured, 2026-12-04): never negative
    assert interference_from(runs((1.0, 0.97), (1.0, 0.96), (1.0, 0.98), (1.0, 0.99))) == 0.0


@needs_duckdb
def test_interference_times_every_template_alone_and_beside_the_loop() -> None:
    from functools import partial

    from lsched.workloads import engine_costs
    from lsched.workloads.calibrate import _duckdb, _prepare

    con = _duckdb().connect()
    sql = _prepare(con, "tpch", 0.01)
    con.close()
    names = ["tpch-q1", "tpch-q6", "tpch-q14"]
    setup = partial(engine_costs.single_thread_connection, "tpch", 0.01)
    runs = engine_costs.measure_interference(setup, sql, names, runs=2)
    assert [r.measured for r in runs] == names
    assert all(
        r.beside == engine_costs.BESIDE_ALL and r.alone_s > 0 and r.beside_s > 0 for r in runs
    )


class _SwitchingEngine:
    """A stand-in DuckDB connection on a fake clock: each query takes `steady` seconds, and
    `penalty` times that for the first `cold` queries after its thread count changes — the
    thread-pool restart `THREAD_SWITCH_WARMUP_S` waits out."""

    def __init__(self, steady: float = 0.01, cold: int = 3, penalty: float = 1.5) -> None:
        self.clock = 0.0
        self.threads: int | None = None
        self.since_switch = 0
        self.steady, self.cold, self.penalty = steady, cold, penalty

    def execute(self, text: str) -> _SwitchingEngine:
        if text.startswith("SET threads"):
            threads = int(text.split("=")[1])
            if threads != self.threads:
                self.threads, self.since_switch = threads, 0
            return self
        slow = self.penalty if self.since_switch < self.cold else 1.0
        self.since_switch += 1
        self.clock += self.steady / self.threads * slow
        return self

    def fetchall(self) -> list:
        return []


@pytest.mark.parametrize("warmup_s", [0.1, 0.0])
def test_timing_waits_out_the_thread_pool_restart(
    monkeypatch: pytest.MonkeyPatch, warmup_s: float
) -> None:
    """Latencies are timed on a warm thread pool: a query right after `SET threads` to a new
    count is not what the engine runs at steadily (without the warm-up pass the first queries
    of every pass would keep the restart's cost, as the files calibrated before 2026-12-07 do);
    the warm-up runs whole passes until its time is up, so a short pass is run several times."""
    from types import SimpleNamespace

    from lsched.workloads import calibrate

    engine = _SwitchingEngine(cold=6)  # longer than one pass of the four queries
    monkeypatch.setattr(calibrate, "time", SimpleNamespace(perf_counter=lambda: engine.clock))
    monkeypatch.setattr(calibrate, "THREAD_SWITCH_WARMUP_S", warmup_s)
    names = ["q1", "q2", "q3", "q4"]
    timed = calibrate._time_suite(engine, {n: n for n in names}, names, (1, 2), repeats=3)
    steady = {1: 0.01, 2: 0.005}
    if warmup_s:
        assert all(timed[n] == pytest.approx(steady) for n in names)
    else:  # the first `cold` queries after each switch keep the restart in every pass
        assert timed["q1"] == pytest.approx({1: 0.015, 2: 0.0075})
        assert timed["q4"] == pytest.approx(steady)


def test_a_speed_reference_keeps_the_reference_files_time_scale() -> None:
    """A recalibration on an engine 25% slower than the reference's at SF 1 and 10% at SF 0.1
    keeps the reference's time scale at each (the bundled scenarios' load): its latencies are
    scaled by the reference's summed 1-thread latency over its own there, a scale factor the
    reference lacks takes the nearest one's, and the file records the factors and whose time
    scale it keeps, through a chain of recalibrations."""
    from dataclasses import replace

    from lsched.workloads import calibrate, scalability
    from lsched.workloads.templates import bundled_template_set

    reference = bundled_template_set("tpch")
    cluster = scalability._calibration_cluster(1, reference.engine_costs["warmup_s"])
    slow = {0.1: 1.1, 1.0: 1.25}

    def alone(name: str, sf: float) -> float:
        return scalability.isolated_latency_s(reference.templates[name], sf, cluster)

    slower = {
        name: {
            sf: calibrate.QueryMeasurement((), {1: k * alone(name, sf), 2: 0.7 * alone(name, sf)})
            for sf, k in slow.items()
        }
        for name in reference.templates
    }
    reference = replace(reference, calibration={"date": "2026-12-01", "command": "lsched ..."})
    anchor = calibrate.speed_reference(slower, reference)
    assert anchor["factors"] == pytest.approx({"0.1": 1 / 1.1, "1": 0.8}, abs=1e-4)
    assert anchor["templates"] == 22
    assert anchor["time_scale_of"] == "2026-12-01" and anchor["reference_command"] == "lsched ..."
    scaled = calibrate._at_speed(slower, anchor["factors"])
    assert scaled["tpch-q2"][1.0].latency_s[1] == pytest.approx(alone("tpch-q2", 1.0), rel=1e-3)
    assert scaled["tpch-q2"][1.0].latency_s[2] == pytest.approx(0.56 * alone("tpch-q2", 1.0))
    chained = replace(reference, calibration={"speed_reference": {"time_scale_of": "2026-01-01"}})
    assert calibrate.speed_reference(slower, chained)["time_scale_of"] == "2026-01-01"
    beyond = {name: {**m, 3.0: m[1.0]} for name, m in slower.items()}
    assert calibrate.speed_reference(beyond, reference)["factors"]["3"] == anchor["factors"]["1"]
    elsewhere = {name: {3.0: m[1.0]} for name, m in slower.items()}
    with pytest.raises(CalibrationError, match="speed_reference: the reference shares no"):
        calibrate.speed_reference(elsewhere, reference)
