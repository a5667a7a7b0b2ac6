"""How much of the hindsight schedule could an online scheduler learn? Distil it by template.

bench_hindsight.py finds, per seed, per-query SRPT weights and caps that use the seed's whole
future (every arrival, every true duration). An online scheduler cannot know that future, but
it does know each query's template and scale factor, and a template's queries are wrong the
same way every time. If the hindsight weights repeat per template, a scheduler can learn them
from past workloads; what does not repeat is per-instance knowledge no online policy has.

This script measures that split, the ceiling of distilling the hindsight schedule into any
policy that keys on the template (the learned policy's query-log features do):

1. on `--train-seeds` workloads of the scenario's training range it runs bench_hindsight's local
   search (`--evaluations` per workload) and records every query's hindsight weight and cap;
2. it fits a *template prior*: per (template, scale factor), the shrunk geometric mean of the
   weights (log-weights summed over n + `--shrink` instances) and the median cap;
3. on held-out seeds 0..`--seeds`-1 it runs `tuned`, plain SRPT at `tuned`'s cap (the search's
   start) and the prior-weighted SRPT, and reports each against `tuned`, paired per seed.

It also reports how much of the training workloads' log-weight variance the template explains,
then with the instance's estimated work and the arrivals just before it (known online), then
with its hidden estimation error and the arrivals just after it: how much of the hindsight
schedule needs knowledge no scheduler has.

Usage: python benchmarks/bench_hindsight_prior.py [SCENARIO] [--train-seeds 6]
       [--evaluations 1500] [--seeds 10] [--shrink 1.0] [--fit-by-sensitivity] [--workers 2]
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from bench_hindsight import Schedule, _mean_latency, _start_knobs, local_search

from lsched.runner import build_agent
from lsched.scenario import Scenario, load_scenario
from lsched.stats import confidence_halfwidth

TemplateKey = tuple[str, float]
TRAIN_SEED_START = 700
"""Training workloads are the scenario's training-range seeds from this offset on: apart from
`lsched train`'s teacher (200+), validation (500+) and rollout (1,000+) seeds."""


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One training query's hindsight weight and cap, with what a database knows of it."""

    template: str
    scale_factor: float
    log_weight: float
    cap: int
    log_est_work: float
    """Observable: the optimizer's estimate of the instance's work (moves with its parameters)."""
    log_true_over_est: float
    """Hidden: how wrong that estimate is for this instance (no online scheduler knows it)."""
    recent_arrivals: float
    """Observable context: log(1 + queries that arrived within one mean latency before it)."""
    coming_arrivals: float
    """Hidden context: log(1 + queries that arrive within one mean latency after it)."""
    sensitivity_s: float
    """How much the workload's mean latency rises when this query's weight and cap go back to
    the start's (0 where its setting does not matter: the search's neutral drift)."""


def _start(queries: list, knobs: tuple[int, float | None]) -> Schedule:
    return Schedule.uniform(queries, *knobs)


def _tuned_knobs(scenario: Scenario) -> tuple[int, float | None]:
    """`tuned`'s cap and adaptive factor on the scenario's cluster (its search, no run)."""
    tuned = build_agent(scenario, "tuned")
    return _start_knobs(tuned.tune(scenario.cluster).best, scenario.cluster.total_threads)


def search_workload(
    scenario: Scenario, seed: int, evaluations: int, knobs: tuple[int, float | None]
) -> tuple[list[QueryRecord], float, float]:
    """Hindsight weights of one training workload; its start and best mean latency."""
    queries = list(scenario.queries(seed))
    start = _start(queries, knobs)
    start_s = _mean_latency(scenario, queries, seed, start.build())
    best, best_s = local_search(scenario, queries, seed, start, start_s, evaluations)
    arrivals = np.sort([q.arrival_s for q in queries])

    def arrivals_between(low: float, high: float) -> float:
        count = np.searchsorted(arrivals, high, "right") - np.searchsorted(arrivals, low, "left")
        return math.log1p(max(0, int(count) - 1))  # less the query itself

    records = [
        QueryRecord(
            q.template,
            q.scale_factor,
            math.log(best.weights[q.query_id]),
            best.caps[q.query_id],
            math.log(q.est_work_s),
            math.log(q.work_s / q.est_work_s),
            arrivals_between(q.arrival_s - start_s, q.arrival_s),
            arrivals_between(q.arrival_s, q.arrival_s + start_s),
            _sensitivity(scenario, queries, seed, best, start, q.query_id, best_s),
        )
        for q in queries
    ]
    return records, start_s, best_s


def _sensitivity(
    scenario: Scenario,
    queries: list,
    seed: int,
    best: Schedule,
    start: Schedule,
    query_id: int,
    best_s: float,
) -> float:
    """Mean latency added by resetting one query's weight and cap to the start's."""
    weights, caps = dict(best.weights), dict(best.caps)
    weights[query_id], caps[query_id] = start.weights[query_id], start.caps[query_id]
    reset = Schedule(weights, caps, best.adaptive)
    return max(0.0, _mean_latency(scenario, queries, seed, reset.build()) - best_s)


def fit_prior(
    records: list[QueryRecord], shrink: float, only_sensitive: bool = False
) -> tuple[dict[TemplateKey, float], dict[TemplateKey, int]]:
    """Per (template, scale factor): shrunk geometric-mean weight and median cap.

    `only_sensitive` fits on the queries whose setting matters (`sensitivity_s` > 0), leaving
    out the weights the search let drift; a key with none of those keeps weight 1 and no cap.
    """
    logs: dict[TemplateKey, list[float]] = defaultdict(list)
    caps: dict[TemplateKey, list[int]] = defaultdict(list)
    for record in records:
        if only_sensitive and record.sensitivity_s <= 0.0:
            continue
        key = (record.template, record.scale_factor)
        logs[key].append(record.log_weight)
        caps[key].append(record.cap)
    weights = {key: math.exp(sum(values) / (len(values) + shrink)) for key, values in logs.items()}
    medians = {key: int(np.median(values)) for key, values in caps.items()}
    return weights, medians


def variance_shares(records: list[QueryRecord], by_sensitivity: bool = False) -> dict[str, float]:
    """How much of the log-weights' variance each kind of knowledge explains (R², nested).

    `template`: the key alone (between-template share); `template_and_estimate`: plus the
    instance's estimated work within its template; `observable`: plus the arrivals in the mean
    latency before it (all three known online); `with_hidden_error`: plus the instance's
    true/estimated work ratio; `with_hidden_future`: plus the arrivals in the mean latency after
    it (hidden from any scheduler). `by_sensitivity` weighs each query by how much its setting
    matters, so that the weights of queries the search left drifting count for nothing.
    """
    keys = [(r.template, r.scale_factor) for r in records]
    mass = np.array([r.sensitivity_s if by_sensitivity else 1.0 for r in records])
    columns = {
        "log_weight": np.array([r.log_weight for r in records]),
        "log_est_work": np.array([r.log_est_work for r in records]),
        "log_true_over_est": np.array([r.log_true_over_est for r in records]),
        "recent_arrivals": np.array([r.recent_arrivals for r in records]),
        "coming_arrivals": np.array([r.coming_arrivals for r in records]),
    }
    nested = {
        "template_and_estimate": ["log_est_work"],
        "observable": ["log_est_work", "recent_arrivals"],
        "with_hidden_error": ["log_est_work", "recent_arrivals", "log_true_over_est"],
        "with_hidden_future": [
            "log_est_work",
            "recent_arrivals",
            "log_true_over_est",
            "coming_arrivals",
        ],
    }

    def variance(values: np.ndarray) -> float:
        centre = float(np.average(values, weights=mass))
        return float(np.average((values - centre) ** 2, weights=mass))

    if mass.sum() <= 0.0 or variance(columns["log_weight"]) == 0.0:
        return dict.fromkeys(("template", *nested), 0.0)
    total = variance(columns["log_weight"])
    within = {name: _demeaned(values, keys, mass) for name, values in columns.items()}
    target = within["log_weight"]
    root = np.sqrt(mass)

    def explained(names: list[str]) -> float:
        design = np.column_stack([within[n] for n in names])
        coefficients, *_ = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)
        return 1.0 - variance(target - design @ coefficients) / total

    shares = {"template": round(1.0 - variance(target) / total, 3)}
    shares.update({name: round(explained(names), 3) for name, names in nested.items()})
    return shares


def _demeaned(values: np.ndarray, keys: list[TemplateKey], mass: np.ndarray) -> np.ndarray:
    """Each value less its key's (weighted) mean: what varies within a template."""
    sums: dict[TemplateKey, float] = defaultdict(float)
    totals: dict[TemplateKey, float] = defaultdict(float)
    for key, value, weight in zip(keys, values, mass, strict=True):
        sums[key] += float(value) * float(weight)
        totals[key] += float(weight)
    return np.array(
        [
            v - (sums[k] / totals[k] if totals[k] > 0 else 0.0)
            for k, v in zip(keys, values, strict=True)
        ]
    )


def evaluate_seed(
    scenario: Scenario,
    seed: int,
    knobs: tuple[int, float | None],
    weights: dict[TemplateKey, float],
    caps: dict[TemplateKey, int],
) -> dict[str, float]:
    """Held-out seed: tuned, plain SRPT, the prior's weights, and its weights and caps."""
    queries = list(scenario.queries(seed))
    start = _start(queries, knobs)

    def keyed(query) -> TemplateKey:
        return (query.template, query.scale_factor)

    weighted = Schedule(
        {q.query_id: weights.get(keyed(q), 1.0) for q in queries}, dict(start.caps), start.adaptive
    )
    capped = Schedule(
        dict(weighted.weights),
        {q.query_id: caps.get(keyed(q), start.caps[q.query_id]) for q in queries},
        start.adaptive,
    )
    return {
        "tuned": _mean_latency(scenario, queries, seed, build_agent(scenario, "tuned")),
        "srpt_start": _mean_latency(scenario, queries, seed, start.build()),
        "prior_weights": _mean_latency(scenario, queries, seed, weighted.build()),
        "prior_weights_caps": _mean_latency(scenario, queries, seed, capped.build()),
    }


def paired(values: list[float], baseline: list[float]) -> dict[str, float]:
    """Mean per-seed ratio − 1 against the baseline, with its 95% half-width."""
    ratios = [v / b - 1 for v, b in zip(values, baseline, strict=True)]
    return {
        "mean": round(float(np.mean(ratios)), 4),
        "ci95": round(confidence_halfwidth(ratios), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default="tpch-streaming")
    parser.add_argument("--train-seeds", type=int, default=6)
    parser.add_argument("--evaluations", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--shrink", type=float, default=1.0)
    parser.add_argument(
        "--fit-by-sensitivity",
        action="store_true",
        help="fit the prior only on queries whose hindsight setting changes the mean latency",
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    knobs = _tuned_knobs(scenario)
    train = [scenario.train_seed_offset + TRAIN_SEED_START + k for k in range(args.train_seeds)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        searched = list(
            pool.map(
                search_workload,
                [scenario] * len(train),
                train,
                [args.evaluations] * len(train),
                [knobs] * len(train),
            )
        )
        records = [r for workload, _, _ in searched for r in workload]
        weights, caps = fit_prior(records, args.shrink, args.fit_by_sensitivity)
        held = list(range(args.seeds))
        results = list(
            pool.map(
                evaluate_seed,
                [scenario] * len(held),
                held,
                [knobs] * len(held),
                [weights] * len(held),
                [caps] * len(held),
            )
        )
    tuned = [r["tuned"] for r in results]
    report = {
        name: {
            "mean_latency_s": round(float(np.mean([r[name] for r in results])), 3),
            "vs_tuned": paired([r[name] for r in results], tuned),
        }
        for name in ("srpt_start", "prior_weights", "prior_weights_caps")
    }
    print(
        json.dumps(
            {
                "scenario": scenario.name,
                "train_seeds": train,
                "evaluations_per_seed": args.evaluations,
                "shrink": args.shrink,
                "fit_by_sensitivity": args.fit_by_sensitivity,
                "start_cap_adaptive": list(knobs),
                "train_hindsight_vs_start": round(
                    float(np.mean([b / s - 1 for _, s, b in searched])), 4
                ),
                "log_weight_variance_explained": variance_shares(records),
                "by_sensitivity": variance_shares(records, by_sensitivity=True),
                "queries_that_matter": round(
                    float(np.mean([r.sensitivity_s > 0 for r in records])), 3
                ),
                "templates": len(weights),
                "heldout_seeds": args.seeds,
                "tuned_mean_latency_s": round(float(np.mean(tuned)), 3),
                "heldout": report,
            }
        )
    )


if __name__ == "__main__":
    main()
