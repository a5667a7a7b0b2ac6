"""Plots of a results folder: what `lsched run --out` draws and `lsched plot DIR` re-draws.

Every plot is drawn from the files in the folder (results.json and the CSVs), never from
in-memory state. Besides the overview of all agents (comparison, latency CDF, one Gantt chart
per agent on a shared time axis), a *comparison* of agents A, B, ... (A the baseline) adds B
against A query by query (paired-A-vs-B.png), their load over time (timeline-A-vs-B.png) and
their schedules on one time axis (gantt-A-vs-B.png). By default A is the scenario's best
baseline and B the learned policy (or the runner-up). Matplotlib is used through its object
API on the Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from lsched.io import SCENARIO_FILE, agent_slug, atomic_write_bytes, gantt_file
from lsched.plots.data import (
    ResultsFolder,
    check_agents,
    default_comparison,
    pair_queries,
    png_bytes,
    read_queries,
    read_results,
    read_tasks,
)
from lsched.plots.gantt import gantt_figure, gantt_window
from lsched.plots.overview import cdf_figure, comparison_figure
from lsched.plots.paired import paired_figure
from lsched.plots.timeline import timeline_figure
from lsched.plots.training import (
    LEARNING_CURVE_FILE,
    METRICS_FILE,
    learning_curve_figure,
    parity_figure,
    render_learning_curve,
)

__all__ = [
    "LEARNING_CURVE_FILE",
    "METRICS_FILE",
    "SCENARIO_FILE",
    "Plot",
    "ResultsFolder",
    "cdf_figure",
    "comparison_figure",
    "default_comparison",
    "folder_plots",
    "gantt_figure",
    "learning_curve_figure",
    "paired_figure",
    "parity_figure",
    "png_bytes",
    "read_results",
    "render_learning_curve",
    "render_plots",
    "timeline_figure",
]


@dataclass(frozen=True, slots=True)
class Plot:
    """One figure of a folder: the file it is written to and what it shows."""

    name: str
    """File name inside the folder (`comparison.png`)."""
    caption: str
    """How to read it, one or two sentences (the report prints it under the figure)."""
    figure: Figure


def folder_plots(
    folder: str | Path,
    compare: Sequence[str] | None = None,
    window: tuple[float, float] | None = None,
    *,
    agent_gantts: bool = True,
) -> list[Plot]:
    """Every plot of a results folder, drawn from its files; `compare` = (A, B, ...) with A the
    baseline (default: `default_comparison`), `window` = (start_s, end_s) zooms the Gantt
    charts and the timeline; `agent_gantts=False` leaves out the one-per-agent Gantt charts."""
    results = read_results(folder)
    if compare is not None:
        _check_compare(results, compare)
    agents = tuple(compare) if compare is not None else default_comparison(results)
    if window is not None and not (0 <= window[0] < window[1]):
        raise ValueError(
            f"--window: {window[0]:g},{window[1]:g} is not START,END with 0 <= START < END"
        )
    latencies = {
        agent: [read_queries(folder, agent, seed).latency_s for seed in results.seeds]
        for agent in results.agents
    }
    seed = results.seeds[0]
    scenario = results.scenario
    shown_agents = results.agents if agent_gantts else agents
    runs = {agent: read_tasks(folder, agent, seed) for agent in shown_agents}
    if window is not None and window[0] >= (end_s := gantt_window(runs, None)[1]):
        raise ValueError(  # checked before any figure is drawn
            f"--window: {window[0]:g},{window[1]:g} starts after seed {seed}'s last task "
            f"ended ({end_s:.3g} s): nothing to draw"
        )
    plots = [
        Plot(
            "comparison.png",
            "Mean and p95 latency per agent over seeds (bars: mean, whiskers: standard deviation),"
            " best first, on log axes; each bar says how far it is from the best agent, and the "
            "dashed line is the lower bound no schedule can beat.",
            comparison_figure(latencies, results.lower_bound_mean_latency_s, scenario),
        ),
        Plot(
            "latency-cdf.png",
            "The share of queries finished within a latency, every seed pooled: the further left, "
            "the better; the top right is the tail.",
            cdf_figure(latencies, scenario),
        ),
    ]
    baseline, *others = agents or (None,)
    for other in others:
        pairs = pair_queries(folder, baseline, other, results.seeds)
        plots.append(
            Plot(
                f"paired-{agent_slug(baseline)}-vs-{agent_slug(other)}.png",
                f"The same queries under {other} against {baseline}. Top left: each query; under "
                f"the diagonal, {other} was faster. Top right: mean-latency ratio per template "
                "(and class), sorted, with 95% confidence intervals over seeds. Bottom: the ratio "
                f"by arrival period, beside {baseline}'s latency then (the load).",
                paired_figure(pairs, baseline, other, scenario),
            )
        )
    if len(agents) > 1:
        label = agent_slug("-vs-".join(agents))  # capped as one name: many agents fit
        shown = {a: (read_queries(folder, a, seed), runs[a]) for a in agents}
        plots.append(
            Plot(
                f"timeline-{label}.png",
                f"Seed {seed} over time, one line per agent: queries in the system, queries still "
                "waiting for their first task, threads busy, and the arrival rate beneath — where "
                "the load is heavy and which agent drains it.",
                timeline_figure(shown, f"{scenario}, seed {seed}", window),
            )
        )
        plots.append(
            Plot(
                f"gantt-{label}.png",
                f"The schedules of seed {seed} on one time axis: threads (rows, nodes separated) × "
                "time, one bar per task, coloured by its query's arrival time (the same colour "
                "under every agent; a bar much 'older' than its place waited long).",
                gantt_figure(
                    {a: runs[a] for a in agents},
                    shown[agents[0]][0],
                    f"{scenario}, seed {seed}",
                    window,
                ),
            )
        )
    queries = read_queries(folder, results.agents[0], seed)
    span = gantt_window(runs, window)
    for agent, tasks in runs.items() if agent_gantts else ():
        plots.append(
            Plot(
                gantt_file(folder, agent).name,
                f"{agent}'s schedule of seed {seed}.",
                gantt_figure({agent: tasks}, queries, f"{scenario} — {agent} (seed {seed})", span),
            )
        )
    return plots


def render_plots(
    folder: str | Path,
    compare: Sequence[str] | None = None,
    window: tuple[float, float] | None = None,
) -> list[Path]:
    """Write every plot of `folder_plots` into the folder; return the files written.

    Everything is drawn before anything is written: a bad file leaves the old plots intact.
    """
    rendered = [
        (Path(folder) / p.name, png_bytes(p.figure)) for p in folder_plots(folder, compare, window)
    ]
    return [atomic_write_bytes(path, data) for path, data in rendered]


def _check_compare(results: ResultsFolder, compare: Sequence[str]) -> None:
    check_agents(results, compare, "--compare")
    if len(compare) < 2 or len(set(compare)) != len(compare):
        raise ValueError(f"--compare: {','.join(compare)}: name two or more different agents")
