"""Isolated-query fidelity: the DuckDB preset's simulated latencies beside DuckDB's, now.

DuckDB's speed on a shared machine drifts (up to 25% within an hour here), so a comparison
measures the real side in the same run and reports one global speed factor — the median of
real over simulated — and each query's error after it. `benchmarks/bench_calibration.py` runs
it on TPC-H SF 1; the tests on a few queries at SF 0.1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lsched.engines import duckdb_settings, engine_preset
from lsched.workloads import calibrate
from lsched.workloads.scalability import isolated_latency_s
from lsched.workloads.templates import QueryTemplate, TemplateSet
from sim import ClusterConfig


@dataclass(frozen=True, slots=True)
class QueryFidelity:
    template: str
    real_s: tuple[float, ...]
    """Every real run's latency (unprofiled)."""
    simulated_s: float

    @property
    def real_median_s(self) -> float:
        return statistics.median(self.real_s)


def duckdb_cluster(measured: TemplateSet | None = None) -> ClusterConfig:
    """The `engine: duckdb` preset as a cluster, or (`measured`) the engine another template
    file of the suite was calibrated on."""
    if measured is None:
        return ClusterConfig(**engine_preset("duckdb").settings)
    return ClusterConfig(**duckdb_settings(measured))


def measure_real_s(
    suite: str, scale_factor: float, names: Sequence[str], threads: int, repeats: int
) -> dict[str, tuple[float, ...]]:
    """Each query's unprofiled latency on DuckDB with `threads` threads, `repeats` passes
    round the queries after one warm-up pass."""
    duckdb = calibrate._duckdb()
    con = duckdb.connect(config={"threads": threads})
    try:
        sql = calibrate._prepare(con, suite, scale_factor)
        for name in names:
            con.execute(sql[name]).fetchall()
        runs: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(repeats):
            for name in names:
                start = time.perf_counter()
                con.execute(sql[name]).fetchall()
                runs[name].append(time.perf_counter() - start)
    finally:
        con.close()
    return {name: tuple(v) for name, v in runs.items()}


def compare(
    library: Mapping[str, QueryTemplate],
    real_s: Mapping[str, Sequence[float]],
    scale_factor: float,
    cluster: ClusterConfig,
) -> tuple[list[QueryFidelity], float]:
    """Per-query pairs and the global speed factor (median real / simulated)."""
    rows = [
        QueryFidelity(name, tuple(runs), isolated_latency_s(library[name], scale_factor, cluster))
        for name, runs in real_s.items()
    ]
    speed = statistics.median(r.real_median_s / r.simulated_s for r in rows)
    return rows, speed


def summary(rows: Sequence[QueryFidelity], speed: float) -> dict[str, object]:
    """JSON figures: errors before and after the speed factor, and the real runs' spread."""
    raw = [r.simulated_s / r.real_median_s - 1.0 for r in rows]
    after = [r.simulated_s * speed / r.real_median_s - 1.0 for r in rows]
    spread = [(max(r.real_s) - min(r.real_s)) / r.real_median_s for r in rows]
    return {
        "queries": len(rows),
        "speed_factor": speed,
        "mean_abs_error_raw": float(np.mean(np.abs(raw))),
        "mean_abs_error": float(np.mean(np.abs(after))),
        "max_abs_error": float(np.max(np.abs(after))),
        "within_15pct": int(sum(abs(e) <= 0.15 for e in after)),
        "real_spread_median": statistics.median(spread),
        "sum_real_s": sum(r.real_median_s for r in rows),
        "sum_simulated_s": sum(r.simulated_s for r in rows),
        "per_query": {
            r.template: {
                "real_s": round(r.real_median_s, 5),
                "real_min_s": round(min(r.real_s), 5),
                "real_max_s": round(max(r.real_s), 5),
                "simulated_s": round(r.simulated_s, 5),
                "error": round(e, 4),
            }
            for r, e in zip(rows, after, strict=True)
        },
    }
