"""Gantt charts: threads (rows) × time, one bar per task, the colour its query's arrival time.

Colouring by arrival time gives a query the same colour under every agent and stays readable
at hundreds of queries: a bar whose colour is far "older" than where it sits waited long, and
an agent that runs queries in arrival order shows a smooth gradient. Agents drawn together share
the time axis; node boundaries are marked; `window` zooms on a stretch of time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from lsched.plots.data import DPI, Queries, Tasks

BAR_HEIGHT = 0.8
"""Height of a task's bar in a Gantt row (1 = touching the next thread's row)."""
COLOUR_MAP = "turbo"
"""Arrival time → colour: many distinguishable hues, so neighbouring queries differ."""


def arrival_colours(queries: Queries) -> tuple[Mapping[int, float], Normalize]:
    """Arrival time by query id and the normalisation of the colour scale (0 .. last arrival)."""
    arrivals = dict(zip(queries.query_id.tolist(), queries.arrival_s.tolist(), strict=True))
    top = max(arrivals.values(), default=1.0)
    return arrivals, Normalize(0.0, top if top > 0 else 1.0)


def draw_gantt(
    ax: Axes,
    tasks: Tasks,
    arrivals: Mapping[int, float],
    norm: Normalize,
    window: tuple[float, float],
) -> None:
    """One agent's tasks on `ax`, time limited to `window`, node boundaries as lines."""
    keep = (tasks.end_s >= window[0]) & (tasks.start_s <= window[1])
    start, end, thread = tasks.start_s[keep], tasks.end_s[keep], tasks.thread[keep]
    low, high = thread - BAR_HEIGHT / 2, thread + BAR_HEIGHT / 2
    boxes = np.stack(
        [np.column_stack(c) for c in ((start, low), (start, high), (end, high), (end, low))],
        axis=1,
    ).reshape(-1, 4, 2)
    arrival = np.array([arrivals.get(int(q), 0.0) for q in tasks.query_id[keep]])
    colours = colormaps[COLOUR_MAP](norm(arrival))
    ax.add_collection(
        PolyCollection(boxes, facecolors=colours, edgecolors="none", antialiased=False)
    )
    threads = int(tasks.thread.max()) + 1 if len(tasks.thread) else 1
    node_of = np.full(threads, -1)
    node_of[tasks.thread] = tasks.node
    boundaries = [t + 0.5 for t in range(threads - 1) if node_of[t] != node_of[t + 1]]
    for boundary in boundaries:
        ax.axhline(boundary, color="black", lw=0.8)
    if boundaries:
        starts = [-0.5, *boundaries]
        ends = [*boundaries, threads - 0.5]
        ax.set_yticks(
            [(a + b) / 2 for a, b in zip(starts, ends, strict=True)],
            [f"node {node_of[int(a + 0.5)]}" for a in starts],
            fontsize=8,
        )
    ax.set_xlim(*window)
    ax.set_ylim(threads - 0.5, -0.5)
    ax.set_ylabel("thread")


def gantt_window(
    runs: Mapping[str, Tasks], window: tuple[float, float] | None
) -> tuple[float, float]:
    """`window`, or the span from the first task start to the last end over all agents."""
    if window is not None:
        return window
    starts = [float(t.start_s.min()) for t in runs.values() if len(t.start_s)]
    ends = [float(t.end_s.max()) for t in runs.values() if len(t.end_s)]
    return (min(starts, default=0.0), max(ends, default=1.0))


def gantt_figure(
    runs: Mapping[str, Tasks],
    queries: Queries,
    title: str,
    window: tuple[float, float] | None = None,
) -> Figure:
    """One panel per agent in `runs`, stacked on the same time axis, one colour bar."""
    arrivals, norm = arrival_colours(queries)
    span = gantt_window(runs, window)
    threads = max([int(t.thread.max()) + 1 for t in runs.values() if len(t.thread)] or [1])
    panel_in = max(2.2, min(6.0, 1.0 + 0.09 * threads))
    figure = Figure(figsize=(13, 0.9 + panel_in * len(runs)), dpi=DPI, layout="constrained")
    axes = figure.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (agent, tasks) in zip(axes, runs.items(), strict=True):
        draw_gantt(ax, tasks, arrivals, norm, span)
        ax.set_title(agent, loc="left", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    mappable = ScalarMappable(norm=norm, cmap=colormaps[COLOUR_MAP])
    bar = figure.colorbar(mappable, ax=list(axes), pad=0.01)
    bar.set_label("query arrival time (s)")
    figure.suptitle(title)
    return figure
