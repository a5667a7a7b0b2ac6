"""Agent B against agent A query by query: which queries B makes faster, which slower, and when.

Seed K gives both agents the same queries, so each query is a pair of latencies. Three views:
each pair on log-log axes with the diagonal; the mean-latency ratio B/A per template (and per
class) as sorted bars with 95% confidence intervals over seeds; and the same ratio over the
run, by arrival time, beside A's latency in each period (how heavy the load was then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lsched.plots.data import DPI, Pairs, plain_log_axis, template_order
from lsched.stats import confidence_halfwidth

MAX_TEMPLATE_COLOURS = 40
"""Up to this many templates, points are coloured by template (tab20 + tab20b); beyond, by class."""
PERIODS = 10
"""Equal windows of arrival time the ratio over the run is averaged in."""
MIN_PERIOD_RANGE = np.log(1.25)
"""The ratio-over-time panel shows at least 0.8 .. 1.25 (per-query points beyond are cut off)."""
CI_REACH = 3.0
"""The ratio bars' axis spans at most this many times the longest bar (whiskers may run off)."""
PERIOD_COLOUR = "#264653"
FASTER, SLOWER = "#2a9d8f", "#e76f51"
ALL_QUERIES = "all queries"


@dataclass(frozen=True, slots=True)
class RatioBar:
    """B's mean latency over A's on one group of queries (a template, a class, all)."""

    label: str
    queries: int
    """Queries in the group, all seeds together."""
    ratio: float
    """Mean over seeds of (B's mean latency / A's mean latency) on the group's queries."""
    ci95: float
    """Half-width of the 95% Student-t interval of that mean over seeds (0 for one seed)."""


def group_ratios(pairs: Pairs, groups: np.ndarray, labels: Sequence[str]) -> list[RatioBar]:
    """One RatioBar per label in `labels` (groups[i] is query i's label), seed by seed."""
    bars = []
    for label in labels:
        chosen = groups == label
        per_seed = [
            _ratio(pairs.other_s[mask], pairs.baseline_s[mask])
            for seed in np.unique(pairs.seed)
            if (mask := chosen & (pairs.seed == seed)).any()
        ]
        bars.append(
            RatioBar(
                label,
                int(chosen.sum()),
                float(np.mean(per_seed)) if per_seed else float("nan"),
                confidence_halfwidth(per_seed),
            )
        )
    return bars


def ratio_bars(pairs: Pairs) -> list[RatioBar]:
    """All queries first, then each class (when there are several), then every template,
    sorted from B's largest gain to its largest loss."""
    everything = group_ratios(
        pairs, np.full(len(pairs.seed), ALL_QUERIES, dtype=object), [ALL_QUERIES]
    )
    classes = template_order(list(pairs.query_class))
    by_class = (
        group_ratios(
            pairs,
            np.array([f"class {c}" for c in pairs.query_class], dtype=object),
            [f"class {c}" for c in classes],
        )
        if len(classes) > 1
        else []
    )
    by_template = group_ratios(pairs, pairs.template, template_order(list(pairs.template)))
    return [*everything, *_sorted(by_class), *_sorted(by_template)]


@dataclass(frozen=True, slots=True)
class PeriodRatios:
    """The ratio B/A of mean latency over the run, by when queries arrived."""

    edges_s: np.ndarray
    """Window boundaries in arrival time, PERIODS + 1 of them."""
    ratio: np.ndarray
    """Per window: mean over seeds of (B's mean latency / A's) of the queries arriving in it."""
    ci95: np.ndarray
    baseline_mean_s: np.ndarray
    """Per window: A's mean latency of those queries, all seeds pooled (how heavy the load was)."""


def period_ratios(pairs: Pairs, periods: int = PERIODS) -> PeriodRatios:
    """Cut the run into equal arrival-time windows and compare B with A in each."""
    end = float(pairs.arrival_s.max()) if len(pairs.arrival_s) else 0.0
    if end <= 0:  # a batch: every query arrives at once, one period of a nominal second
        end = 1.0
    edges = np.linspace(0.0, end, periods + 1)
    window = np.clip(np.searchsorted(edges, pairs.arrival_s, side="right") - 1, 0, periods - 1)
    ratio, ci95, baseline = (np.full(periods, np.nan) for _ in range(3))
    for k in range(periods):
        inside = window == k
        per_seed = [
            _ratio(pairs.other_s[mask], pairs.baseline_s[mask])
            for seed in np.unique(pairs.seed)
            if (mask := inside & (pairs.seed == seed)).any()
        ]
        if per_seed:
            ratio[k], ci95[k] = np.mean(per_seed), confidence_halfwidth(per_seed)
            baseline[k] = float(pairs.baseline_s[inside].mean())
    return PeriodRatios(edges, ratio, ci95, baseline)


def paired_figure(pairs: Pairs, baseline: str, other: str, scenario: str) -> Figure:
    """The three views of `other` (B) against `baseline` (A) on one figure."""
    figure = Figure(figsize=(14, 12), dpi=DPI)
    grid = figure.add_gridspec(2, 2, height_ratios=(1.5, 1), width_ratios=(1, 1))
    _scatter(figure.add_subplot(grid[0, 0]), pairs, baseline, other)
    _bars(figure.add_subplot(grid[0, 1]), ratio_bars(pairs), baseline, other)
    _periods(figure.add_subplot(grid[1, :]), pairs, baseline, other)
    seeds = len(np.unique(pairs.seed))
    figure.suptitle(
        f"{scenario} — {other} against {baseline}, the same {len(pairs.seed)} queries "
        f"({seeds} seed(s)); below 1 / under the diagonal: {other} is faster"
    )
    figure.tight_layout()
    return figure


def _scatter(ax: Axes, pairs: Pairs, baseline: str, other: str) -> None:
    templates = template_order(list(pairs.template))
    by_template = len(templates) <= MAX_TEMPLATE_COLOURS
    groups = pairs.template if by_template else pairs.query_class
    names = templates if by_template else template_order(list(pairs.query_class))
    palette = [*colormaps["tab20"].colors, *colormaps["tab20b"].colors]
    for number, name in enumerate(names):
        mine = groups == name
        ax.scatter(
            pairs.baseline_s[mine],
            pairs.other_s[mine],
            s=12,
            alpha=0.75,
            color=palette[number % len(palette)],
            label=name,
            edgecolors="none",
        )
    values = np.concatenate([pairs.baseline_s, pairs.other_s])
    values = values[values > 0]
    if len(values):
        low, high = float(values.min()) / 1.3, float(values.max()) * 1.3
        ax.plot([low, high], [low, high], color="black", lw=0.9, label="equal latency")
        for factor, style in ((2, ":"), (0.5, ":")):
            ax.plot([low, high], [low * factor, high * factor], color="grey", lw=0.7, ls=style)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis)
        plain_log_axis(ax.yaxis)
    ax.set_xlabel(f"latency under {baseline} (s, log scale)")
    ax.set_ylabel(f"latency under {other} (s, log scale)")
    ax.set_title(
        f"each query (dotted: 2× faster / slower); colour: {'template' if by_template else 'class'}"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=6,
        fontsize=7,
        markerscale=1.4,
        frameon=False,
    )


def _bars(ax: Axes, bars: Sequence[RatioBar], baseline: str, other: str) -> None:
    positions = np.arange(len(bars))
    ratios = np.array([b.ratio for b in bars])
    ax.barh(
        positions,
        ratios - 1,
        left=1,
        xerr=[b.ci95 for b in bars],
        capsize=2,
        color=[FASTER if r < 1 else SLOWER for r in ratios],
        edgecolor=["black" if b.label == ALL_QUERIES else "none" for b in bars],
    )
    ax.axvline(1, color="black", lw=0.9)
    ax.set_yticks(positions, [f"{b.label} ({b.queries})" for b in bars], fontsize=8)
    ax.invert_yaxis()
    known = [b for b in bars if np.isfinite(b.ratio)]
    reach = max([abs(b.ratio - 1) for b in known], default=0.0)
    with_ci = max([abs(b.ratio - 1) + b.ci95 for b in known], default=0.0)
    # Wide intervals (few seeds) may run off the axis rather than shrink the bars to slivers.
    width = max(0.02, 1.15 * min(with_ci, CI_REACH * reach))
    ax.set_xlim(max(0.0, 1 - width), 1 + width)  # a ratio of latencies is never below 0
    ax.set_xlabel(f"mean latency under {other} / under {baseline} (95% CI over seeds)")
    ax.set_title(f"by group (queries): green, {other} faster; red, slower")
    ax.grid(axis="x", alpha=0.3)


def _periods(ax: Axes, pairs: Pairs, baseline: str, other: str) -> None:
    periods = period_ratios(pairs)
    centres = (periods.edges_s[:-1] + periods.edges_s[1:]) / 2
    width = periods.edges_s[1] - periods.edges_s[0]
    load = ax.twinx()
    load.bar(centres, periods.baseline_mean_s, width=width * 0.9, color="#d9d9d9", zorder=0)
    load.set_ylabel(f"mean latency under {baseline} (s, bars)")
    ax.set_zorder(load.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.scatter(
        pairs.arrival_s,
        pairs.other_s / pairs.baseline_s,
        s=5,
        color="grey",
        alpha=0.35,
        edgecolors="none",
        label="each query",
    )
    ax.fill_between(
        centres,
        periods.ratio - periods.ci95,
        periods.ratio + periods.ci95,
        color=PERIOD_COLOUR,
        alpha=0.15,
        label="95% CI over seeds",
    )
    ax.plot(
        centres, periods.ratio, marker="o", color=PERIOD_COLOUR, lw=1.5, label="mean-latency ratio"
    )
    ax.axhline(1, color="black", lw=0.9)
    ax.set_yscale("log")
    known = np.isfinite(periods.ratio)
    reach = np.abs(
        np.log(
            np.concatenate(
                [
                    periods.ratio[known] - periods.ci95[known],
                    periods.ratio[known] + periods.ci95[known],
                ]
            ).clip(1e-3)
        )
    )
    own = np.abs(np.log(periods.ratio[known].clip(1e-3))).max(initial=0.0)
    # as the bars above: wide intervals (few seeds) run off the axis rather than flatten it
    shown = min(reach.max(initial=0.0), CI_REACH * max(own, MIN_PERIOD_RANGE))
    limit = float(np.exp(max(MIN_PERIOD_RANGE, 1.4 * shown)))
    ax.set_ylim(1 / limit, limit)
    plain_log_axis(ax.yaxis)  # a plain formatter on every minor tick overlapped on wide ranges
    ax.set_xlim(periods.edges_s[0], periods.edges_s[-1])
    ax.set_xlabel("arrival time of the query (s)")
    ax.set_ylabel(f"latency {other} / {baseline} (log)")
    ax.set_title(
        f"when {other} gains: the ratio by arrival period, beside {baseline}'s latency then"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _ratio(other_s: np.ndarray, baseline_s: np.ndarray) -> float:
    return float(other_s.mean() / baseline_s.mean())


def _sorted(bars: Sequence[RatioBar]) -> list[RatioBar]:
    return sorted(bars, key=lambda b: (np.isnan(b.ratio), b.ratio))
