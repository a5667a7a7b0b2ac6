"""Every agent at a glance: the comparison chart and the latency CDF.

The comparison is drawn on log axes with each bar labelled relative to the best agent, so a
very bad agent (cpf at 10× the others) does not squeeze the close ones into a few pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from lsched.plots.data import DPI, plain_log_axis

LINE_STYLES = ("-", "--", ":", "-.")
"""CDF lines alternate styles, so agents with identical curves (fair and weighted fair on a
one-class workload) both stay visible."""
BEST_COLOUR = "#2a9d8f"
OTHER_COLOUR = "#8d99ae"


def comparison_figure(
    latencies: Mapping[str, Sequence[np.ndarray]], lower_bound_s: float, scenario: str
) -> Figure:
    """Mean and p95 latency per agent, best first, on log axes; bars are means over seeds,
    error bars their std (none with one seed); each bar says how far it is from the best, the
    lower bound dashed."""
    agents = list(latencies)
    panels = (("mean latency (s, log scale)", np.mean), ("p95 latency (s, log scale)", _p95))
    per_seed = {
        label: {
            agent: [float(statistic(v)) for v in latencies[agent] if len(v)] for agent in agents
        }
        for label, statistic in panels
    }
    means = {agent: _mean(per_seed[panels[0][0]][agent]) for agent in agents}
    order = sorted(agents, key=lambda a: (np.isnan(means[a]), means[a]))
    figure = Figure(figsize=(12, max(3.5, 1.2 + 0.42 * len(agents))), dpi=DPI)
    positions = np.arange(len(order))
    for column, (label, _) in enumerate(panels):
        ax = figure.add_subplot(1, 2, column + 1)
        values = [_mean(per_seed[label][a]) for a in order]
        # one seed has no spread to show: no error bar rather than a ±0 one
        spread = [
            float(np.std(per_seed[label][a])) if len(per_seed[label][a]) > 1 else 0.0 for a in order
        ]
        best = np.nanmin(values) if np.isfinite(values).any() else np.nan
        ax.barh(
            positions,
            values,
            xerr=spread if any(spread) else None,
            capsize=3,
            color=[BEST_COLOUR if v == best else OTHER_COLOUR for v in values],
        )
        for y, value, error in zip(positions, values, spread, strict=True):
            if np.isfinite(value):
                ax.annotate(
                    f"{value:.3g} s  {_relative(value, best)}"
                    if value < 1000
                    else f"{value:.0f} s  {_relative(value, best)}",
                    (value + error, y),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    fontweight="bold" if value == best else "normal",
                )
        if column == 0:
            ax.axvline(
                lower_bound_s,
                color="black",
                linestyle="--",
                label=f"lower bound {lower_bound_s:.3g} s",
            )
            ax.legend(loc="lower right", fontsize=8)
        finite = [v for v in [*values, lower_bound_s] if np.isfinite(v) and v > 0]
        if finite:
            ax.set_xscale("log")
            ax.set_xlim(min(finite) / 1.5, max(finite) * 6)
            # plain numbers on the decades only: within one decade matplotlib labels the minor
            # ticks in scientific notation, and at millisecond latencies they overlapped
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(positions, order)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3, which="both")
    seeds = len(next(iter(latencies.values()), []))
    figure.suptitle(f"{scenario} — agents over {seeds} seed(s), best first")
    figure.tight_layout()
    return figure


def cdf_figure(latencies: Mapping[str, Sequence[np.ndarray]], scenario: str) -> Figure:
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
    plain_log_axis(ax.xaxis)
    ax.set_xlabel("query latency (s, log scale)")
    ax.set_ylabel("fraction of queries")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{scenario} — latency CDF")
    figure.tight_layout()
    return figure


def _relative(value: float, best: float) -> str:
    """How far a bar is from the best: a percentage when close, a factor when far."""
    if value == best:
        return "best"
    ratio = value / best
    return f"+{100 * (ratio - 1):.1f}%" if ratio < 2 else f"×{ratio:.1f}"


def _p95(values: np.ndarray) -> float:
    return float(np.percentile(values, 95))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
