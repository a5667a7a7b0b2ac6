"""`lsched calibrate`: measure query templates on DuckDB and write a template file.

Where the numbers come from. For each scale factor we generate the data in an in-memory DuckDB
(the `tpch` / `tpcds` extensions, loaded offline from the pip packages duckdb-extension-tpch /
-tpcds; SSB is built from the TPC-H tables with SQL), run every query once to warm up and then
`repeats` passes over the suite with JSON profiling on, keep each pipeline's fastest run, and
split each profiled operator tree into pipelines at DuckDB's pipeline breakers:

- hash-join build side (`hash_build`; the build child of HASH_JOIN), the materialised side of
  nested-loop / piecewise-merge / cross-product joins (`join_build`), the left side of a delim
  join (`delim_join`, which also feeds the distinct of the correlated subquery),
- hash / perfect-hash / ungrouped aggregates (`aggregate`), ORDER BY (`sort`), TOP_N (`top_n`),
  WINDOW (`window`), LIMIT (`limit`), materialised CTEs (`cte`),
- and the root, the final `result` pipeline.

A pipeline's parents are the pipelines whose breakers it reads: its source (an aggregate, a
CTE scan, a delim scan) and the hash tables it probes. UNION branches are one pipeline (DuckDB
runs them as sibling pipelines into the same sink, with no order between them).

Per pipeline:
- work: the summed `operator_timing` of its operators. DuckDB accumulates each thread's operator
  timers into the profile, so the sum is thread-seconds, not wall time: at SF 1 with 2 threads
  the sum is about 1.9× the query latency, with 1 thread about 1.0× (measured with this tool's
  engine version). A hash join's timer covers both its build (sink) and its probe; we split it
  between the build and the probe pipeline in proportion to their input rows.
- tasks: morsels = source rows / ROWS_PER_MORSEL (DuckDB hands a parallel scan one row group
  of 122,880 rows at a time). Stored unrounded at SF 1, so a pipeline over a small table stays
  one task; `QueryTemplate.instantiate` applies the at-least-one.
- memory: the breaker's state, estimated from the profiler's `result_set_size` (bytes of the
  vectors that flowed out of an operator: cardinality × row width): a hash table holds its
  build input plus HASH_ENTRY_OVERHEAD_BYTES per row (hash, chain pointer, directory slot);
  an aggregate its groups plus the same per-group overhead; a sort / window / CTE / delim join
  its whole input plus SORT_ENTRY_OVERHEAD_BYTES per row; a top-n its output; the result its
  rows.

Across scale factors each quantity is fitted as value(sf) = value_sf1 · sf ** exponent by a
least-squares line in log-log space (exponent 1.0 if only one scale factor; clamped to
EXPONENT_RANGE, outside of which a slope is timer noise on microsecond pipelines). Pipelines
correspond across scale factors by position when the plans have the same breakers in the same
order. A query whose breakers differ between scale factors (the optimizer picked another plan,
or folded a filter that is empty at a small scale factor) keeps the plan of the largest scale
factor, with its pipelines scaled by the query's total work and memory slopes; the file's notes
list those queries.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lsched.workloads import engine_costs, params, scalability
from lsched.workloads.engine_costs import fastest_s as fastest
from lsched.workloads.engine_costs import measure_fixed_cost_s
from lsched.workloads.templates import (
    ESTIMATE_RATIO_RANGE,
    PipelineTemplate,
    QueryTemplate,
    ScalabilityModel,
    TemplateSet,
    natural_key,
    write_template_file,
)

SUITES = ("tpch", "ssb", "tpcds")
ROWS_PER_MORSEL = 122_880
"""DuckDB's row-group size: the unit of work a parallel table scan hands to one thread."""
HASH_ENTRY_OVERHEAD_BYTES = 24
"""Per-row hash-table overhead on top of the row's bytes: 8-byte hash, 8-byte chain pointer and
an 8-byte pointer-directory slot at load factor ~1."""
SORT_ENTRY_OVERHEAD_BYTES = 8
"""Per-row overhead of a materialised sort/window/CTE input (sort key pointer / row index)."""
MIN_PIPELINE_WORK_S = 1e-6
"""Floor for a pipeline whose operators all read 0 on the profiler's timer (e.g. a delim scan
into a tiny hash table); keeps work positive without inventing cost."""
EXPONENT_RANGE = (0.0, 2.0)
DEFAULT_REPEATS = 5
"""Profiled runs per query and scale factor; work is the fastest run's (see fastest_run)."""
BYTES_PER_GB = 1e9

TPCDS_QUERY_COUNT = 99


class CalibrationError(ValueError):
    """Calibration cannot run: duckdb or an extension missing, unknown suite or query."""


# --- from a profile to pipelines ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatorCost:
    """What one operator did for a pipeline: its time, and the rows it processed as counted
    (`rows`) and as the optimizer estimated them (`est_rows`)."""

    kind: str
    timing_s: float
    rows: float
    est_rows: float


@dataclass(frozen=True, slots=True)
class MeasuredPipeline:
    """One pipeline of one profiled run, in raw units."""

    operator: str
    parents: tuple[int, ...]
    work_s: float
    source_rows: float
    memory_bytes: float
    table_scans: int
    cost: tuple[OperatorCost, ...] = ()


@dataclass(slots=True)
class _Open:
    """A pipeline still growing upwards from its source."""

    work_s: float = 0.0
    source_rows: float = 0.0
    parents: set[int] = field(default_factory=set)
    table_scans: int = 0
    cost: list[OperatorCost] = field(default_factory=list)

    def merge(self, other: _Open) -> None:
        self.work_s += other.work_s
        self.source_rows += other.source_rows
        self.parents |= other.parents
        self.table_scans += other.table_scans
        self.cost += other.cost

    def charge(self, node: dict[str, Any], share: float = 1.0, inputs: Any = None) -> None:
        """Add `share` of `node`'s time, and of the rows it read from `inputs` (its children
        by default), to this pipeline."""
        timing = _timing(node) * share
        self.work_s += timing
        children = (node.get("children") or []) if inputs is None else inputs
        rows = sum(_rows(c) for c in children)
        est = sum(_est_rows(c) for c in children)
        self.cost.append(OperatorCost(_kind(node), timing, rows * share, est * share))


_AGGREGATES = {
    "HASH_GROUP_BY": "aggregate",
    "PERFECT_HASH_GROUP_BY": "aggregate",
    "UNGROUPED_AGGREGATE": "aggregate",
    "PARTITIONED_AGGREGATE": "aggregate",
    "ORDER_BY": "sort",
    "TOP_N": "top_n",
    "WINDOW": "window",
    "LIMIT": "limit",
    "LIMIT_PERCENT": "limit",
}
"""Single-child breakers: the child pipeline sinks into them, a new pipeline reads them."""
_BUILD_JOINS = {
    "HASH_JOIN": "hash_build",
    "NESTED_LOOP_JOIN": "join_build",
    "PIECEWISE_MERGE_JOIN": "join_build",
    "BLOCKWISE_NL_JOIN": "join_build",
    "CROSS_PRODUCT": "join_build",
    "IE_JOIN": "join_build",
    "ASOF_JOIN": "join_build",
    "POSITIONAL_JOIN": "join_build",
}
"""Joins whose second child is materialised (the build side) before the first streams through."""
_DELIM_JOINS = ("LEFT_DELIM_JOIN", "RIGHT_DELIM_JOIN")
_DELIM_SOURCES = ("DELIM_SCAN", "COLUMN_DATA_SCAN", "CHUNK_SCAN", "DUMMY_SCAN")
"""Sources that, inside a delim join, read what the delim join materialised."""


def _timing(node: dict[str, Any]) -> float:
    return float(node.get("operator_timing") or 0.0)


def _rows(node: dict[str, Any]) -> float:
    return float(node.get("operator_cardinality") or 0.0)


def _bytes(node: dict[str, Any]) -> float:
    return float(node.get("result_set_size") or 0.0)


def _kind(node: dict[str, Any]) -> str:
    return str(node.get("operator_type", ""))


def _est_rows(node: dict[str, Any]) -> float:
    """The optimizer's estimated output rows (the counted ones where it gives none)."""
    value = (node.get("extra_info") or {}).get("Estimated Cardinality")
    try:
        return float(value)
    except (TypeError, ValueError):
        return _rows(node)


class _Splitter:
    """Walks a DuckDB JSON profile and cuts it into pipelines at the breakers."""

    def __init__(self) -> None:
        self.pipelines: list[MeasuredPipeline] = []
        self.ctes: dict[str, int] = {}
        self.delims: list[int] = []

    def close(self, pipeline: _Open, operator: str, memory_bytes: float) -> int:
        self.pipelines.append(
            MeasuredPipeline(
                operator=operator,
                parents=tuple(sorted(pipeline.parents)),
                work_s=max(pipeline.work_s, MIN_PIPELINE_WORK_S),
                source_rows=pipeline.source_rows,
                memory_bytes=memory_bytes,
                table_scans=pipeline.table_scans,
                cost=tuple(pipeline.cost),
            )
        )
        return len(self.pipelines) - 1

    def stream(self, node: dict[str, Any]) -> _Open:
        """The open pipeline that produces `node`'s output (closing breakers below it)."""
        kind = str(node.get("operator_type", ""))
        children = node.get("children") or []
        if not children:
            return self.source(node, kind)
        if kind in _AGGREGATES:
            child = self.stream(children[0])
            child.charge(node)
            operator = _AGGREGATES[kind]
            if operator == "aggregate":
                memory = _bytes(node) + HASH_ENTRY_OVERHEAD_BYTES * _rows(node)
            elif operator in ("top_n", "limit"):
                memory = _bytes(node)
            else:
                memory = _bytes(children[0]) + SORT_ENTRY_OVERHEAD_BYTES * _rows(children[0])
            done = self.close(child, operator, memory)
            return _Open(source_rows=_rows(node), parents={done})
        if kind in _BUILD_JOINS and len(children) == 2:
            return self.join(node, kind, children)
        if kind in _DELIM_JOINS:
            return self.delim_join(node, children)
        if kind == "CTE" and len(children) == 2:
            definition = self.stream(children[0])
            definition.charge(node, inputs=children[:1])
            memory = _bytes(children[0]) + SORT_ENTRY_OVERHEAD_BYTES * _rows(children[0])
            done = self.close(definition, "cte", memory)
            index = str((node.get("extra_info") or {}).get("Table Index", ""))
            self.ctes[index] = done
            self.ctes[""] = done  # fallback for a CTE scan that names no index
            return self.after(done, self.stream(children[1]))
        # Streaming operators (projection, filter, streaming window, ...) and unions: every
        # child streams into the same pipeline.
        pipeline = self.stream(children[0])
        for child in children[1:]:
            pipeline.merge(self.stream(child))
        pipeline.charge(node)
        return pipeline

    def source(self, node: dict[str, Any], kind: str) -> _Open:
        rows = float(node.get("operator_rows_scanned") or 0.0) or _rows(node)
        pipeline = _Open(work_s=_timing(node), source_rows=rows)
        # A base table's size is in the catalogue; other sources read what the optimizer
        # estimated their producer to emit.
        est = rows if kind == "TABLE_SCAN" else _est_rows(node)
        pipeline.cost.append(OperatorCost(kind, _timing(node), rows, est))
        if kind == "TABLE_SCAN":
            pipeline.table_scans = 1
        elif kind == "CTE_SCAN":
            index = str((node.get("extra_info") or {}).get("CTE Index", ""))
            cte = self.ctes.get(index, self.ctes.get(""))
            if cte is not None:
                pipeline.parents.add(cte)
        elif kind in _DELIM_SOURCES and self.delims:
            pipeline.parents.add(self.delims[-1])
        return pipeline

    def join(self, node: dict[str, Any], kind: str, children: list[dict[str, Any]]) -> _Open:
        build_node, probe_node = children[1], children[0]
        if self.delims and build_node.get("operator_type") == "DUMMY_SCAN":
            # The join inside a RIGHT_DELIM_JOIN: its hash table was built by the delim join.
            probe = self.stream(probe_node)
            probe.parents.add(self.delims[-1])
            probe.charge(node, inputs=[probe_node])
            return probe
        build = self.stream(build_node)
        build_rows, probe_rows = _rows(build_node), _rows(probe_node)
        total = build_rows + probe_rows
        build_share = build_rows / total if total > 0 else 0.5
        build.charge(node, build_share, inputs=[build_node])
        memory = _bytes(build_node)
        if kind == "HASH_JOIN":
            memory += HASH_ENTRY_OVERHEAD_BYTES * build_rows
        done = self.close(build, _BUILD_JOINS[kind], memory)
        probe = self.stream(probe_node)
        probe.charge(node, 1.0 - build_share, inputs=[probe_node])
        probe.parents.add(done)
        return probe

    def delim_join(self, node: dict[str, Any], children: list[dict[str, Any]]) -> _Open:
        """[side, join, distinct...]: the side is materialised (and made distinct) first."""
        side = self.stream(children[0])
        side.charge(node, inputs=children[:1])
        for distinct in children[2:]:
            side.charge(distinct)
        memory = _bytes(children[0]) + SORT_ENTRY_OVERHEAD_BYTES * _rows(children[0])
        memory += sum(_bytes(c) + HASH_ENTRY_OVERHEAD_BYTES * _rows(c) for c in children[2:])
        done = self.close(side, "delim_join", memory)
        self.delims.append(done)
        try:
            return self.after(done, self.stream(children[1]))
        finally:
            self.delims.pop()

    def after(self, done: int, pipeline: _Open) -> _Open:
        """DuckDB runs a CTE's or delim join's consumer only once the materialisation is done:
        if no scan below read it (an edge we would otherwise miss), the consumer waits for it."""
        if done not in pipeline.parents and all(done not in p.parents for p in self.pipelines):
            pipeline.parents.add(done)
        return pipeline


def split_pipelines(profile: dict[str, Any]) -> tuple[MeasuredPipeline, ...]:
    """Cut a DuckDB JSON profile (the dict `PRAGMA profiling_output` writes) into pipelines.

    The result is in topological order; the last pipeline is the query's result.
    """
    children = profile.get("children") or []
    if len(children) != 1:
        raise CalibrationError(
            f"profile: children: expected one root operator, got {len(children)}"
        )
    splitter = _Splitter()
    top = splitter.stream(children[0])
    splitter.close(top, "result", _bytes(children[0]))
    return tuple(splitter.pipelines)


# --- from measurements to a template --------------------------------------------------------


def _signature(pipelines: Sequence[MeasuredPipeline]) -> tuple[tuple[Any, ...], ...]:
    return tuple((p.operator, p.parents, p.table_scans) for p in pipelines)


def _breakers(pipelines: Sequence[MeasuredPipeline]) -> tuple[str, ...]:
    return tuple(p.operator for p in pipelines)


def fit_power_law(scale_factors: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(value at sf 1, exponent) of value = a · sf ** b, least squares in log-log space.

    With one scale factor the exponent is 1.0 (as for all-zero values, which stay zero); the
    exponent is clamped to EXPONENT_RANGE and
    the line then passes through the centroid of the measured points.
    """
    if all(v <= 0 for v in values):
        return 0.0, 1.0
    floor = 1e-12
    xs = [math.log(sf) for sf in scale_factors]
    ys = [math.log(max(v, floor)) for v in values]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - x_mean) ** 2 for x in xs)
    if len(xs) < 2 or spread == 0:
        slope = 1.0
    else:
        slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / spread
    slope = min(max(slope, EXPONENT_RANGE[0]), EXPONENT_RANGE[1])
    return math.exp(y_mean - slope * x_mean), slope


def fastest_run(runs: Sequence[Sequence[MeasuredPipeline]]) -> tuple[MeasuredPipeline, ...]:
    """Per-pipeline minimum work over repeated runs of the same plan.

    The minimum, not the median: other processes on the machine only ever add time to a
    timer, so the fastest observation is the least disturbed one.
    """
    shapes = [_signature(r) for r in runs]
    common = max(set(shapes), key=shapes.count)
    same = [r for r, shape in zip(runs, shapes, strict=True) if shape == common]
    first = same[0]
    return tuple(
        MeasuredPipeline(
            operator=p.operator,
            parents=p.parents,
            work_s=min(r[i].work_s for r in same),
            source_rows=statistics.median(r[i].source_rows for r in same),
            memory_bytes=statistics.median(r[i].memory_bytes for r in same),
            table_scans=p.table_scans,
            cost=p.cost,
        )
        for i, p in enumerate(first)
    )


def fit_template(
    name: str,
    suite: str,
    measured: dict[float, tuple[MeasuredPipeline, ...]],
    latency_s: Sequence[float] = (),
) -> tuple[QueryTemplate, bool]:
    """A template from one plan per scale factor; the flag says whether each pipeline was fitted
    on its own (True) or the breakers differed and the query's total slopes were used (False)."""
    sfs = sorted(measured)
    plans = [measured[sf] for sf in sfs]
    # Pipelines correspond by position when the plans have the same breakers in the same order;
    # a join order that differs a little (other parents) still matches. Parents and scans come
    # from the largest scale factor's plan.
    per_pipeline = all(_breakers(plan) == _breakers(plans[0]) for plan in plans)
    reference = plans[-1]
    if not per_pipeline:
        _, work_exp = fit_power_law(sfs, [sum(p.work_s for p in plan) for plan in plans])
        _, mem_exp = fit_power_law(sfs, [sum(p.memory_bytes for p in plan) for plan in plans])
        _, rows_exp = fit_power_law(sfs, [sum(p.source_rows for p in plan) for plan in plans])
    pipelines = []
    for i, ref in enumerate(reference):
        if per_pipeline:
            work, work_exp = fit_power_law(sfs, [plan[i].work_s for plan in plans])
            memory, mem_exp = fit_power_law(sfs, [plan[i].memory_bytes for plan in plans])
            rows, _ = fit_power_law(sfs, [max(plan[i].source_rows, 1.0) for plan in plans])
        else:
            sf = sfs[-1]
            work = ref.work_s * sf**-work_exp
            memory = ref.memory_bytes * sf**-mem_exp
            rows = max(ref.source_rows, 1.0) * sf**-rows_exp
        pipelines.append(
            PipelineTemplate(
                index=i,
                parents=ref.parents,
                operator=ref.operator,
                work_s_sf1=work,
                work_exponent=work_exp,
                tasks_sf1=rows / ROWS_PER_MORSEL,
                memory_gb_sf1=memory / BYTES_PER_GB,
                memory_exponent=mem_exp,
                table_scans=ref.table_scans,
            )
        )
    template = QueryTemplate(
        name=name, suite=suite, pipelines=tuple(pipelines), latency_s=tuple(latency_s)
    )
    return template, per_pipeline


# --- DuckDB ---------------------------------------------------------------------------------


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise CalibrationError(
            "calibrate: duckdb is not installed; pip install 'lsched[calibrate]'"
        ) from exc
    return duckdb


def _load_extension(con: Any, name: str) -> None:
    """Load tpch/tpcds offline from the duckdb-extension-<name> pip package, else by name."""
    duckdb = _duckdb()
    try:
        package = resources.files(f"duckdb_extension_{name}")
        path = package / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
        if path.is_file():
            con.execute(f"LOAD '{path}'")
            return
    except ModuleNotFoundError:
        pass
    try:
        con.execute(f"LOAD {name}")
    except duckdb.Error as exc:
        raise CalibrationError(
            f"calibrate: DuckDB extension {name!r} not available offline; "
            f"pip install duckdb-extension-{name}=={duckdb.__version__}"
        ) from exc


SSB_SCHEMA_SQL = (
    """CREATE TABLE customer_ssb AS SELECT
        c_custkey, c_name, c_address,
        rpad(left(n_name, 9), 9, ' ') || (c_custkey % 10)::VARCHAR AS c_city,
        n_name AS c_nation, r_name AS c_region, c_phone, c_mktsegment
    FROM customer JOIN nation ON c_nationkey = n_nationkey
                  JOIN region ON n_regionkey = r_regionkey""",
    """CREATE TABLE supplier_ssb AS SELECT
        s_suppkey, s_name, s_address,
        rpad(left(n_name, 9), 9, ' ') || (s_suppkey % 10)::VARCHAR AS s_city,
        n_name AS s_nation, r_name AS s_region, s_phone
    FROM supplier JOIN nation ON s_nationkey = n_nationkey
                  JOIN region ON n_regionkey = r_regionkey""",
    """CREATE TABLE part_ssb AS SELECT
        p_partkey, p_name,
        'MFGR#' || substr(p_mfgr, 14, 1) AS p_mfgr,
        'MFGR#' || substr(p_brand, 7, 2) AS p_category,
        'MFGR#' || substr(p_brand, 7, 2) || (1 + p_partkey % 40)::VARCHAR AS p_brand1,
        split_part(p_name, ' ', 1) AS p_color, p_type, p_size, p_container
    FROM part""",
    """CREATE TABLE date_ssb AS SELECT
        (year(d) * 10000 + month(d) * 100 + day(d))::INTEGER AS d_datekey,
        strftime(d, '%B %-d, %Y') AS d_date,
        dayname(d) AS d_dayofweek, monthname(d) AS d_month,
        year(d)::INTEGER AS d_year,
        (year(d) * 100 + month(d))::INTEGER AS d_yearmonthnum,
        strftime(d, '%b%Y') AS d_yearmonth,
        (isodow(d) % 7 + 1)::INTEGER AS d_daynuminweek,
        day(d)::INTEGER AS d_daynuminmonth, dayofyear(d)::INTEGER AS d_daynuminyear,
        month(d)::INTEGER AS d_monthnuminyear,
        (1 + (dayofyear(d) - 1) // 7)::INTEGER AS d_weeknuminyear,
        CASE WHEN month(d) IN (12, 1, 2) THEN 'Winter' WHEN month(d) IN (3, 4, 5) THEN 'Spring'
             WHEN month(d) IN (6, 7, 8) THEN 'Summer' ELSE 'Fall' END AS d_sellingseason,
        (isodow(d) = 7)::INTEGER AS d_lastdayinweekfl,
        (d = last_day(d))::INTEGER AS d_lastdayinmonthfl,
        0 AS d_holidayfl, (isodow(d) <= 5)::INTEGER AS d_weekdayfl
    FROM (SELECT unnest(generate_series(DATE '1992-01-01', DATE '1998-12-31',
                                        INTERVAL 1 DAY))::DATE AS d)""",
    """CREATE TABLE lineorder AS SELECT
        l_orderkey AS lo_orderkey, l_linenumber AS lo_linenumber,
        o_custkey AS lo_custkey, l_partkey AS lo_partkey, l_suppkey AS lo_suppkey,
        (year(o_orderdate) * 10000 + month(o_orderdate) * 100 + day(o_orderdate))::INTEGER
            AS lo_orderdate,
        o_orderpriority AS lo_orderpriority, o_shippriority AS lo_shippriority,
        l_quantity::INTEGER AS lo_quantity, l_extendedprice AS lo_extendedprice,
        o_totalprice AS lo_ordtotalprice, (l_discount * 100)::INTEGER AS lo_discount,
        (l_extendedprice * (1 - l_discount))::DECIMAL(15, 2) AS lo_revenue,
        (ps_supplycost * l_quantity)::DECIMAL(15, 2) AS lo_supplycost,
        (l_tax * 100)::INTEGER AS lo_tax,
        (year(l_commitdate) * 10000 + month(l_commitdate) * 100 + day(l_commitdate))::INTEGER
            AS lo_commitdate,
        l_shipmode AS lo_shipmode
    FROM lineitem JOIN orders ON l_orderkey = o_orderkey
                  JOIN partsupp ON l_partkey = ps_partkey AND l_suppkey = ps_suppkey""",
    # The SSB names; the TPC-H originals go so that the queries can only read SSB tables.
    "DROP TABLE lineitem",
    "DROP TABLE orders",
    "DROP TABLE partsupp",
    "DROP TABLE customer",
    "DROP TABLE supplier",
    "DROP TABLE part",
    "DROP TABLE nation",
    "DROP TABLE region",
    "ALTER TABLE customer_ssb RENAME TO customer",
    "ALTER TABLE supplier_ssb RENAME TO supplier",
    "ALTER TABLE part_ssb RENAME TO part",
    'ALTER TABLE date_ssb RENAME TO "date"',
)
"""The Star Schema Benchmark (O'Neil et al., 2009) derived from TPC-H data as SSB's dbgen does:
lineorder = lineitem ⋈ orders (with partsupp for the supply cost), 7 years of dates."""

_SSB_Q1 = """SELECT sum(lo_extendedprice * lo_discount) AS revenue
FROM lineorder, "date" WHERE lo_orderdate = d_datekey AND {}"""
_SSB_Q2 = """SELECT sum(lo_revenue), d_year, p_brand1
FROM lineorder, "date", part, supplier
WHERE lo_orderdate = d_datekey AND lo_partkey = p_partkey AND lo_suppkey = s_suppkey AND {}
GROUP BY d_year, p_brand1 ORDER BY d_year, p_brand1"""
_SSB_Q3 = """SELECT {0}, d_year, sum(lo_revenue) AS revenue
FROM customer, lineorder, supplier, "date"
WHERE lo_custkey = c_custkey AND lo_suppkey = s_suppkey AND lo_orderdate = d_datekey AND {1}
GROUP BY {0}, d_year ORDER BY d_year ASC, revenue DESC"""
_SSB_Q4 = """SELECT d_year, {0}, sum(lo_revenue - lo_supplycost) AS profit
FROM "date", customer, supplier, part, lineorder
WHERE lo_custkey = c_custkey AND lo_suppkey = s_suppkey AND lo_partkey = p_partkey
  AND lo_orderdate = d_datekey AND {1}
GROUP BY d_year, {0} ORDER BY d_year, {0}"""
_UK = (
    "(c_city = 'UNITED KI1' OR c_city = 'UNITED KI5')"
    " AND (s_city = 'UNITED KI1' OR s_city = 'UNITED KI5')"
)
SSB_QUERIES = {
    "1.1": _SSB_Q1.format("d_year = 1993 AND lo_discount BETWEEN 1 AND 3 AND lo_quantity < 25"),
    "1.2": _SSB_Q1.format(
        "d_yearmonthnum = 199401 AND lo_discount BETWEEN 4 AND 6 AND lo_quantity BETWEEN 26 AND 35"
    ),
    "1.3": _SSB_Q1.format(
        "d_weeknuminyear = 6 AND d_year = 1994 AND lo_discount BETWEEN 5 AND 7"
        " AND lo_quantity BETWEEN 26 AND 35"
    ),
    "2.1": _SSB_Q2.format("p_category = 'MFGR#12' AND s_region = 'AMERICA'"),
    "2.2": _SSB_Q2.format("p_brand1 BETWEEN 'MFGR#2221' AND 'MFGR#2228' AND s_region = 'ASIA'"),
    "2.3": _SSB_Q2.format("p_brand1 = 'MFGR#2239' AND s_region = 'EUROPE'"),
    "3.1": _SSB_Q3.format(
        "c_nation, s_nation",
        "c_region = 'ASIA' AND s_region = 'ASIA' AND d_year >= 1992 AND d_year <= 1997",
    ),
    "3.2": _SSB_Q3.format(
        "c_city, s_city",
        "c_nation = 'UNITED STATES' AND s_nation = 'UNITED STATES'"
        " AND d_year >= 1992 AND d_year <= 1997",
    ),
    "3.3": _SSB_Q3.format("c_city, s_city", f"{_UK} AND d_year >= 1992 AND d_year <= 1997"),
    "3.4": _SSB_Q3.format("c_city, s_city", f"{_UK} AND d_yearmonth = 'Dec1997'"),
    "4.1": _SSB_Q4.format(
        "c_nation",
        "c_region = 'AMERICA' AND s_region = 'AMERICA'"
        " AND (p_mfgr = 'MFGR#1' OR p_mfgr = 'MFGR#2')",
    ),
    "4.2": _SSB_Q4.format(
        "s_nation, p_category",
        "c_region = 'AMERICA' AND s_region = 'AMERICA' AND (d_year = 1997 OR d_year = 1998)"
        " AND (p_mfgr = 'MFGR#1' OR p_mfgr = 'MFGR#2')",
    ),
    "4.3": _SSB_Q4.format(
        "s_city, p_brand1",
        "c_region = 'AMERICA' AND s_nation = 'UNITED STATES' AND (d_year = 1997 OR d_year = 1998)"
        " AND p_category = 'MFGR#14'",
    ),
}
"""The 13 published SSB queries (flights 1-4) with their standard constants."""


def _prepare(con: Any, suite: str, scale_factor: float) -> dict[str, str]:
    """Generate the suite's data at `scale_factor`; return template name -> SQL."""
    if suite in ("tpch", "ssb"):
        _load_extension(con, "tpch")
        con.execute(f"CALL dbgen(sf={scale_factor!r})")
        if suite == "tpch":
            rows = con.execute("SELECT query_nr, query FROM tpch_queries()").fetchall()
            return {f"tpch-q{n}": sql for n, sql in rows}
        for statement in SSB_SCHEMA_SQL:
            con.execute(statement)
        return {f"ssb-q{n}": sql for n, sql in SSB_QUERIES.items()}
    _load_extension(con, "tpcds")
    con.execute(f"CALL dsdgen(sf={scale_factor!r})")
    rows = con.execute("SELECT query_nr, query FROM tpcds_queries()").fetchall()
    return {f"tpcds-q{n}": sql for n, sql in rows}


def _query_names(suite: str) -> list[str]:
    if suite == "tpch":
        return [f"tpch-q{n}" for n in range(1, 23)]
    if suite == "ssb":
        return [f"ssb-q{n}" for n in SSB_QUERIES]
    return [f"tpcds-q{n}" for n in range(1, TPCDS_QUERY_COUNT + 1)]


def resolve_queries(suite: str, queries: Sequence[str] | None) -> list[str]:
    """Template names for `queries` given as "tpch-q3", "q3" or "3" (all of the suite if None)."""
    if suite not in SUITES:
        raise CalibrationError(f"calibrate: suite: unknown suite {suite!r}; one of {list(SUITES)}")
    known = _query_names(suite)
    if queries is None:
        return known
    chosen = []
    for query in queries:
        text = str(query).strip()
        name = text if text.startswith(f"{suite}-") else f"{suite}-q{text.removeprefix('q')}"
        if name not in known:
            raise CalibrationError(
                f"calibrate: queries: unknown {suite} query {query!r} (e.g. {known[0]!r})"
            )
        if name not in chosen:
            chosen.append(name)
    return sorted(chosen, key=natural_key)


def _profile_suite(
    con: Any, sql: dict[str, str], names: Sequence[str], profile_path: Path, repeats: int
) -> dict[str, tuple[MeasuredPipeline, ...]]:
    """Warm every query up, then `repeats` profiled passes over all of them.

    Passes go round the whole suite rather than repeating one query back to back, so that a
    burst of load from elsewhere spoils one run of many queries, not every run of one.
    Returns name -> fastest-run pipelines.
    """
    for name in names:
        con.execute(sql[name]).fetchall()
    con.execute("PRAGMA enable_profiling='json'")
    con.execute("PRAGMA profiling_mode='detailed'")
    con.execute(f"PRAGMA profiling_output='{profile_path}'")
    runs: dict[str, list[tuple[MeasuredPipeline, ...]]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            con.execute(sql[name]).fetchall()
            profile = json.loads(profile_path.read_text(encoding="utf-8"))
            runs[name].append(split_pipelines(profile))
    con.execute("PRAGMA disable_profiling")
    return {name: fastest_run(runs[name]) for name in names}


THREAD_SWITCH_WARMUP_S = 1.0
"""Seconds of untimed passes over the queries after each `SET threads` to a new count, before
the timed pass (whole passes, at least one). A new count restarts DuckDB's thread pool and the
next queries run slow while it warms. Measured 2026-12-07 (TPC-H, 2 threads, in memory, a
1-thread pass and `SET threads = 2` before each arm; min of 8-10): at SF 1, Q2 15.3 ms right
after the switch against 9.9 ms with none (8.9 ms after setting the count it had), Q2-Q7
1.1-1.3x their steady time and the queries ~0.3 s of work later 1.0x; at SF 0.1, Q2 and Q3
1.8-2.1x right after it, still 1.10-1.17x (Q2-Q4) after one whole pass (0.19 s), up to 1.16x
after 0.5 s and none above 1.0x after 1 s. Timing passes that began right at a switch put the
restart into every file calibrated before 2026-12-07 (TPC-H Q2 at SF 1, 2 threads: 15.5 ms
calibrated; 12.0 ms steady and 15.8 ms right after a switch, the same day)."""


def _time_suite(
    con: Any, sql: dict[str, str], names: Sequence[str], thread_counts: Sequence[int], repeats: int
) -> dict[str, dict[int, float]]:
    """Fastest unprofiled latency of each query at each thread count (profiling off: its
    timers slow queries down, ~1.5× on TPC-H SF 1). Passes interleave queries and thread
    counts so that drift on a shared machine spreads over all of them; after each change of
    thread count, THREAD_SWITCH_WARMUP_S of untimed passes let the new thread pool warm."""
    best: dict[str, dict[int, float]] = {name: {} for name in names}
    current = None
    for _ in range(repeats):
        for threads in thread_counts:
            if threads != current:
                con.execute(f"SET threads = {int(threads)}")
                current = threads
                warming = time.perf_counter()
                while True:
                    for name in names:
                        con.execute(sql[name]).fetchall()
                    if time.perf_counter() - warming >= THREAD_SWITCH_WARMUP_S:
                        break
            for name in names:
                start = time.perf_counter()
                con.execute(sql[name]).fetchall()
                elapsed = time.perf_counter() - start
                previous = best[name].get(threads, math.inf)
                best[name][threads] = min(previous, elapsed)
    return best


PARAMETER_DRAWS = 6
"""Parameter draws measured per template (the issue's DuckDB study used 6 per template)."""
PARAMETER_SEED = 20_240_614
"""Seed of the calibration's parameter draws: draw k of a template is `parameter_sql(name, sql,
k)`, the same in every recalibration and in the real-engine runner."""


def parameter_sql(name: str, base_sql: str, draw: int) -> str:
    """The SQL of a template's measured parameter draw `draw` (0-based); -1: the defaults.

    Each template has its own stream, `default_rng([PARAMETER_SEED, crc32(name)])`, so a draw
    does not depend on which other templates were calibrated."""
    if draw < 0:
        return base_sql
    rng = np.random.default_rng([PARAMETER_SEED, zlib.crc32(name.encode("utf-8"))])
    text = base_sql
    for _ in range(draw + 1):
        text = params.draw_sql(name, base_sql, rng)
    return text


def _measure_parameters(
    con: Any,
    suite: str,
    sql: dict[str, str],
    names: Sequence[str],
    profile_path: Path,
    draws: int,
) -> dict[str, tuple[tuple[float, ...], bool]]:
    """Per template: each draw's single-thread unprofiled latency over the default parameters'
    timed right beside it (fastest of two runs each, so drift on a shared machine cancels),
    and whether any draw's plan has other pipeline breakers."""
    if suite not in params.SUITES_WITH_PARAMETERS:
        return {}
    con.execute("SET threads = 1")

    out: dict[str, tuple[tuple[float, ...], bool]] = {}
    for name in names:
        base = _breakers(_profiled(con, sql[name], profile_path))
        ratios = []
        changed = False
        for draw in range(draws):
            text = parameter_sql(name, sql[name], draw)
            changed |= _breakers(_profiled(con, text, profile_path)) != base
            ratios.append(fastest(con, text, 2) / fastest(con, sql[name], 2))
        out[name] = (tuple(ratios), changed)
    return out


def _profiled(con: Any, text: str, profile_path: Path) -> tuple[MeasuredPipeline, ...]:
    return split_pipelines(engine_costs.profiled(con, text, profile_path))


@dataclass(frozen=True, slots=True)
class QueryMeasurement:
    """One query at one scale factor: its profiled pipelines (single-threaded, so operator time
    is work) and its unprofiled latency at each thread count."""

    pipelines: tuple[MeasuredPipeline, ...]
    latency_s: Mapping[int, float]
    parameter_work: tuple[float, ...] = ()
    """Relative single-thread latency of parameter draws (see _measure_parameters)."""
    plan_changes: bool = False


def work_correction(measurement: QueryMeasurement, warmup_s: float) -> float:
    """Unprofiled over profiled single-thread time: what a query's profiled work is scaled by,
    so that the simulator's 1-thread latency (work plus one warm-up per pipeline) equals the
    measured latency without the profiler."""
    profiled = sum(p.work_s for p in measurement.pipelines)
    unprofiled = measurement.latency_s[min(measurement.latency_s)]
    unprofiled -= warmup_s * len(measurement.pipelines)
    return max(unprofiled, MIN_PIPELINE_WORK_S) / profiled


def _scaled(pipelines: Sequence[MeasuredPipeline], factor: float) -> tuple[MeasuredPipeline, ...]:
    return tuple(
        replace(
            p,
            work_s=p.work_s * factor,
            cost=tuple(replace(c, timing_s=c.timing_s * factor) for c in p.cost),
        )
        for p in pipelines
    )


def fit_cost_model(measured: Sequence[Sequence[MeasuredPipeline]]) -> dict[str, float]:
    """Seconds per row processed, per operator type ("*": all together): the cost model that
    turns the optimizer's estimated rows into estimated work."""
    time_by: dict[str, float] = {}
    rows_by: dict[str, float] = {}
    for pipelines in measured:
        for p in pipelines:
            for c in p.cost:
                time_by[c.kind] = time_by.get(c.kind, 0.0) + c.timing_s
                rows_by[c.kind] = rows_by.get(c.kind, 0.0) + c.rows
    total_rows = sum(rows_by.values())
    model = {"*": sum(time_by.values()) / total_rows if total_rows else 0.0}
    for kind, rows in rows_by.items():
        if rows > 0:
            model[kind] = time_by[kind] / rows
    return model


def estimate_ratios(
    pipelines: Sequence[MeasuredPipeline], cost_model: Mapping[str, float]
) -> tuple[float, ...]:
    """Per pipeline: the cost model applied to the optimizer's estimated rows, over the
    measured work; clipped to ESTIMATE_RATIO_RANGE."""
    low, high = ESTIMATE_RATIO_RANGE
    ratios = []
    for p in pipelines:
        estimate = sum(cost_model.get(c.kind, cost_model["*"]) * c.est_rows for c in p.cost)
        ratio = max(estimate, MIN_PIPELINE_WORK_S) / p.work_s
        ratios.append(min(max(ratio, low), high))
    return tuple(ratios)


def fit_suite(
    suite: str,
    measured: Mapping[str, Mapping[float, QueryMeasurement]],
    warmup_s: float,
    *,
    large_scale: Mapping[float, Mapping[str, float]] | None = None,
    modelled_large_scale: ScalabilityModel | None = None,
) -> tuple[TemplateSet, dict[str, Any]]:
    """Templates from measurements (the pure half of calibration, testable without DuckDB).

    `large_scale` gives measured serial fractions per scale factor and template (TPC-H's
    1→24-thread table); `modelled_large_scale` an operator-type model for those scale factors
    (for suites without such a measurement). Returns the set and a report of the fits.
    """
    names = list(measured)
    sfs = sorted({sf for per_sf in measured.values() for sf in per_sf})
    corrections = {
        name: {sf: work_correction(m, warmup_s) for sf, m in measured[name].items()}
        for name in names
    }
    corrected = {
        name: {sf: _scaled(m.pipelines, corrections[name][sf]) for sf, m in measured[name].items()}
        for name in names
    }
    top_threads = max(max(m.latency_s) for per_sf in measured.values() for m in per_sf.values())
    templates: dict[str, QueryTemplate] = {}
    refitted = []
    for name in names:
        latency = [measured[name][sf].latency_s[top_threads] for sf in sfs]
        template, per_pipeline = fit_template(name, suite, corrected[name], latency)
        largest = measured[name][sfs[-1]]
        templates[name] = replace(
            template, scale_factors=tuple(sfs), parameter_work=largest.parameter_work
        )
        if not per_pipeline:
            refitted.append(name)

    # Estimates: one cost model for the suite, applied to each plan's estimated rows.
    cost_model = fit_cost_model([p for per_sf in corrected.values() for p in per_sf.values()])
    for name in names:
        template = templates[name]
        per_sf = []
        for sf in sfs:
            plan = corrected[name][sf]
            if name in refitted:
                plan = corrected[name][sfs[-1]]
            per_sf.append(estimate_ratios(plan, cost_model))
        pipelines = tuple(
            replace(p, estimate_ratio=tuple(r[i] for r in per_sf))
            for i, p in enumerate(template.pipelines)
        )
        templates[name] = replace(template, pipelines=pipelines)

    # Scalability: the operator shape at large scale, then each query's level.
    large: dict[float, dict[str, float]] = {}
    operator_models: dict[float, dict[str, float]] = {}
    report: dict[str, Any] = {"cost_model_s_per_row": cost_model}
    if large_scale:
        for sf, fractions in sorted(large_scale.items()):
            known = [n for n in names if n in fractions]
            shares = [scalability.work_shares(templates[n], sf) for n in known]
            values = [fractions[n] for n in known]
            operator_models[sf] = scalability.fit_operator_model(shares, values)
            predicted = scalability.leave_one_out(shares, values)
            errors = [abs(p - v) for p, v in zip(predicted, values, strict=True)]
            report[f"operator_model_sf{sf:g}_leave_one_out"] = {
                "queries": len(values),
                "median_abs_error": statistics.median(errors) if errors else None,
                "correlation": _correlation(predicted, values),
            }
            large[sf] = {
                n: fractions.get(n, scalability.predict(operator_models[sf], shares_of))
                for n in names
                for shares_of in [scalability.work_shares(templates[n], sf)]
            }
    elif modelled_large_scale is not None:
        for k, sf in enumerate(modelled_large_scale.scale_factors):
            if sf <= sfs[-1]:
                continue
            model = {op: v[k] for op, v in modelled_large_scale.by_operator.items()}
            operator_models[sf] = model
            large[sf] = {
                n: scalability.predict(model, scalability.work_shares(templates[n], sf))
                for n in names
            }
    shape_model = operator_models[min(operator_models)] if operator_models else {"*": 1.0}
    scalability_sfs = tuple(sorted(set(sfs) | set(large)))
    levels: dict[str, dict[float, float]] = {}
    uniform_shape: dict[str, list[float]] = {}
    for name in names:
        template = templates[name]
        levels[name] = {}
        fractions_by_sf = []
        for sf in scalability_sfs:
            shape = scalability.pipeline_shape(template, shape_model, sf)
            if sf in large:
                level = large[sf][name]
                fractions = np.minimum(level * shape, 1.0)
            else:
                fractions, level, uniform = scalability.fit_local_fractions(
                    template, sf, shape, measured[name][sf].latency_s, warmup_s
                )
                if uniform:
                    uniform_shape.setdefault(name, []).append(sf)
            levels[name][sf] = level
            fractions_by_sf.append(fractions)
        pipelines = tuple(
            replace(p, serial_fraction=tuple(float(f[i]) for f in fractions_by_sf))
            for i, p in enumerate(template.pipelines)
        )
        templates[name] = replace(
            template, pipelines=pipelines, scalability_scale_factors=scalability_sfs
        )
    # The file's own operator model, at every scale factor, for templates measured without
    # scalability (a user's file): fitted on the local levels, or carried over at large scale.
    by_operator: dict[str, list[float]] = {}
    per_sf_models = []
    for sf in scalability_sfs:
        if sf in operator_models:
            per_sf_models.append(operator_models[sf])
        else:
            shares = [scalability.work_shares(templates[n], sf) for n in names]
            per_sf_models.append(
                scalability.fit_operator_model(shares, [levels[n][sf] for n in names])
            )
    operators = sorted({op for model in per_sf_models for op in model})
    for op in operators:
        by_operator[op] = [model.get(op, model["*"]) for model in per_sf_models]
    report["serial_fraction_levels"] = levels
    report["serial_fraction_uniform_shape"] = uniform_shape
    report["parameter_plan_changes"] = sorted(n for n in names if measured[n][sfs[-1]].plan_changes)
    report["work_correction"] = corrections
    notes = _notes(suite, names, sfs, refitted)
    template_set = TemplateSet(
        suite=suite,
        engine="duckdb",
        engine_version="",
        scale_factors=tuple(sfs),
        threads=1,
        templates=templates,
        notes=notes,
        scalability_scale_factors=scalability_sfs,
        scalability_model=ScalabilityModel(
            scalability_sfs, {op: tuple(v) for op, v in by_operator.items()}
        ),
        engine_costs={"warmup_s": warmup_s},
    )
    return template_set, report


def _correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3 or np.std(xs) == 0 or np.std(ys) == 0:
        return None
    return float(np.corrcoef(xs, ys)[0, 1])


def refit_local_fractions(template_set: TemplateSet) -> tuple[TemplateSet, dict[str, list[float]]]:
    """`fit_suite`'s fallback to a uniform shape applied to a written file from its own
    2-thread latencies: where `scalability.fit_local_fractions` picks the uniform shape at a
    measured scale factor, its fractions replace the stored ones; elsewhere the file already
    holds the operator-shape fit (to its rounding) and keeps it. So a fitting fix reaches a
    file without re-timing the engine, which drifts (a recalibration moves every template),
    and a refitted file refits to itself. The shape comes from the file's operator model at
    its first large scale factor, as in `fit_suite`. Returns the set and, per template, the
    scale factors fitted uniformly. Only for files timed at 1 and 2 threads: a file keeps the
    latency at the most threads."""
    counts = list(template_set.calibration.get("thread_counts", []))
    if counts != [1, 2]:
        raise CalibrationError(
            f"refit: calibration.thread_counts: needs [1, 2] (the file keeps only the latency "
            f"at the most threads), got {counts}"
        )
    model = template_set.scalability_model
    large = [
        sf for sf in template_set.scalability_scale_factors if sf > template_set.scale_factors[-1]
    ]
    if model is None or not large or large[0] not in model.scale_factors:
        raise CalibrationError("refit: scalability_model: needs a large-scale operator model")
    column = model.scale_factors.index(large[0])
    shape_model = {op: values[column] for op, values in model.by_operator.items()}
    warmup_s = template_set.engine_costs["warmup_s"]
    templates: dict[str, QueryTemplate] = {}
    uniform_shape: dict[str, list[float]] = {}
    for name, template in template_set.templates.items():
        per_pipeline = [list(p.serial_fraction) for p in template.pipelines]
        for i, sf in enumerate(template_set.scale_factors):
            shape = scalability.pipeline_shape(template, shape_model, sf)
            fractions, _, uniform = scalability.fit_local_fractions(
                template, sf, shape, {2: template.latency_s[i]}, warmup_s
            )
            if not uniform:
                continue
            uniform_shape.setdefault(name, []).append(sf)
            column_at = template_set.scalability_scale_factors.index(sf)
            for k, fraction in enumerate(fractions):
                per_pipeline[k][column_at] = float(fraction)
        pipelines = tuple(
            replace(p, serial_fraction=tuple(per_pipeline[k]))
            for k, p in enumerate(template.pipelines)
        )
        templates[name] = replace(template, pipelines=pipelines)
    calibration = dict(template_set.calibration)  # a key kept keeps its place: a file's refit
    if uniform_shape:  # of itself is the same bytes, wherever its calibration wrote the key
        calibration["serial_fraction_uniform_shape"] = uniform_shape
    else:
        calibration.pop("serial_fraction_uniform_shape", None)
    refitted = replace(template_set, templates=templates, calibration=calibration)
    return refitted, uniform_shape


def remeasure_interference(template_set: TemplateSet) -> TemplateSet:
    """The file with its co-run interference measured again on this machine
    (`engine_costs.measure_interference` at its largest scale factor, every template), the
    rest untouched: the one engine cost that the duckdb preset reads and whose measurement
    changed (2026-12-04), without re-timing every template, which drifts. Only for the suite
    whose file holds the engine costs (ENGINE_COST_SUITE)."""
    from functools import partial

    suite = template_set.suite
    if suite != ENGINE_COST_SUITE:
        raise CalibrationError(
            f"interference: suite: the duckdb preset reads the engine costs of the "
            f"{ENGINE_COST_SUITE} file, not {suite!r}"
        )
    scale_factor = max(template_set.scale_factors)
    names = sorted(template_set.templates, key=natural_key)
    con = _duckdb().connect()
    try:
        sql = _prepare(con, suite, 0.01)  # the queries' text: the same at every scale factor
    finally:
        con.close()
    setup = partial(engine_costs.single_thread_connection, suite, scale_factor)
    pairs = engine_costs.measure_interference(setup, sql, names)
    costs = {**template_set.engine_costs, "interference": engine_costs.interference_from(pairs)}
    calibration = {
        **template_set.calibration,
        "interference_runs": [[p.measured, p.beside, round(p.slowdown, 3)] for p in pairs],
        "interference_measured": {
            "command": f"lsched calibrate {suite} --interference FILE",
            "scale_factor": scale_factor,
            "date": time.strftime("%Y-%m-%d"),
        },
    }
    return replace(template_set, engine_costs=costs, calibration=calibration)


def _notes(suite: str, names: Sequence[str], sfs: Sequence[float], refitted: Sequence[str]) -> str:
    sf_list = ", ".join(f"{s:g}" for s in sfs)
    return (
        f"Measured by lsched calibrate: {len(names)} {suite} queries at scale factors {sf_list}. "
        f"work = summed operator_timing of the fastest single-threaded profiled run, scaled per "
        f"query so that work plus one warm-up per pipeline equals the unprofiled 1-thread "
        f"latency; tasks = source rows / {ROWS_PER_MORSEL}; memory = breaker input (or groups) "
        f"bytes from result_set_size plus per-row overhead; latency_s = fastest unprofiled run "
        f"at the most threads measured. serial_fraction: per pipeline at each of "
        f"scalability_scale_factors: at the measured scale factors, the level that makes the "
        f"simulated isolated latency match the unprofiled latency at every thread count, spread "
        f"over pipelines by the operator model (uniformly where that fits the measurement "
        f"better: serial_fraction_uniform_shape in calibration); beyond them, the "
        f"1-to-24-thread measurement (TPC-H) or the operator model. estimate_ratio: the "
        f"optimizer's estimated rows through a per-operator-type seconds-per-row cost model "
        f"fitted on the suite, over the measured work. Exponents: log-log fit per pipeline, "
        f"matched by position across scale factors"
        + (
            f"; breakers differed across scale factors for {', '.join(refitted)}, which keep the "
            f"largest scale factor's plan scaled by the query's total slopes."
            if refitted
            else "."
        )
    )


LARGE_SCALE_FACTORS = (100.0, 500.0)
"""Scale factors of the 1→24-thread table used for large-scale serial fractions. SF 1000 is
left out: it lacks 5 queries, and its 12→24-thread doubling fits the operator model worse than
chance (leave-one-out correlation −0.6 against +0.4 to +0.8 at SF 100 and 500)."""


ENGINE_COST_SUITE = "tpch"
"""The suite whose calibration also measures the engine's costs (spilling, co-run
interference, memory limit) at its largest scale factor: the `duckdb` preset reads them there."""


def _measure_engine(
    con: Any,
    suite: str,
    scale_factor: float,
    sql: Mapping[str, str],
    names: Sequence[str],
    threads: int,
    profile_path: Path,
) -> dict[str, Any]:
    """Spill slow-down, co-run interference and DuckDB's memory limit, with the raw figures."""
    from functools import partial

    out: dict[str, Any] = {"log": []}
    limit = str(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    out["memory_limit_gb"] = engine_costs.parse_size_gb(limit)
    spills = engine_costs.measure_spill(suite, scale_factor, names, threads, profile_path.parent)
    if spills:
        out["spill_factor"] = max(1.0, statistics.median(m.slowdown for m in spills))
        out["spill_runs"] = {
            m.template: {
                "peak_memory_gb": round(m.peak_memory_gb, 4),
                "slowdown": round(m.slowdown, 3),
                "spilled_gb": round(m.spilled_gb, 4),
            }
            for m in spills
        }
        out["log"] += [f"{m.template}: spilling {m.slowdown:.2f}× slower" for m in spills]
    setup = partial(engine_costs.single_thread_connection, suite, scale_factor)
    pairs = engine_costs.measure_interference(setup, sql, names)
    if pairs:
        out["interference"] = engine_costs.interference_from(pairs)
        out["interference_runs"] = [[p.measured, p.beside, round(p.slowdown, 3)] for p in pairs]
        out["log"].append(
            f"co-run slow-down: {out['interference']:+.1%} per other query on the node (median "
            "of the pairs; a machine busy with other work inflates it: measure it again on an "
            "idle one with --interference FILE)"
        )
    con.execute(f"SET threads = {threads}")
    return out


def _large_scale_for(suite: str, names: Sequence[str]) -> dict[float, dict[str, float]]:
    if suite != "tpch":
        return {}
    large: dict[float, dict[str, float]] = {}
    for point in scalability.read_thread_scaling():
        if point.template in names and point.scale_factor in LARGE_SCALE_FACTORS:
            large.setdefault(point.scale_factor, {})[point.template] = point.serial_fraction
    return large


def speed_reference(
    measured: Mapping[str, Mapping[float, QueryMeasurement]], reference: TemplateSet
) -> dict[str, Any]:
    """How much faster the engine ran for `reference` than for this measurement, per scale
    factor: the reference's summed single-thread latency over this run's, over the templates
    both hold (a scale factor the reference lacks takes the nearest shared one's factor).

    Why: the engine's speed on a shared machine drifts by 25-70% within hours (README, section
    5), and a template file's absolute time scale is every bundled scenario's load. Scaling a
    recalibration's latencies by these factors keeps the reference's time scale and takes from
    the new run what it measures better: which query costs how much beside the others at a
    scale factor, and how each scales with threads. Per scale factor, because the drift is not
    one factor: on 2026-12-07 the engine ran the SF-1 suite 1.20x and the SF-0.1 suite 1.08x
    its 2026-12-01 time (1 thread), and in a trial anchored at SF 1 alone every template's
    growth with data steepened (tpch-streaming's work +9%; anchored per scale factor +5%: the
    templates' own growth, measured anew). The reference's 1-thread latency is its work plus
    one warm-up per pipeline, which its fit made equal to its measured one. The engine costs
    (the warm-up per pipeline among them) are kept as the new run measured them: fixed costs,
    not query latencies."""
    common = sorted(set(measured) & set(reference.templates), key=natural_key)
    shared = sorted(set(reference.scale_factors).intersection(*(measured[n] for n in common)))
    if not common or not shared:
        raise CalibrationError(
            "calibrate: speed_reference: the reference shares no template measured at a common "
            f"scale factor (it holds {', '.join(f'{sf:g}' for sf in reference.scale_factors)})"
        )
    cluster = scalability._calibration_cluster(1, reference.engine_costs.get("warmup_s", 0.0))
    factors = {}
    for sf in shared:
        ref = sum(
            scalability.isolated_latency_s(reference.templates[n], sf, cluster) for n in common
        )
        factors[sf] = ref / sum(measured[n][sf].latency_s[1] for n in common)
    for sf in {sf for by_sf in measured.values() for sf in by_sf} - set(shared):
        nearest = min(shared, key=lambda s: abs(math.log(s / sf)))
        factors[sf] = factors[nearest]
    previous = reference.calibration.get("speed_reference", {})
    return {
        "factors": {f"{sf:g}": round(f, 4) for sf, f in sorted(factors.items())},
        "templates": len(common),
        "time_scale_of": previous.get("time_scale_of", reference.calibration.get("date", "")),
        "reference_command": reference.calibration.get("command", ""),
    }


def _at_speed(
    measured: dict[str, dict[float, QueryMeasurement]], factors: Mapping[str, float]
) -> dict[str, dict[float, QueryMeasurement]]:
    return {
        name: {
            sf: replace(m, latency_s={k: v * factors[f"{sf:g}"] for k, v in m.latency_s.items()})
            for sf, m in by_sf.items()
        }
        for name, by_sf in measured.items()
    }


def run_calibration(
    suite: str,
    scale_factors: Sequence[float],
    threads: Sequence[int] | int,
    out: Path,
    queries: Sequence[str] | None = None,
    *,
    repeats: int = DEFAULT_REPEATS,
    parameter_draws: int = PARAMETER_DRAWS,
    progress: Callable[[str], None] | None = None,
    reference: TemplateSet | None = None,
) -> TemplateSet:
    """Measure `suite` on DuckDB at each scale factor and thread count; write `out`.

    `threads` lists the thread counts timed (it must include 1: work is profiled
    single-threaded); `queries` narrows the suite ("q3", "3" or "tpch-q3"). `progress`
    receives one line per scale factor and query (the CLI prints them). Run it on a quiet
    machine: timers are wall clocks, so other load inflates them (the fastest of `repeats`
    runs is kept). `reference`: a template file of the suite whose time scale the result keeps
    (`speed_reference`). Returns the template set as written (rounded).
    """
    names = resolve_queries(suite, queries)
    sfs = sorted({float(sf) for sf in scale_factors})
    if not sfs or any(not (sf > 0 and math.isfinite(sf)) for sf in sfs):
        raise CalibrationError(f"calibrate: scale_factors: must be positive numbers, got {sfs}")
    counts = sorted({int(threads)} if isinstance(threads, int) else {int(t) for t in threads})
    if not counts or counts[0] < 1:
        raise CalibrationError(f"calibrate: threads: must be >= 1, got {counts}")
    if counts[0] != 1:
        raise CalibrationError(
            f"calibrate: threads: must include 1 (work is profiled single-threaded), got {counts}"
        )
    if repeats < 1:
        raise CalibrationError(f"calibrate: repeats: must be >= 1, got {repeats}")
    duckdb = _duckdb()
    say = progress or (lambda _line: None)
    measured: dict[str, dict[float, QueryMeasurement]] = {n: {} for n in names}
    warmup_s = math.inf
    engine: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lsched-calibrate-") as tmp:
        profile_path = Path(tmp) / "profile.json"
        for sf in sfs:
            con = duckdb.connect(config={"threads": max(counts)})
            try:
                start = time.perf_counter()
                sql = _prepare(con, suite, sf)
                say(f"{suite} sf={sf:g}: data ready in {time.perf_counter() - start:.1f} s")
                con.execute("SET threads = 1")
                profiles = _profile_suite(con, sql, names, profile_path, repeats)
                latencies = _time_suite(con, sql, names, counts, repeats)
                warmup_s = min(warmup_s, measure_fixed_cost_s(con, repeats))
                variation = {}
                if sf == sfs[-1] and parameter_draws:
                    variation = _measure_parameters(
                        con, suite, sql, names, profile_path, parameter_draws
                    )
                if sf == sfs[-1] and suite == ENGINE_COST_SUITE:
                    engine = _measure_engine(con, suite, sf, sql, names, max(counts), profile_path)
                    for row in engine.pop("log"):
                        say(row)
                for name in names:
                    work, changes = variation.get(name, ((), False))
                    measured[name][sf] = QueryMeasurement(
                        profiles[name], latencies[name], work, changes
                    )
                    timed = ", ".join(f"{k}: {v:.4f} s" for k, v in latencies[name].items())
                    say(f"{name} sf={sf:g}: {len(profiles[name])} pipelines, latency {timed}")
            finally:
                con.close()
    anchor = None
    if reference is not None:
        anchor = speed_reference(measured, reference)
        measured = _at_speed(measured, anchor["factors"])
        scaled = ", ".join(f"x {f:.4f} at SF {sf}" for sf, f in anchor["factors"].items())
        say(
            f"speed reference: latencies {scaled} (the time scale of "
            f"{anchor['time_scale_of'] or 'the reference'})"
        )
    model = None
    if suite != "tpch":
        from lsched.workloads.templates import bundled_template_set

        model = bundled_template_set("tpch").scalability_model
    template_set, report = fit_suite(
        suite,
        measured,
        warmup_s,
        large_scale=_large_scale_for(suite, names),
        modelled_large_scale=model,
    )
    command = (
        f"lsched calibrate {suite} --scale-factors {','.join(f'{s:g}' for s in sfs)} "
        f"--threads {','.join(str(k) for k in counts)} --repeats {repeats}"
        + (f" --queries {','.join(names)}" if queries is not None else "")
        + (f" --parameter-draws {parameter_draws}" if parameter_draws != PARAMETER_DRAWS else "")
        + (" --speed-reference FILE" if anchor else "")
    )
    calibration = {
        "command": command,
        "machine_threads": os.cpu_count() or 1,
        "thread_counts": counts,
        "date": time.strftime("%Y-%m-%d"),
    }
    if anchor:
        calibration["speed_reference"] = anchor
    for key, value in report.items():
        if key.startswith("operator_model"):
            calibration[key] = {k: v for k, v in value.items() if v is not None}
    if report["parameter_plan_changes"]:
        calibration["parameter_plan_changes"] = report["parameter_plan_changes"]
    if report["serial_fraction_uniform_shape"]:
        calibration["serial_fraction_uniform_shape"] = report["serial_fraction_uniform_shape"]
    costs = dict(template_set.engine_costs)
    for key in ("spill_factor", "interference", "memory_limit_gb"):
        if key in engine:
            costs[key] = engine.pop(key)
    calibration.update(engine)
    template_set = replace(
        template_set,
        engine_version=duckdb.__version__,
        calibration=calibration,
        engine_costs=costs,
    )
    return write_template_file(template_set, Path(out))
