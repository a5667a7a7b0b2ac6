"""`lsched.real.fidelity_report` without an engine: real runs stood in for by the simulator
itself on an engine whose speed drifts between runs, so the right answer is known."""

from __future__ import annotations

import pytest

from lsched.real import RealQuery, RealReport, _slower, fidelity_report, query_level_agent
from lsched.scenario import AgentChoice, scenario_from_document
from lsched.workloads.scalability import isolated_latency_s
from sim.engine import simulate
from sim.query_level import QueryLevel

DOCUMENT = {
    "name": "drifting",
    "cluster": {"engine": "duckdb"},
    "workload": {
        "queries": 30,
        "streams": [
            {
                "name": "adhoc",
                "arrivals": {"process": "poisson", "rate_per_s": 100},
                "mix": ["tpch-q1", "tpch-q3", "tpch-q6", "tpch-q14"],
                "scale_factors": 0.1,
            }
        ],
    },
    "agents": ["fifo", "sjf"],
}

SPEEDS = {"fifo": (1.35, 0.8, 1.05), "sjf": (1.0, 1.2, 0.9), "srpt": (1.1, 1.3, 0.95)}
"""The engine's speed during each agent's run of each repeat round: it drifts run by run."""


def drifting_report(
    time_scale: float = 1.0, labels: tuple[str, ...] = ("fifo", "sjf")
) -> tuple[RealReport, object, list[AgentChoice]]:
    """A report whose every run is the simulator's own at that round's speed, its arrivals
    times `time_scale` as the runner submits them, with isolated passes that measure exactly
    that speed around it."""
    scenario = scenario_from_document(DOCUMENT, "drifting.yaml")
    agents = [AgentChoice(label) for label in labels]
    queries = scenario.queries(0)
    alone = {
        (q.template, q.scale_factor): isolated_latency_s(
            scenario.templates[q.template], q.scale_factor, scenario.cluster
        )
        for q in queries
    }
    runs, brackets, probes = {}, {}, []
    for repeat in range(3):
        for choice in agents:
            speed = SPEEDS[choice.label][repeat]
            policy = query_level_agent(scenario, choice).policy
            result = simulate(
                [_slower(q, speed, time_scale) for q in queries],
                scenario.cluster,
                QueryLevel(policy),
                scenario.execution_rng(0),
                record_tasks=False,
            )
            key = choice.label, 0, repeat
            runs[key] = [
                RealQuery(
                    q.query_id,
                    q.template,
                    q.query_class,
                    q.scale_factor,
                    q.arrival_s,
                    q.start_s,
                    q.finish_s,
                    1,
                    0,
                )
                for q in result.queries
            ]
            sample = {k: v * speed for k, v in alone.items()}
            probes += [sample, sample]
            brackets[key] = (len(probes) - 2, len(probes) - 1)
    isolated = {k: tuple(p[k] for p in probes) for k in alone}
    report = RealReport(
        scenario.name,
        (0,),
        tuple(a.label for a in agents),
        runs,
        3,
        time_scale,
        isolated,
        scenario.cluster.total_threads,
        brackets=brackets,
        probes=tuple(probes),
    )
    return report, scenario, agents


def test_drift_matched_figures_see_through_a_drifting_engine() -> None:
    report, scenario, agents = drifting_report()
    fidelity = fidelity_report(report, scenario, agents)
    every = [v for speeds in SPEEDS.values() for v in speeds]
    assert fidelity["speed_factor_runs"] == pytest.approx([min(every), max(every)])
    for figures in fidelity["agents"].values():
        assert figures["mean_error_matched"] == pytest.approx(0.0, abs=1e-9)
        assert figures["dispatch_ms"] is None  # the stand-in runs record no hand-over
    assert fidelity["pairs"]["fifo / sjf"]["ratio_error_matched"] == pytest.approx(0.0, abs=1e-9)
    # one factor for the whole session predicts every run at the session's median speed
    # (1.025), which neither agent's median run had
    assert fidelity["speed_factor"] == pytest.approx(1.025)
    assert min(abs(f["mean_error"]) for f in fidelity["agents"].values()) > 1e-3


@pytest.mark.parametrize("time_scale", [0.5, 3.0])
def test_the_prediction_submits_as_the_runs_did(time_scale: float) -> None:
    """Runs whose arrivals were stretched or compressed are predicted at those arrivals: the
    drift-matched errors stay zero, and the load (hence the latencies) moves with the scale."""
    report, scenario, agents = drifting_report(time_scale)
    fidelity = fidelity_report(report, scenario, agents)
    assert fidelity["time_scale"] == time_scale
    for figures in fidelity["agents"].values():
        assert figures["mean_error_matched"] == pytest.approx(0.0, abs=1e-9)
    unscaled = fidelity_report(*drifting_report())
    compressed = time_scale < 1
    for label, figures in fidelity["agents"].items():
        more_load = (
            figures["predicted_mean_latency"] > unscaled["agents"][label]["predicted_mean_latency"]
        )
        assert more_load == compressed


def test_agents_that_decide_alike_measure_the_ratio_noise() -> None:
    """sjf and srpt start the same queries at query level: one predicted schedule, so the
    distance of their real ratio from 1 is the session's noise on a ratio (here, by
    construction, that of the runs' speeds); fifo schedules otherwise."""
    report, scenario, agents = drifting_report(labels=("fifo", "sjf", "srpt"))
    fidelity = fidelity_report(report, scenario, agents)
    pairs = fidelity["pairs"]
    assert pairs["sjf / srpt"]["same_schedule"]
    assert pairs["sjf / srpt"]["predicted_ratio"] == pytest.approx(1.0)
    assert not pairs["fifo / sjf"]["same_schedule"] and not pairs["fifo / srpt"]["same_schedule"]
    real = pairs["sjf / srpt"]["real_ratio"]
    assert real != pytest.approx(1.0)  # the same schedule at different speeds
    assert fidelity["same_schedule_spread"] == pytest.approx(abs(real - 1.0))
    # without such a pair there is nothing to read it from
    assert fidelity_report(*drifting_report())["same_schedule_spread"] is None


def test_a_report_without_brackets_has_no_drift_matched_figures() -> None:
    report, scenario, agents = drifting_report()
    bare = RealReport(
        report.scenario,
        report.seeds,
        report.agents,
        report.runs,
        report.repeats,
        report.time_scale,
        report.isolated,
        report.threads,
    )
    fidelity = fidelity_report(bare, scenario, agents)
    assert fidelity["speed_factor_runs"] is None
    assert "mean_error_matched" not in fidelity["agents"]["fifo"]
    assert "ratio_error_matched" not in fidelity["pairs"]["fifo / sjf"]


def test_the_real_table_title_names_the_time_scale_and_the_alike_agents_spread() -> None:
    from rich.console import Console

    from lsched.cli import _real_table

    report, scenario, agents = drifting_report(1.5, labels=("fifo", "sjf", "srpt"))
    fidelity = fidelity_report(report, scenario, agents)
    console = Console(width=300, record=True)
    console.print(_real_table({"scenario": "drifting", "seeds": [0], "repeats": 3}, fidelity))
    title = " ".join(console.export_text().split())  # the title may wrap
    assert "arrivals × 1.50" in title
    assert f"agents deciding alike {fidelity['same_schedule_spread']:.1%} apart" in title
