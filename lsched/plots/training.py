"""Plots of a training folder (the learning curve) and of `lsched real` (predicted vs real)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lsched.errors import ResultsError
from lsched.io import LEARNING_CURVE_FILE, METRICS_FILE, atomic_write_bytes
from lsched.plots.data import DPI, plain_log_axis, png_bytes

SMOOTHING_ITERATIONS = 8
"""Iterations averaged in the learning curve's moving mean (training visits scenarios in turn,
so single iterations swing with the scenario)."""


def render_learning_curve(folder: str | Path) -> list[Path]:
    """Draw a training folder's metrics.jsonl: rollout latency and validation vs. baselines."""
    path = Path(folder) / METRICS_FILE
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: cannot read training metrics: {error}") from None
    try:
        figure = learning_curve_figure(records, Path(folder).name)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResultsError(f"{path}: not training metrics ({error!r})") from None
    return [atomic_write_bytes(Path(folder) / LEARNING_CURVE_FILE, png_bytes(figure))]


def learning_curve_figure(records: Sequence[dict], title: str) -> Figure:
    """Left: rollouts' mean latency per iteration. Right: the greedy policy's validation mean
    latency per scenario (solid), beside the best baseline's level there (dashed)."""
    figure = Figure(figsize=(12, 4.5), dpi=DPI)
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
    if not steps:  # `iterations=0`: a warm start or a margin choice, no rollouts to draw
        rollouts.text(
            0.5,
            0.5,
            "no policy-gradient iterations in this run",
            ha="center",
            va="center",
            transform=rollouts.transAxes,
            fontsize=9,
            color="0.4",
        )
        rollouts.set_xticks([])
        rollouts.set_yticks([])
    evaluated = [r for r in records if "eval" in r]
    scenarios = sorted({name for r in evaluated for name in r["eval"]})
    colours = colormaps["tab10"].colors
    for number, scenario in enumerate(scenarios):
        entries = [
            (r["iteration"], r["eval"][scenario]) for r in evaluated if scenario in r["eval"]
        ]
        colour = colours[number % len(colours)]
        validation.plot(
            [i for i, _ in entries],
            [e["mean_latency_s"] for _, e in entries],
            marker=".",
            lw=1.2,
            color=colour,
            label=f"{scenario}: policy",
        )
        levels = [e["best_baseline_s"] for _, e in entries if "best_baseline_s" in e]
        if levels:
            validation.axhline(
                levels[-1], color=colour, ls="--", lw=1, label=f"{scenario}: best baseline"
            )
    validation.set(
        xlabel="iteration",
        ylabel="validation mean latency (s, log scale)",
        title="validation (greedy) against the best baseline",
    )
    if scenarios:
        validation.set_yscale("log")
        plain_log_axis(validation.yaxis)
        validation.legend(fontsize=7)
    for ax in (rollouts, validation):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole
    figure.suptitle(f"learning curve: {title}")
    figure.tight_layout()
    return figure


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
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("real latency on DuckDB (s)")
    ax.set_ylabel("simulated latency × speed factor (s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    figure.tight_layout()
    return figure
