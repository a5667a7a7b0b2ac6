"""Engine costs measured on DuckDB beside the templates: fixed cost, spilling, co-run interference.

Each function takes an open connection (or, for interference, starts a second DuckDB process)
and returns plain figures; `lsched calibrate` records them in the TPC-H template file's
`engine_costs` header, which the `duckdb` engine preset (lsched.engines) reads.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BYTES_PER_GB = 1e9
_UNITS = {
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
    "BYTES": 1.0,
}


def parse_size_gb(text: str) -> float:
    """DuckDB's size setting ("18.6 GiB", "500.0 MiB") in GB."""
    number, _, unit = text.strip().partition(" ")
    return float(number) * _UNITS[unit.strip().upper() or "BYTES"] / BYTES_PER_GB


FIXED_COST_SQL = "SELECT 42"
"""A query of one pipeline that reads nothing: its latency is the engine's fixed cost of
running a pipeline (parse, plan, schedule, return), the DuckDB preset's `warmup_s`."""


def measure_fixed_cost_s(con: Any, repeats: int) -> float:
    """Median latency of FIXED_COST_SQL over 50 × `repeats` runs (sub-millisecond)."""
    samples = []
    for _ in range(50 * repeats):
        start = time.perf_counter()
        con.execute(FIXED_COST_SQL).fetchall()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


SPILL_QUERIES = ("tpch-q9", "tpch-q13", "tpch-q18", "tpch-q21")
"""TPC-H's largest hash aggregates and joins: the queries whose state spills first."""
SPILL_MEMORY_SHARE = 0.25
"""Spill runs get this share of the query's own peak buffer memory as DuckDB's memory_limit.
The peak counts table pages too, which DuckDB evicts before it spills operator state: at half
of it TPC-H SF 1 wrote no temp files; at a quarter, Q9, Q18 and Q21 spilled."""
SPILL_ROUNDS = 5
"""Alternating in-memory and limited runs per query; the fastest of each is compared."""


@dataclass(frozen=True, slots=True)
class SpillMeasurement:
    template: str
    peak_memory_gb: float
    in_memory_s: float
    spilling_s: float
    spilled_gb: float

    @property
    def slowdown(self) -> float:
        return self.spilling_s / self.in_memory_s


def measure_spill(
    suite: str, scale_factor: float, names: Sequence[str], threads: int, workdir: Path
) -> list[SpillMeasurement]:
    """Each of SPILL_QUERIES on a database file (so that table pages can be evicted and only
    operator state has to spill), in a fresh read-only DuckDB per query so that its peak
    figures are this query's: its peak buffer memory unlimited, then SPILL_ROUNDS rounds that
    alternate a run without limit and one with memory_limit at SPILL_MEMORY_SHARE of the peak.
    Kept only if the limited runs wrote temp files."""
    from lsched.workloads.calibrate import _duckdb, _prepare

    duckdb = _duckdb()
    chosen = [n for n in SPILL_QUERIES if n in names]
    if not chosen:
        return []
    path = workdir / "spill.duckdb"
    con = duckdb.connect(str(path), config={"threads": threads})
    try:
        sql = _prepare(con, suite, scale_factor)
    finally:
        con.close()
    profile_path = workdir / "spill-profile.json"
    config = {"threads": threads, "temp_directory": str(workdir / "spill-tmp")}
    out = []
    for name in chosen:
        con = duckdb.connect(str(path), read_only=True, config=config)
        try:
            default_limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            con.execute(sql[name]).fetchall()
            peak = profiled(con, sql[name], profile_path)["system_peak_buffer_memory"]
            limit_mb = max(int(float(peak) * SPILL_MEMORY_SHARE / 1e6), 1)
            free, limited = math.inf, math.inf
            try:
                for _ in range(SPILL_ROUNDS):
                    con.execute(f"SET memory_limit = '{default_limit}'")
                    free = min(free, fastest_s(con, sql[name], 1))
                    con.execute(f"SET memory_limit = '{limit_mb}MB'")
                    limited = min(limited, fastest_s(con, sql[name], 1))
                written = profiled(con, sql[name], profile_path)["system_peak_temp_dir_size"]
            except duckdb.Error:  # out of memory even when spilling: this query says nothing
                continue
        finally:
            con.close()
        if float(written or 0) > 0:
            gb = BYTES_PER_GB
            out.append(SpillMeasurement(name, float(peak) / gb, free, limited, float(written) / gb))
    return out


def profiled(con: Any, text: str, profile_path: Path) -> dict[str, Any]:
    """Run `text` once with JSON profiling on; its profile (written to `profile_path`)."""
    con.execute("PRAGMA enable_profiling='json'")
    con.execute(f"PRAGMA profiling_output='{profile_path}'")
    try:
        con.execute(text).fetchall()
    finally:
        con.execute("PRAGMA disable_profiling")
    return json.loads(profile_path.read_text(encoding="utf-8"))


def fastest_s(con: Any, text: str, runs: int) -> float:
    """The fastest of `runs` runs of `text` (seconds)."""
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        con.execute(text).fetchall()
        best = min(best, time.perf_counter() - start)
    return best


INTERFERENCE_RUNS = 5
"""Interleaved rounds: in each, every template is timed once alone and once beside the loop."""
INTERFERENCE_SEED = 0
"""Seeds the order in which the second process loops over the templates."""
BESIDE_ALL = "*"
"""`CoRun.beside` when the other process ran every template in a loop."""


@dataclass(frozen=True, slots=True)
class CoRun:
    """One query's latency alone and while another DuckDB process runs beside it, each with
    one thread (so each has a core of its own)."""

    measured: str
    beside: str
    alone_s: float
    beside_s: float

    @property
    def slowdown(self) -> float:
        return self.beside_s / self.alone_s


def single_thread_connection(suite: str, scale_factor: float) -> Any:
    """A fresh in-memory DuckDB with one thread and the suite's data (picklable via partial,
    so the interference measurement's second process can build its own)."""
    from lsched.workloads.calibrate import _duckdb, _prepare

    con = _duckdb().connect(config={"threads": 1})
    _prepare(con, suite, scale_factor)
    return con


def _background(
    setup: Any, texts: Sequence[str], ready: Any, go: Any, idle: Any, stop: Any
) -> None:
    """A second DuckDB process that runs `texts` one after another, round and round, while
    `go` is set, and sets `idle` whenever it waits (so the measured side knows it is alone)."""
    con = setup()
    ready.set()
    position = 0
    while not stop.is_set():
        idle.set()
        if go.wait(0.05) and not stop.is_set():
            idle.clear()
            con.execute(texts[position % len(texts)]).fetchall()
            position += 1


def measure_interference(
    setup: Any, sql: Mapping[str, str], names: Sequence[str], runs: int = INTERFERENCE_RUNS
) -> list[CoRun]:
    """Every template of `names` at one thread, alone and beside a second single-threaded
    process that runs all of them back to back in a seeded random order — the way a stream
    keeps a 2-thread engine's other worker busy. Alone and beside alternate query by query,
    round after round, so drift falls on both sides alike; each side is the median of `runs`.
    `setup()` returns a fresh single-threaded connection holding the data (called in both
    processes).

    Why not pairs of a few queries (this measurement until 2026-12-04: Q1, Q6, Q9 and Q18,
    each timed alone then beside one other): their slow-downs spread 0.63–1.37 around a
    median of 1.00, while fair on the 60% stream ran one-thread queries 1.04–1.05× (median
    over templates) their time alone whenever the other worker was busy."""

    chosen = list(names)
    texts = [sql[name] for name in chosen]
    order = np.random.default_rng(INTERFERENCE_SEED).permutation(len(texts))
    con = setup()
    context = multiprocessing.get_context("spawn")
    ready, go, idle, stop = (context.Event() for _ in range(4))
    worker = context.Process(
        target=_background,
        args=(setup, [texts[k] for k in order], ready, go, idle, stop),
        daemon=True,
    )
    worker.start()
    alone: dict[str, list[float]] = {name: [] for name in chosen}
    beside: dict[str, list[float]] = {name: [] for name in chosen}
    try:
        ready.wait()
        for text in texts:
            con.execute(text).fetchall()
        for _ in range(runs):
            for name, text in zip(chosen, texts, strict=True):
                go.clear()
                idle.wait()
                alone[name].extend(_timings(con, text, 1))
                go.set()
                while idle.is_set():  # the loop has picked up its next query
                    time.sleep(0.001)
                beside[name].extend(_timings(con, text, 1))
    finally:
        stop.set()
        go.set()
        worker.join(timeout=60)
        if worker.is_alive():
            worker.terminate()
    return [
        CoRun(name, BESIDE_ALL, statistics.median(alone[name]), statistics.median(beside[name]))
        for name in chosen
    ]


def _timings(con: Any, text: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        con.execute(text).fetchall()
        samples.append(time.perf_counter() - start)
    return samples


def interference_from(pairs: Sequence[CoRun]) -> float:
    """The co-run slow-down per other query: the summed time beside over the summed time
    alone, minus 1 (so each template weighs as its time does, as the simulator charges
    `interference` per task) — or 0 when the middle half of the per-template slow-downs
    straddles 1 (no interference beyond the machine's noise)."""
    slowdowns = sorted(p.slowdown for p in pairs)
    low, high = np.quantile(slowdowns, [0.25, 0.75])
    if low <= 1.0 <= high:
        return 0.0
    weighted = sum(p.beside_s for p in pairs) / sum(p.alone_s for p in pairs)
    return max(0.0, float(weighted) - 1.0)
