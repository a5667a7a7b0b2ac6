"""Per-pipeline scalability: serial fractions fitted on measured thread scaling.

A pipeline's tasks on k threads take (1 + f·(k−1))× their single-thread time (Amdahl on each
morsel), so the simulated query speeds up as DuckDB measured it. Two measurements feed f:

- `lsched calibrate --threads 1,2,...` times each query (no profiling) at every thread count on
  this machine; `fit_query_fraction` finds the query's level F so that the simulator, running the
  template alone on one node, reproduces the measured latencies (golden-section search on the
  squared log error). At SF 0.1–1 on 2 threads, fixed costs dominate and F is large.
- For TPC-H at large scale, the published 1→24-thread table (`THREAD_SCALING_CSV`, DuckDB at
  SF 100/500/1000 on 24 cores, summarised in its header) gives the Amdahl f of each query.

Within a query, pipelines differ by what breaks them: `fit_operator_model` fits a serial
fraction per breaker type to the per-query measurements (f_query ≈ Σ work share · f_op, ridge
towards the mean so rare operators stay near it), and a pipeline's fraction is F times its
operator's value relative to the query's work-weighted mean. The same operator model gives the
large-scale fractions of suites without a measurement (SSB, TPC-DS) and of queries missing from
the table; `leave_one_out` reports how well it predicts held-out TPC-H queries.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np

from agents.heuristics import Fifo
from agents.scalability import ScalabilityPrior
from lsched.workloads.spec import WorkloadSpec
from lsched.workloads.templates import SCALABILITY_MODEL_SUITE, QueryTemplate, bundled_template_set
from sim import ClusterConfig, simulate

THREAD_SCALING_CSV = "duckdb_tpch_thread_scaling.csv"
"""Bundled under lsched/workloads/measurements/: per TPC-H query and scale factor, wall times at
1–48 threads and the Amdahl f fitted on 1–24 threads (DuckDB, 24 cores at a fixed 2.2 GHz; from
the public benchmark hussainsultan/tpch-duckdb-bench, results/consolidated.csv, 2023-09)."""
OPERATOR_MODEL_RIDGE = 0.0
"""Ridge weight pulling each operator's fraction towards the mean (0: plain least squares,
minimum-norm where a breaker type never occurs). Shrinking hurt: leave-one-out on TPC-H (SF 100
/ 500, bundled templates) gave correlations 0.80 / 0.61 at 0, 0.74 / 0.46 at 0.05 and
0.68 / −0.10 at 1."""
SHAPE_FIT_TOLERANCE = 1e-3
"""RMS log error (0.1%) within which a shape counts as matching a query's measured latencies:
ten times the 4-significant-digit rounding of the stored latencies, so rounding never flips
which shape `fit_local_fractions` picks."""
SEARCH_ITERATIONS = 40
"""Golden-section steps for a query's level F: the bracket shrinks to 0.618^40 ≈ 4e-9 of it."""


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    """A query's measured Amdahl serial fraction at one scale factor."""

    template: str
    scale_factor: float
    serial_fraction: float


def read_thread_scaling(text: str | None = None) -> list[ScalingPoint]:
    """The bundled 1→24-thread table (or `text` in its format) as serial-fraction points."""
    if text is None:
        resource = resources.files("lsched.workloads") / "measurements" / THREAD_SCALING_CSV
        text = resource.read_text(encoding="utf-8")
    points = []
    for row in csv.DictReader(line for line in text.splitlines() if not line.startswith("#")):
        scale = float(row["scale"].removeprefix("sf"))
        number = int(row["query"].lstrip("hq"))
        if row["amdahl_f"]:
            fraction = float(row["amdahl_f"])
        elif row["t12_s"] and row["t24_s"]:
            fraction = amdahl_from_doubling(float(row["t12_s"]) / float(row["t24_s"]), 12)
        else:
            continue
        points.append(ScalingPoint(f"tpch-q{number}", scale, fraction))
    return points


def amdahl_from_doubling(speedup: float, threads: int) -> float:
    """The serial fraction f for which going from k to 2k threads speeds up by `speedup`
    (k(1+(2k−1)f) / (2k(1+(k−1)f)) inverted; the table has only 12–48 threads at SF 500 and
    1000), clipped to 0..1."""
    k = threads
    denominator = (2 * k - 1) * speedup - 2 * (k - 1)
    if denominator <= 0:
        return 1.0
    return min(max((2.0 - speedup) / denominator, 0.0), 1.0)


def work_shares(template: QueryTemplate, scale_factor: float) -> dict[str, float]:
    """Share of the query's work in pipelines ending in each breaker type."""
    works: dict[str, float] = {}
    for p in template.pipelines:
        work = p.work_s_sf1 * scale_factor**p.work_exponent
        works[p.operator] = works.get(p.operator, 0.0) + work
    total = sum(works.values())
    return {op: w / total for op, w in works.items()}


def fit_operator_model(
    shares: Sequence[Mapping[str, float]], fractions: Sequence[float]
) -> dict[str, float]:
    """Serial fraction per breaker type ("*": the mean, for types never seen) by ridge least
    squares towards the mean, clipped to 0..1."""
    mean = float(np.mean(fractions)) if fractions else 0.0
    operators = sorted({op for share in shares for op in share})
    if not operators:
        return {"*": mean}
    a = np.array([[share.get(op, 0.0) for op in operators] for share in shares])
    b = np.asarray(fractions, dtype=float)
    # minimise |a x − b|² + ridge |x − mean|² as one least-squares system
    weight = math.sqrt(OPERATOR_MODEL_RIDGE)
    lhs = np.vstack([a, weight * np.eye(len(operators))])
    rhs = np.concatenate([b, np.full(len(operators), weight * mean)])
    x = np.clip(np.linalg.lstsq(lhs, rhs, rcond=None)[0], 0.0, 1.0)
    fitted = {op: float(v) for op, v in zip(operators, x, strict=True)}
    return {"*": min(max(mean, 0.0), 1.0), **fitted}


def predict(model: Mapping[str, float], share: Mapping[str, float]) -> float:
    return sum(w * model.get(op, model["*"]) for op, w in share.items())


def leave_one_out(shares: Sequence[Mapping[str, float]], fractions: Sequence[float]) -> list[float]:
    """Each query's fraction predicted by the operator model fitted without it."""
    predictions = []
    for i in range(len(fractions)):
        rest = [s for j, s in enumerate(shares) if j != i]
        model = fit_operator_model(rest, [f for j, f in enumerate(fractions) if j != i])
        predictions.append(predict(model, shares[i]))
    return predictions


def pipeline_shape(template: QueryTemplate, model: Mapping[str, float], sf: float) -> np.ndarray:
    """Each pipeline's operator fraction over the query's work-weighted mean (mean 1)."""
    values = np.array([model.get(p.operator, model["*"]) for p in template.pipelines])
    works = np.array([p.work_s_sf1 * sf**p.work_exponent for p in template.pipelines])
    mean = float(values @ works / works.sum())
    return values / mean if mean > 0 else np.ones(len(values))


def isolated_latency_s(
    template: QueryTemplate,
    scale_factor: float,
    cluster: ClusterConfig,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
) -> float:
    """The simulator's latency of the template (default parameters, exact estimates) alone on
    `cluster`, run by the engine rule: every free thread to the first ready pipeline in plan
    order. `fractions` replaces the pipelines' serial fractions (calibration searches them)."""
    query = template.instantiate(0, 0.0, scale_factor, "isolated", 0.0, np.random.default_rng(0))
    if fractions is not None:
        pipelines = tuple(
            replace(p, serial_fraction=min(1.0, max(0.0, float(f))))
            for p, f in zip(query.pipelines, fractions, strict=True)
        )
        query = replace(query, pipelines=pipelines)
    result = simulate([query], cluster, Fifo(), np.random.default_rng(seed), record_tasks=False)
    return result.queries[0].latency_s


def _calibration_cluster(threads: int, warmup_s: float) -> ClusterConfig:
    """One node of `threads` threads whose only cost is warm-up: what calibration fits under."""
    return ClusterConfig(
        nodes=1,
        threads_per_node=threads,
        moving_delay_s=0.0,
        warmup_s=warmup_s,
        parallel_overhead=None,
        task_skew=0.0,
    )


def _latency_log_error(
    template: QueryTemplate,
    scale_factor: float,
    fractions: np.ndarray,
    measured_s: Mapping[int, float],
    clusters: Mapping[int, ClusterConfig],
) -> float:
    """Squared log error of the simulated latencies at the measured thread counts."""
    total = 0.0
    for k, cluster in clusters.items():
        simulated = isolated_latency_s(template, scale_factor, cluster, fractions)
        total += math.log(simulated / measured_s[k]) ** 2
    return total


def fit_query_fraction(
    template: QueryTemplate,
    scale_factor: float,
    shape: np.ndarray,
    measured_s: Mapping[int, float],
    warmup_s: float,
) -> float:
    """The level F (pipeline fractions F·shape, clipped to 1) whose simulated latencies at the
    measured thread counts (> 1) best match the measurements in log space."""
    return _fit_level(template, scale_factor, shape, measured_s, warmup_s)[0]


def _fit_level(
    template: QueryTemplate,
    scale_factor: float,
    shape: np.ndarray,
    measured_s: Mapping[int, float],
    warmup_s: float,
) -> tuple[float, float]:
    """`fit_query_fraction`'s level and its squared log error (0 without a count > 1)."""
    counts = [k for k in sorted(measured_s) if k > 1]
    if not counts:
        return 0.0, 0.0
    positive = shape[shape > 0]
    high = min(1.0 / float(positive.min()), 1e3) if len(positive) else 1.0
    clusters = {k: _calibration_cluster(k, warmup_s) for k in counts}

    def error(level: float) -> float:
        fractions = np.minimum(level * shape, 1.0)
        return _latency_log_error(template, scale_factor, fractions, measured_s, clusters)

    low, top = 0.0, high
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = top - ratio * (top - low), low + ratio * (top - low)
    fa, fb = error(a), error(b)
    for _ in range(SEARCH_ITERATIONS):
        if fa <= fb:
            top, b, fb = b, a, fa
            a = top - ratio * (top - low)
            fa = error(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (top - low)
            fb = error(b)
    # the ends of the bracket are never evaluated by the search: keep one if it is better
    scored = [(error(level), level) for level in (0.0, (low + top) / 2.0, high)]
    best_error, best = min(scored, key=lambda pair: pair[0])
    return best, best_error


def fit_local_fractions(
    template: QueryTemplate,
    scale_factor: float,
    shape: np.ndarray,
    measured_s: Mapping[int, float],
    warmup_s: float,
) -> tuple[np.ndarray, float, bool]:
    """Per-pipeline serial fractions at a measured scale factor: the level fitted on the
    operator shape, or on a uniform shape where that matches the measurement strictly better.

    The operator shape comes from the large-scale model, where a breaker type can fit to 0
    (TPC-H's `cte` at SF 100): a query whose work sits mostly in such pipelines (Q11's CTE
    holds half of it) then cannot slow down at any level, and its template ran 15% under its
    own 2-thread measurement. Uniform wins only where the operator shape misses by more than
    `SHAPE_FIT_TOLERANCE` and uniform comes closer by more than it. Returns the fractions,
    the level and whether uniform won."""
    level, error = _fit_level(template, scale_factor, shape, measured_s, warmup_s)
    uniform = np.ones(len(shape))
    uniform_level, uniform_error = _fit_level(template, scale_factor, uniform, measured_s, warmup_s)
    error, uniform_error = math.sqrt(error), math.sqrt(uniform_error)
    if error > SHAPE_FIT_TOLERANCE and uniform_error < error - SHAPE_FIT_TOLERANCE:
        return np.minimum(uniform_level * uniform, 1.0), uniform_level, True
    return np.minimum(level * shape, 1.0), level, False


def scalability_prior(workload: WorkloadSpec) -> ScalabilityPrior:
    """What a database knows of its pipelines' scalability on this workload: the bundled
    operator-type model (`SCALABILITY_MODEL_SUITE`) at the data size the workload runs, its
    query class's `work_multiplier` (its streams' median for the others; 1 for a trace alone)
    times a query's scale factor."""
    model = bundled_template_set(SCALABILITY_MODEL_SUITE).scalability_model
    assert model is not None, "the bundled TPC-H file carries the operator model"
    multipliers = [stream.work_multiplier for stream in workload.streams]
    multiplier = float(np.median(multipliers)) if multipliers else 1.0
    by_class: dict[str, set[float]] = {}
    for stream in workload.streams:
        by_class.setdefault(stream.query_class, set()).add(stream.work_multiplier)
    classes = {name: values.pop() for name, values in by_class.items() if len(values) == 1}
    return ScalabilityPrior(model.scale_factors, dict(model.by_operator), multiplier, classes)
