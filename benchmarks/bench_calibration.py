"""Isolated-query fidelity of the DuckDB preset: simulated vs real latency per TPC-H query.

Measures DuckDB now (unprofiled, `--threads` threads, median of `--repeats` interleaved passes
after a warm-up), simulates each template alone on the `engine: duckdb` preset, and prints one
JSON line: the global speed factor (median real / simulated: how much faster or slower DuckDB
runs now than at calibration), each query's error after it, how many are within 15%, and the
real runs' spread. `--compare A.json,B.json` also holds other template files of the suite (a
recalibration, say) against the same real runs, under "compared", each simulated on the engine
its own file records (warm-up, memory, spill and interference costs): on a drifting engine,
files measured against one another in one run are the fair comparison.
Usage: python benchmarks/bench_calibration.py [--scale-factor 1] [--repeats 5] [--compare FILES]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lsched.workloads.fidelity import compare, duckdb_cluster, measure_real_s, summary
from lsched.workloads.templates import bundled_template_set, load_template_file, natural_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="tpch")
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", default=None, help="comma-separated template names")
    parser.add_argument("--compare", default="", help="comma-separated template files")
    args = parser.parse_args()
    bundled = bundled_template_set(args.suite)
    others = {path: load_template_file(Path(path)) for path in args.compare.split(",") if path}
    library = bundled.templates
    names = args.queries.split(",") if args.queries else sorted(library, key=natural_key)
    for path, other in others.items():
        if other.suite != args.suite:
            parser.error(f"--compare: {path} holds {other.suite!r}, not {args.suite!r}")
        missing = sorted(set(names) - set(other.templates), key=natural_key)
        if missing:
            parser.error(f"--compare: {path} lacks {', '.join(missing)}")
    cluster = duckdb_cluster()
    engines = {path: duckdb_cluster(other) for path, other in others.items()}
    for path, engine in engines.items():
        if engine.threads_per_node != cluster.threads_per_node:
            parser.error(
                f"--compare: {path} was calibrated up to {engine.threads_per_node} threads, "
                f"the bundled file up to {cluster.threads_per_node}: one set of real runs "
                "cannot serve both"
            )
    real = measure_real_s(
        args.suite, args.scale_factor, names, cluster.threads_per_node, args.repeats
    )
    rows, speed = compare(library, real, args.scale_factor, cluster)
    figures = summary(rows, speed)
    compared = {}
    for path, other in others.items():  # each on the engine its own file records
        other_rows, other_speed = compare(other.templates, real, args.scale_factor, engines[path])
        compared[path] = summary(other_rows, other_speed)
    print(
        json.dumps(
            {
                "benchmark": "calibration",
                "suite": args.suite,
                "scale_factor": args.scale_factor,
                "threads": cluster.threads_per_node,
                "repeats": args.repeats,
                "calibrated": bundled.calibration.get("command"),
                **figures,
                "operator_model": {
                    k: v for k, v in bundled.calibration.items() if k.startswith("operator_model")
                },
                **({"compared": compared} if compared else {}),
            }
        )
    )


if __name__ == "__main__":
    main()
