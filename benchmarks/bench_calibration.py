"""Isolated-query fidelity of the DuckDB preset: simulated vs real latency per TPC-H query.

Measures DuckDB now (unprofiled, `--threads` threads, median of `--repeats` interleaved passes
after a warm-up), simulates each template alone on the `engine: duckdb` preset, and prints one
JSON line: the global speed factor (median real / simulated: how much faster or slower DuckDB
runs now than at calibration), each query's error after it, how many are within 15%, and the
real runs' spread. Usage: python benchmarks/bench_calibration.py [--scale-factor 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json

from lsched.workloads.fidelity import compare, duckdb_cluster, measure_real_s, summary
from lsched.workloads.templates import bundled_template_set, natural_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="tpch")
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", default=None, help="comma-separated template names")
    args = parser.parse_args()
    library = bundled_template_set(args.suite).templates
    names = args.queries.split(",") if args.queries else sorted(library, key=natural_key)
    cluster = duckdb_cluster()
    real = measure_real_s(
        args.suite, args.scale_factor, names, cluster.threads_per_node, args.repeats
    )
    rows, speed = compare(library, real, args.scale_factor, cluster)
    figures = summary(rows, speed)
    calibration = bundled_template_set(args.suite).calibration
    print(
        json.dumps(
            {
                "benchmark": "calibration",
                "suite": args.suite,
                "scale_factor": args.scale_factor,
                "threads": cluster.threads_per_node,
                "repeats": args.repeats,
                "calibrated": calibration.get("command"),
                **figures,
                "operator_model": {
                    k: v for k, v in calibration.items() if k.startswith("operator_model")
                },
            }
        )
    )


if __name__ == "__main__":
    main()
