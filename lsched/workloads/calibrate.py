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
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lsched.workloads.templates import (
    PipelineTemplate,
    QueryTemplate,
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
class MeasuredPipeline:
    """One pipeline of one profiled run, in raw units."""

    operator: str
    parents: tuple[int, ...]
    work_s: float
    source_rows: float
    memory_bytes: float
    table_scans: int


@dataclass(slots=True)
class _Open:
    """A pipeline still growing upwards from its source."""

    work_s: float = 0.0
    source_rows: float = 0.0
    parents: set[int] = field(default_factory=set)
    table_scans: int = 0

    def merge(self, other: _Open) -> None:
        self.work_s += other.work_s
        self.source_rows += other.source_rows
        self.parents |= other.parents
        self.table_scans += other.table_scans


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
            child.work_s += _timing(node)
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
            definition.work_s += _timing(node)
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
        pipeline.work_s += _timing(node)
        return pipeline

    def source(self, node: dict[str, Any], kind: str) -> _Open:
        rows = float(node.get("operator_rows_scanned") or 0.0) or _rows(node)
        pipeline = _Open(work_s=_timing(node), source_rows=rows)
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
            probe.work_s += _timing(node)
            return probe
        build = self.stream(build_node)
        build_rows, probe_rows = _rows(build_node), _rows(probe_node)
        total = build_rows + probe_rows
        build_share = build_rows / total if total > 0 else 0.5
        build.work_s += _timing(node) * build_share
        memory = _bytes(build_node)
        if kind == "HASH_JOIN":
            memory += HASH_ENTRY_OVERHEAD_BYTES * build_rows
        done = self.close(build, _BUILD_JOINS[kind], memory)
        probe = self.stream(probe_node)
        probe.work_s += _timing(node) * (1.0 - build_share)
        probe.parents.add(done)
        return probe

    def delim_join(self, node: dict[str, Any], children: list[dict[str, Any]]) -> _Open:
        """[side, join, distinct...]: the side is materialised (and made distinct) first."""
        side = self.stream(children[0])
        side.work_s += _timing(node) + sum(_timing(c) for c in children[2:])
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
) -> dict[str, tuple[tuple[MeasuredPipeline, ...], float]]:
    """Warm every query up, then `repeats` profiled passes over all of them.

    Passes go round the whole suite rather than repeating one query back to back, so that a
    burst of load from elsewhere spoils one run of many queries, not every run of one.
    Returns name -> (fastest-run pipelines, fastest latency_s).
    """
    for name in names:
        con.execute(sql[name]).fetchall()
    con.execute("PRAGMA enable_profiling='json'")
    con.execute("PRAGMA profiling_mode='detailed'")
    con.execute(f"PRAGMA profiling_output='{profile_path}'")
    runs: dict[str, list[tuple[MeasuredPipeline, ...]]] = {name: [] for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            start = time.perf_counter()
            con.execute(sql[name]).fetchall()
            latencies[name].append(time.perf_counter() - start)
            profile = json.loads(profile_path.read_text(encoding="utf-8"))
            runs[name].append(split_pipelines(profile))
    con.execute("PRAGMA disable_profiling")
    return {name: (fastest_run(runs[name]), min(latencies[name])) for name in names}


def run_calibration(
    suite: str,
    scale_factors: Sequence[float],
    threads: int,
    out: Path,
    queries: Sequence[str] | None = None,
    *,
    repeats: int = DEFAULT_REPEATS,
    progress: Callable[[str], None] | None = None,
) -> TemplateSet:
    """Measure `suite` on DuckDB at each scale factor with `threads` threads; write `out`.

    `queries` narrows the suite ("q3", "3" or "tpch-q3"). `progress` receives one line per
    scale factor and query (the CLI prints them). Run it on a quiet machine: timers are wall
    clocks per thread, so other load inflates them (the fastest of `repeats` runs is kept).
    Returns the template set as written (rounded).
    """
    names = resolve_queries(suite, queries)
    sfs = sorted({float(sf) for sf in scale_factors})
    if not sfs or any(not (sf > 0 and math.isfinite(sf)) for sf in sfs):
        raise CalibrationError(f"calibrate: scale_factors: must be positive numbers, got {sfs}")
    if threads < 1:
        raise CalibrationError(f"calibrate: threads: must be >= 1, got {threads}")
    if repeats < 1:
        raise CalibrationError(f"calibrate: repeats: must be >= 1, got {repeats}")
    duckdb = _duckdb()
    say = progress or (lambda _line: None)
    measured: dict[str, dict[float, tuple[MeasuredPipeline, ...]]] = {n: {} for n in names}
    latency: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="lsched-calibrate-") as tmp:
        profile_path = Path(tmp) / "profile.json"
        for sf in sfs:
            con = duckdb.connect(config={"threads": threads})
            try:
                start = time.perf_counter()
                sql = _prepare(con, suite, sf)
                say(f"{suite} sf={sf:g}: data ready in {time.perf_counter() - start:.1f} s")
                results = _profile_suite(con, sql, names, profile_path, repeats)
                for name in names:
                    pipelines, latency_s = results[name]
                    measured[name][sf] = pipelines
                    latency[name].append(latency_s)
                    work = sum(p.work_s for p in pipelines)
                    say(
                        f"{name} sf={sf:g}: {len(pipelines)} pipelines, "
                        f"work {work:.4f} thread-s, latency {latency_s:.4f} s"
                    )
            finally:
                con.close()
    templates: dict[str, QueryTemplate] = {}
    refitted = []
    for name in names:
        template, per_pipeline = fit_template(name, suite, measured[name], latency[name])
        templates[name] = template
        if not per_pipeline:
            refitted.append(name)
    sf_list = ", ".join(f"{s:g}" for s in sfs)
    notes = (
        f"Measured by lsched calibrate: {len(names)} {suite} queries, DuckDB "
        f"{duckdb.__version__}, {threads} threads, scale factors {sf_list}, "
        f"fastest of {repeats} profiled runs after a warm-up. work = summed operator_timing "
        f"(thread-seconds); tasks = source rows / {ROWS_PER_MORSEL}; memory = breaker input "
        f"(or groups) bytes from result_set_size plus per-row overhead. Exponents: log-log fit "
        f"per pipeline, matched by position across scale factors"
        + (
            f"; breakers differed across scale factors for {', '.join(refitted)}, which keep the "
            f"largest scale factor's plan scaled by the query's total slopes."
            if refitted
            else "."
        )
    )
    template_set = TemplateSet(
        suite=suite,
        engine="duckdb",
        engine_version=duckdb.__version__,
        scale_factors=tuple(sfs),
        threads=threads,
        templates=templates,
        notes=notes,
    )
    return write_template_file(template_set, Path(out))
