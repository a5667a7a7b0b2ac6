"""Does switching rules with the load beat `tuned`? Least-parallelizable-first while few
queries are in the system, SERPT once more than `--thresholds` are.

Berg, Moseley, Wang and Harchol-Balter (2024) show that with jobs of different scalability the
optimal policy changes with load: least-parallelizable-first (LPF) at light load, shortest
expected remaining processing time (SERPT) at heavy load — a switch no fixed heuristic makes,
and so room `tuned` (which picks one rule per scenario) might leave. The switch here reads
only what a database knows: the number of queries in the system (the load it sees) and the
operator-type scalability prior both rules already use. Each rule runs with the load-adaptive
cap (`adaptive_parallelism: 1.0`) that `tuned` picks for SERPT on the bundled streams.

Prints one JSON line: per scenario, each agent's mean latency and its paired ratio to `tuned`
on seeds 0..N−1 (the held-out range).
Usage: python benchmarks/bench_load_switch.py [--scenarios tpch-streaming,diurnal-mixed]
       [--seeds 4] [--thresholds 2,4,8,16,32]
"""

from __future__ import annotations

import argparse
import json
import statistics

from agents.heuristics import Knobs
from agents.scalability import ScalabilityPrior
from agents.theory import LeastParallelizableFirst, Serpt
from lsched.runner import agent_context, simulate_one
from lsched.scenario import AgentChoice, Scenario, load_scenario
from sim.engine import simulate
from sim.interface import Observation, PipelineView

ADAPTIVE_CAP = 1.0
"""The cap `tuned` chose with SERPT on tpch-streaming (its 60-candidate search, 2026-12-07)."""


class LoadSwitch(Serpt):
    """LPF's order while at most `heavy_queries` queries are in the system, SERPT's above."""

    def __init__(
        self, knobs: Knobs, heavy_queries: int, scalability: ScalabilityPrior | None
    ) -> None:
        super().__init__(knobs, scalability=scalability)
        self.heavy_queries = heavy_queries

    def _key(self, pipeline: PipelineView, obs: Observation) -> tuple:
        if len(obs.queries) > self.heavy_queries:
            return Serpt._key(self, pipeline, obs)
        return LeastParallelizableFirst._key(self, pipeline, obs)


def switch_latency_s(scenario: Scenario, heavy_queries: int, seed: int) -> float:
    scheduler = LoadSwitch(
        Knobs(adaptive_parallelism=ADAPTIVE_CAP),
        heavy_queries,
        agent_context(scenario).scalability,
    )
    result = simulate(
        scenario.queries(seed),
        scenario.cluster,
        scheduler,
        scenario.execution_rng(seed),
        oracle=scenario.oracle,
        budget=scenario.budget,
    )
    return result.mean_latency_s


def measure(name: str, seeds: range, thresholds: list[int]) -> dict[str, dict[str, float]]:
    scenario = load_scenario(name)
    cap = {"adaptive_parallelism": ADAPTIVE_CAP}
    runs: dict[str, list[float]] = {}
    for label, choice in (
        ("tuned", AgentChoice("tuned")),
        ("serpt", AgentChoice("serpt", cap)),
        ("lpf", AgentChoice("lpf", cap)),
    ):
        runs[label] = [simulate_one(scenario, choice, seed).mean_latency_s for seed in seeds]
    for threshold in thresholds:
        runs[f"switch@{threshold}"] = [switch_latency_s(scenario, threshold, s) for s in seeds]
    base = runs["tuned"]
    figures = {}
    for label, values in runs.items():
        paired = [v / b for v, b in zip(values, base, strict=True)]
        figures[label] = {
            "mean_latency_s": round(statistics.fmean(values), 4),
            "vs_tuned": round(statistics.fmean(paired) - 1, 5),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="tpch-streaming,diurnal-mixed")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--thresholds", default="2,4,8,16,32")
    args = parser.parse_args()
    thresholds = [int(t) for t in args.thresholds.split(",")]
    figures = {
        name: measure(name, range(args.seeds), thresholds) for name in args.scenarios.split(",")
    }
    print(json.dumps({"benchmark": "load_switch", "seeds": args.seeds, "scenarios": figures}))


if __name__ == "__main__":
    main()
