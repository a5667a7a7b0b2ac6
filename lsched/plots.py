"""Plots of a results folder: a Gantt chart per agent, the latency CDF and the agent comparison.

Plots are drawn from the files `lsched run --out` writes (results.json and the CSVs), never
from in-memory state, so `lsched plot DIR` re-renders exactly what a run produced. Matplotlib
is used through its object API on the Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from lsched.errors import ResultsError
from lsched.io import (
    RESULTS_FILE,
    atomic_write_bytes,
    gantt_file,
    queries_file,
    read_csv,
    tasks_file,
)

DPI = 110
"""Resolution of every PNG."""
BAR_HEIGHT = 0.8
"""Height of a task's bar in a Gantt row (1 = touching the next thread's row)."""
GANTT_COLUMNS = ("query_id", "thread", "start_s", "end_s")
LINE_STYLES = ("-", "--", ":", "-.")
"""CDF lines alternate styles, so agents with identical curves (fair and weighted fair on a
one-class workload) both stay visible."""
QUERY_COLOURS = 20
"""Queries cycle through this many colours (the tab20 map) in the Gantt chart."""


@dataclass(frozen=True, slots=True)
class ResultsFolder:
    """What the plots need from a results folder."""

    folder: Path
    scenario: str
    seeds: tuple[int, ...]
    agents: tuple[str, ...]
    lower_bound_mean_latency_s: float


def read_results(folder: str | Path) -> ResultsFolder:
    """Read results.json of a folder `lsched run --out` wrote."""
    path = Path(folder) / RESULTS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return ResultsFolder(
            folder=Path(folder),
            scenario=str(document["scenario"]),
            seeds=tuple(int(s) for s in document["seeds"]),
            agents=tuple(document["agents"]),
            lower_bound_mean_latency_s=float(document["lower_bound"]["mean_latency"]),
        )
    except FileNotFoundError:
        raise ResultsError(
            f"{path}: no such file (is this a folder `lsched run --out` wrote?)"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise ResultsError(f"{path}: not a results document ({error})") from None


def render_plots(folder: str | Path) -> list[Path]:
    """Write gantt-AGENT.png (first seed), latency-cdf.png and comparison.png; return them."""
    results = read_results(folder)
    latencies = {
        agent: [_column(queries_file(folder, agent, seed), "latency_s") for seed in results.seeds]
        for agent in results.agents
    }
    first_seed = results.seeds[0]
    pngs: list[tuple[Path, bytes]] = []
    for agent in results.agents:
        tasks = _table(tasks_file(folder, agent, first_seed), GANTT_COLUMNS)
        figure = gantt_figure(tasks, f"{results.scenario} — {agent} (seed {first_seed})")
        pngs.append((gantt_file(folder, agent), png_bytes(figure)))
    cdf = cdf_figure(latencies, results.scenario)
    pngs.append((Path(folder) / "latency-cdf.png", png_bytes(cdf)))
    comparison = comparison_figure(latencies, results.lower_bound_mean_latency_s, results.scenario)
    pngs.append((Path(folder) / "comparison.png", png_bytes(comparison)))
    # Everything is drawn before anything is written: a bad file leaves the old plots intact.
    return [atomic_write_bytes(path, data) for path, data in pngs]


def gantt_figure(tasks: dict[str, np.ndarray], title: str) -> Figure:
    """Threads (rows) × time, one bar per task, coloured by query."""
    thread = tasks["thread"].astype(int)
    start, end = tasks["start_s"], tasks["end_s"]
    query = tasks["query_id"].astype(int)
    threads = int(thread.max()) + 1 if len(thread) else 1
    figure = Figure(figsize=(11, max(3.0, min(12.0, 1.5 + 0.18 * threads))), dpi=DPI)
    ax = figure.add_subplot()
    low, high = thread - BAR_HEIGHT / 2, thread + BAR_HEIGHT / 2
    boxes = np.stack(
        [
            np.column_stack(corner)
            for corner in ((start, low), (start, high), (end, high), (end, low))
        ],
        axis=1,
    )
    cmap = _colour_map()
    colours = cmap((query % QUERY_COLOURS) / QUERY_COLOURS)
    ax.add_collection(
        PolyCollection(boxes, facecolors=colours, edgecolors="none", antialiased=False)
    )
    ax.set_xlim(float(start.min()) if len(start) else 0.0, float(end.max()) if len(end) else 1.0)
    ax.set_ylim(threads - 0.5, -0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("thread")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def cdf_figure(latencies: dict[str, Sequence[np.ndarray]], scenario: str) -> Figure:
    """Empirical CDF of query latency per agent, all seeds pooled."""
    figure = Figure(figsize=(8, 5), dpi=DPI)
    ax = figure.add_subplot()
    for number, (agent, per_seed) in enumerate(latencies.items()):
        values = np.sort(np.concatenate(per_seed))
        if not len(values):
            continue
        ax.step(
            values,
            np.arange(1, len(values) + 1) / len(values),
            where="post",
            label=agent,
            linestyle=LINE_STYLES[number % len(LINE_STYLES)],
        )
    ax.set_xscale("log")
    ax.set_xlabel("query latency (s, log scale)")
    ax.set_ylabel("fraction of queries")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{scenario} — latency CDF")
    figure.tight_layout()
    return figure


def comparison_figure(
    latencies: dict[str, Sequence[np.ndarray]], lower_bound_s: float, scenario: str
) -> Figure:
    """Mean and p95 latency per agent; bars are means over seeds, error bars their std."""
    agents = list(latencies)
    figure = Figure(figsize=(max(7.0, 1.2 * len(agents) + 3), 5), dpi=DPI)
    panels = (("mean latency (s)", np.mean), ("p95 latency (s)", lambda v: np.percentile(v, 95)))
    positions = np.arange(len(agents))
    for column, (label, statistic) in enumerate(panels):
        ax = figure.add_subplot(1, 2, column + 1)
        per_seed = [[float(statistic(v)) if len(v) else 0.0 for v in latencies[a]] for a in agents]
        ax.bar(
            positions,
            [np.mean(v) for v in per_seed],
            yerr=[np.std(v) for v in per_seed],
            capsize=4,
            color=[_colour_map()(i % QUERY_COLOURS / QUERY_COLOURS) for i in range(len(agents))],
        )
        if column == 0:
            ax.axhline(lower_bound_s, color="black", linestyle="--", label="lower bound")
            ax.legend(loc="upper right")
        ax.set_xticks(positions, agents, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(f"{scenario} — agents over {len(next(iter(latencies.values()), []))} seed(s)")
    figure.tight_layout()
    return figure


LEARNING_CURVE_FILE = "learning-curve.png"
METRICS_FILE = "metrics.jsonl"
SMOOTHING_ITERATIONS = 8
"""Iterations averaged in the learning curve's moving mean (training visits scenarios in turn,
so single iterations swing with the scenario)."""
"""What `lsched train` writes per iteration (lsched.train.METRICS_FILE)."""


def parity_figure(points: Sequence[dict], title: str) -> Figure:
    """Predicted vs real latency per query (log-log), one colour per agent, the diagonal."""
    figure = Figure(figsize=(6.5, 6), dpi=DPI)
    ax = figure.add_subplot()
    agents = list(dict.fromkeys(p["agent"] for p in points))
    values = [v for p in points for v in (p["predicted_s"], p["real_s"]) if v > 0]
    for agent in agents:
        mine = [p for p in points if p["agent"] == agent]
        ax.scatter(
            [p["real_s"] for p in mine],
            [p["predicted_s"] for p in mine],
            s=10,
            alpha=0.6,
            label=agent,
        )
    if values:
        low, high = min(values) / 1.2, max(values) * 1.2
        ax.plot([low, high], [low, high], color="black", linewidth=0.8, label="predicted = real")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("real latency on DuckDB (s)")
    ax.set_ylabel("simulated latency × speed factor (s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def render_learning_curve(folder: str | Path) -> list[Path]:
    """Draw a training folder's metrics.jsonl: rollout latency and validation vs. baselines."""
    path = Path(folder) / METRICS_FILE
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: cannot read training metrics: {error}") from None
    figure = learning_curve_figure(records, Path(folder).name)
    return [atomic_write_bytes(Path(folder) / LEARNING_CURVE_FILE, png_bytes(figure))]


def learning_curve_figure(records: Sequence[dict], title: str) -> Figure:
    """Left: rollouts' mean latency per iteration. Right: greedy validation against the best
    baseline per scenario (below 0: better than every baseline)."""
    figure = Figure(figsize=(11, 4), dpi=DPI)
    rollouts, validation = figure.subplots(1, 2)
    steps = [r for r in records if "rollout_mean_latency_s" in r]
    iterations = np.array([r["iteration"] for r in steps])
    latency = np.array([r["rollout_mean_latency_s"] for r in steps], dtype=float)
    rollouts.plot(iterations, latency, lw=0.8, alpha=0.35, label="per iteration")
    if len(latency) >= SMOOTHING_ITERATIONS:
        window = np.ones(SMOOTHING_ITERATIONS) / SMOOTHING_ITERATIONS
        smooth = np.convolve(latency, window, mode="valid")
        rollouts.plot(iterations[SMOOTHING_ITERATIONS - 1 :], smooth, lw=1.6, label="moving mean")
        rollouts.legend(fontsize=7)
    rollouts.set(xlabel="iteration", ylabel="rollout mean latency (s)", title="training rollouts")
    evaluated = [r for r in records if "eval" in r]
    scenarios = sorted({name for r in evaluated for name in r["eval"]})
    for scenario in scenarios:
        points = [
            (r["iteration"], 100 * r["eval"][scenario]["vs_best"])
            for r in evaluated
            if "vs_best" in r["eval"].get(scenario, {})
        ]
        if points:
            validation.plot(*zip(*points, strict=True), marker=".", lw=1, label=scenario)
    validation.axhline(0, color="black", lw=0.8)
    validation.set(
        xlabel="iteration", ylabel="mean latency vs best baseline (%)", title="validation"
    )
    if scenarios:
        validation.legend(fontsize=7)
    for ax in (rollouts, validation):
        ax.grid(alpha=0.3)
    figure.suptitle(f"learning curve: {title}")
    figure.tight_layout()
    return figure


def _colour_map() -> Colormap:
    return colormaps["tab20"]


def png_bytes(figure: Figure) -> bytes:
    """Render a figure on the Agg canvas (no display needed)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _table(path: Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV file as float arrays."""
    try:
        rows = read_csv(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    try:
        return {name: np.array([float(row[name]) for row in rows]) for name in columns}
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsError(f"{path}: a column is missing or not numeric ({error})") from None


def _column(path: Path, name: str) -> np.ndarray:
    return _table(path, (name,))[name]
