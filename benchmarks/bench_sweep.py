"""Sweep throughput: a 40-run sweep on 1 and 2 local workers, and the Ray backend's overhead.

Heavy part: tpch-streaming with 800 queries (about 0.5 s per run on one core), 4 agents × 10
seeds = 40 runs, on LocalBackend(1) (in process) and LocalBackend(2); the speed-up is their
wall-time ratio (target >= 1.7 on 2 idle cores). Worker pools are started and warmed before
timing; their start-up is reported apart. Both tables must be identical.
Light part: many tiny runs (12 queries, ~10 ms each) on 2 local workers and on a local Ray
instance with 2 CPUs: the per-run overhead of each against running them in process.
Prints one JSON line, with the load average before and after (other work skews the figures).
Usage: python benchmarks/bench_sweep.py [--seeds 10] [--tiny-seeds 100] [--no-ray]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
from pathlib import Path

from lsched.backends import Backend, LocalBackend, make_backend
from lsched.sweep import CSV_FILE, run_sweep

HEAVY_AGENTS = ("fifo", "sjf", "srpt", "fair")
HEAVY_QUERIES = 800
"""tpch-streaming's 200 queries simulate in ~0.1 s: 800 make each run heavy enough that
process start-up and pickling do not hide the parallel speed-up."""
TINY_SCENARIO = """\
name: tiny
cluster: {nodes: 2, threads_per_node: 4}
workload:
  queries: 12
  streams:
    - {name: adhoc, arrivals: {process: poisson, rate_per_s: 0.5}, mix: "tpch-*"}
"""


def heavy_sweep(folder: Path, seeds: int) -> Path:
    path = folder / "heavy.yaml"
    path.write_text(
        "scenarios: [tpch-streaming]\n"
        f"agents: [{', '.join(HEAVY_AGENTS)}]\n"
        f"seeds: {seeds}\n"
        f"overrides: {{workload.queries: [{HEAVY_QUERIES}]}}\n",
        encoding="utf-8",
    )
    return path


def tiny_sweep(folder: Path, seeds: int) -> Path:
    (folder / "tiny.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    path = folder / "tiny-sweep.yaml"
    path.write_text(f"scenarios: [tiny.yaml]\nagents: [fifo, fair]\nseeds: {seeds}\n")
    return path


def load(module: str) -> None:
    importlib.import_module(module)


def warm(backend: Backend) -> float:
    """Start the backend's workers and import lsched in them; returns the seconds it took."""
    started = time.perf_counter()
    backend.map(load, ["lsched.sweep"] * (2 * backend.workers))
    return time.perf_counter() - started


def timed(spec: Path, out: Path, backend: Backend) -> tuple[float, int]:
    started = time.perf_counter()
    report = run_sweep(spec, out, backend)
    wall_s = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"{report.failed} run(s) of {spec} failed")
    return wall_s, report.executed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="heavy sweep: 4 agents × this")
    parser.add_argument("--tiny-seeds", type=int, default=100, help="tiny sweep: 2 agents × this")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray overhead part")
    args = parser.parse_args()
    figures: dict[str, object] = {"load_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        heavy = heavy_sweep(folder, args.seeds)
        one_s, runs = timed(heavy, folder / "heavy-1", LocalBackend(1))
        with LocalBackend(2) as backend:
            figures["local_pool_start_s"] = round(warm(backend), 3)
            two_s, _ = timed(heavy, folder / "heavy-2", backend)
        same = (folder / "heavy-1" / CSV_FILE).read_bytes() == (
            folder / "heavy-2" / CSV_FILE
        ).read_bytes()
        figures.update(
            heavy_runs=runs,
            heavy_run_s=round(one_s / runs, 3),
            workers_1_s=round(one_s, 2),
            workers_2_s=round(two_s, 2),
            speedup_2_workers=round(one_s / two_s, 2),
            tables_identical=same,
        )

        tiny = tiny_sweep(folder, args.tiny_seeds)
        in_process_s, tiny_runs = timed(tiny, folder / "tiny-0", LocalBackend(1))
        with LocalBackend(2) as backend:
            warm(backend)
            local_s, _ = timed(tiny, folder / "tiny-1", backend)
        figures.update(
            tiny_runs=tiny_runs,
            tiny_in_process_ms_per_run=round(1000 * in_process_s / tiny_runs, 2),
            tiny_local2_ms_per_run=round(1000 * local_s / tiny_runs, 2),
        )
        if not args.no_ray:
            started = time.perf_counter()
            with make_backend("ray", 2) as backend:
                figures["ray_start_s"] = round(time.perf_counter() - started + warm(backend), 2)
                ray_s, _ = timed(tiny, folder / "tiny-2", backend)
            figures.update(
                tiny_ray2_ms_per_run=round(1000 * ray_s / tiny_runs, 2),
                ray_overhead_vs_local_ms_per_run=round(1000 * (ray_s - local_s) / tiny_runs, 2),
            )
    figures["load_after"] = round(os.getloadavg()[0], 2)
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
