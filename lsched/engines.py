"""Engine presets: the cluster settings a scenario's `cluster: {engine: NAME}` starts from.

A preset fills every cluster field the scenario leaves out; any field may still be set. The
one source for each preset's numbers is named beside it:

- `spark` (the default): Decima's Spark measurements (SIGCOMM 2019: about 2 s to move an
  executor to another job and 1 s of warm-up), for clusters of nodes × executor threads running
  big-data queries (the bundled streaming, dashboard and ETL scenarios, whose work_multiplier
  stands for data that many times larger).
- `duckdb`: one DuckDB process on this machine, measured by `lsched calibrate` and read from the
  bundled TPC-H template file (its `engine_costs` and `calibration` headers): threads = the most
  threads calibrated, warm-up = the fixed cost of a one-pipeline query, no moving delay (DuckDB's
  threads take tasks of any query from one shared queue: there is no executor to move), memory =
  DuckDB's default memory_limit on the calibration machine, and each pipeline's own serial
  fraction. At work_multiplier 1 its isolated latencies are DuckDB's (see
  benchmarks/bench_calibration.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from lsched.workloads.templates import TemplateSet, bundled_template_set
from sim.model import ClusterConfig

ENGINES = ("spark", "duckdb")
DEFAULT_ENGINE = "spark"
MEASURED = "measured"
"""`parallel_overhead: measured`: each pipeline's own serial fraction (ClusterConfig None)."""


@dataclass(frozen=True, slots=True)
class EnginePreset:
    name: str
    settings: Mapping[str, Any]
    """ClusterConfig fields (faults excluded)."""
    provenance: str


@cache
def engine_preset(name: str) -> EnginePreset:
    """The preset `name` (one of ENGINES)."""
    defaults = ClusterConfig()
    if name == "spark":
        return EnginePreset(
            name,
            {
                "nodes": defaults.nodes,
                "threads_per_node": defaults.threads_per_node,
                "memory_per_node_gb": defaults.memory_per_node_gb,
                "moving_delay_s": defaults.moving_delay_s,
                "warmup_s": defaults.warmup_s,
                "parallel_overhead": None,
                "spill_factor": defaults.spill_factor,
                "task_skew": defaults.task_skew,
                "interference": 0.0,
            },
            "Decima (SIGCOMM 2019) Spark executor costs; serial fractions measured per pipeline",
        )
    if name == "duckdb":
        measured = bundled_template_set("tpch")
        return EnginePreset(
            name,
            duckdb_settings(measured),
            f"lsched calibrate ({measured.calibration.get('command', 'see the tpch template file')}"
            f", DuckDB {measured.engine_version}, {measured.calibration.get('date', '')})",
        )
    raise KeyError(name)


def duckdb_settings(measured: TemplateSet) -> dict[str, Any]:
    """The `duckdb` preset's cluster fields as the template file `measured` records them: the
    bundled TPC-H file gives the preset; another file (a recalibration) gives the engine it was
    measured on, so the two can be compared against the same real runs."""
    defaults = ClusterConfig()
    costs = measured.engine_costs
    threads = max(measured.calibration.get("thread_counts", [measured.threads]))
    return {
        "nodes": 1,
        "threads_per_node": int(threads),
        "memory_per_node_gb": costs.get("memory_limit_gb", defaults.memory_per_node_gb),
        "moving_delay_s": 0.0,
        "warmup_s": costs.get("warmup_s", 0.0),
        "parallel_overhead": None,
        "spill_factor": costs.get("spill_factor", defaults.spill_factor),
        "task_skew": defaults.task_skew,
        "interference": costs.get("interference", 0.0),
    }
