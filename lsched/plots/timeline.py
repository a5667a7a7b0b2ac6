"""Load over time, one line per agent on a shared axis: where load is heavy, who drains it.

Four panels share the time axis: queries in the system (arrived, not finished), waiting
queries (arrived, no task started yet), threads busy, and beneath them the arrival rate (the
same for every agent: seed K is the same workload). Each value is its exact time average over
a bin, so the area under "queries in system" is the sum of latencies (Little's law).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from lsched.plots.data import DPI, Queries, Tasks
from lsched.plots.overview import LINE_STYLES

TIMELINE_BINS = 150
"""Bins the time axis is cut into; each point is the average over its bin."""


def time_average(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean number of intervals [start, end) open during each bin [edges[k], edges[k+1])."""
    integral = _open_time(ends, edges) - _open_time(starts, edges)
    return np.diff(integral) / np.diff(edges)


def _open_time(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """sum_i min(t, points[i]) at every t in edges (O(n log n) through a cumulative sum)."""
    ordered = np.sort(points)
    below = np.searchsorted(ordered, edges, side="left")
    cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
    return cumulative[below] + edges * (len(ordered) - below)


def timeline_edges(
    runs: Mapping[str, tuple[Queries, Tasks]], window: tuple[float, float] | None
) -> np.ndarray:
    """Bin edges over `window`, or from 0 to the last finish of any agent."""
    if window is not None:
        start, end = window
    else:
        finishes = [float(q.finish_s.max()) for q, _ in runs.values() if len(q.finish_s)]
        start, end = 0.0, max([1.0, *finishes])
    return np.linspace(start, end, TIMELINE_BINS + 1)


def timeline_figure(
    runs: Mapping[str, tuple[Queries, Tasks]],
    title: str,
    window: tuple[float, float] | None = None,
) -> Figure:
    """The four panels for every agent in `runs` (label -> its queries and tasks of one seed)."""
    edges = timeline_edges(runs, window)
    centres = (edges[:-1] + edges[1:]) / 2
    figure = Figure(figsize=(12, 9), dpi=DPI)
    system, waiting, busy, arrivals = figure.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2, 2, 1.2)}
    )
    threads = 0
    for number, (agent, (queries, tasks)) in enumerate(runs.items()):
        style = {"label": agent, "lw": 1.3, "linestyle": LINE_STYLES[number % len(LINE_STYLES)]}
        system.plot(centres, time_average(queries.arrival_s, queries.finish_s, edges), **style)
        waiting.plot(centres, time_average(queries.arrival_s, queries.start_s, edges), **style)
        busy.plot(centres, time_average(tasks.start_s, tasks.end_s, edges), **style)
        if len(tasks.thread):
            threads = max(threads, int(tasks.thread.max()) + 1)
    if threads:
        busy.axhline(threads, color="black", lw=0.8, ls="--", label=f"{threads} threads")
    first = next(iter(runs.values()))[0] if runs else None
    if first is not None:
        counts, _ = np.histogram(first.arrival_s, edges)
        arrivals.bar(centres, counts / np.diff(edges), width=np.diff(edges), color="#8d99ae")
    system.set_ylabel("queries in system")
    waiting.set_ylabel("waiting queries\n(none of its tasks run yet)")
    busy.set_ylabel("threads busy")
    arrivals.set_ylabel("arrivals / s")
    arrivals.set_xlabel("time (s)")
    for ax in (system, waiting, busy, arrivals):
        ax.grid(alpha=0.3)
        ax.set_xlim(edges[0], edges[-1])
    system.legend(loc="upper left", fontsize=8)
    busy.legend(loc="lower left", fontsize=7)
    bin_s = edges[1] - edges[0]
    figure.suptitle(f"{title} — averages over {bin_s:.3g} s bins")
    figure.tight_layout()
    return figure
