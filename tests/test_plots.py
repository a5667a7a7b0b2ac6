"""Plots are drawn from the result files alone, show what the files say, and fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lsched.cli import app
from lsched.errors import ResultsError
from lsched.io import read_csv
from lsched.plots import (
    comparison_figure,
    default_comparison,
    folder_plots,
    learning_curve_figure,
    read_results,
    render_plots,
)
from lsched.plots.data import pair_queries, read_queries, read_tasks
from lsched.plots.paired import ALL_QUERIES, ratio_bars
from lsched.plots.timeline import time_average
from lsched.runner import run_scenario, write_results
from lsched.scenario import load_scenario
from lsched.sweep import confidence_halfwidth

SMALL = """\
name: small
description: Two small streams on two nodes, for the plot tests.
cluster: {nodes: 2, threads_per_node: 3, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 24
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.2}
      mix: "ssb-*"
      work_multiplier: 60
    - name: report
      arrivals: {process: poisson, rate_per_s: 0.1}
      mix: "tpch-q1"
      work_multiplier: 30
agents: [srpt, fifo, fair]
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plots")
    path = folder / "small.yaml"
    path.write_text(SMALL)
    scenario = load_scenario(path)
    report = run_scenario(scenario, seeds=2, keep_results=True)
    out = folder / "out"
    write_results(report, scenario, out)
    return out


def plots_by_name(folder: Path, *args: object, **kwargs: object) -> dict[str, object]:
    return {p.name: p.figure for p in folder_plots(folder, *args, **kwargs)}


def best(folder: Path) -> list[str]:
    """Agents by mean latency in results.json, best first."""
    agents = json.loads((folder / "results.json").read_text())["agents"]
    return sorted(agents, key=lambda a: agents[a]["mean_latency"])


def test_render_writes_every_plot_as_a_real_png(results: Path) -> None:
    first, second, _ = best(results)
    written = render_plots(results)
    pair = f"{first}-vs-{second}"
    assert {p.name for p in written} == {
        "comparison.png",
        "latency-cdf.png",
        f"paired-{pair}.png",
        f"timeline-{pair}.png",
        f"gantt-{pair}.png",
        "gantt-srpt.png",
        "gantt-fifo.png",
        "gantt-fair.png",
    }
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, path.name
    assert not list(results.glob(".*.tmp"))


def test_plots_are_deterministic(results: Path) -> None:
    first = {p.name: p.read_bytes() for p in render_plots(results)}
    again = {p.name: p.read_bytes() for p in render_plots(results)}
    assert first == again


def test_default_comparison_is_the_best_baseline_against_the_learned_policy(
    results: Path,
) -> None:
    folder = read_results(results)
    ranked = best(results)
    assert default_comparison(folder) == (ranked[0], ranked[1])
    assert default_comparison(folder, baseline=ranked[2]) == (ranked[2], ranked[0])
    learned = type(folder)(
        folder.folder,
        folder.scenario,
        folder.seeds,
        (*folder.agents, "lsched"),
        folder.lower_bound_mean_latency_s,
        {**folder.figures, "lsched": {"mean_latency": 0.5}},
    )
    assert default_comparison(learned) == (ranked[0], "lsched")  # the best *baseline*
    with pytest.raises(ResultsError, match="--baseline: no agent 'nope'"):
        default_comparison(folder, baseline="nope")


def test_paired_points_are_the_latencies_of_the_per_query_csvs(results: Path) -> None:
    figure = plots_by_name(results, ["fifo", "srpt"])["paired-fifo-vs-srpt.png"]
    scatter = figure.axes[0]
    assert "fifo" in scatter.get_xlabel() and "srpt" in scatter.get_ylabel()
    assert scatter.get_xscale() == scatter.get_yscale() == "log"
    templates = set()
    expected = set()
    for seed in (0, 1):
        fifo = {r["query_id"]: r for r in read_csv(results / f"queries-fifo-seed{seed}.csv")}
        for row in read_csv(results / f"queries-srpt-seed{seed}.csv"):
            expected.add((float(fifo[row["query_id"]]["latency_s"]), float(row["latency_s"])))
            templates.add(row["template"])
    series = scatter.collections
    assert len(series) == len(templates)  # one series per template
    assert sorted(s.get_label() for s in series) == sorted(templates)
    points = {tuple(p) for s in series for p in s.get_offsets().tolist()}
    assert points == expected
    assert len(points) == 48  # 24 queries × 2 seeds


def test_ratio_bars_are_per_seed_ratios_of_mean_latency_with_their_interval(
    results: Path,
) -> None:
    pairs = pair_queries(results, "fifo", "srpt", (0, 1))
    bars = {b.label: b for b in ratio_bars(pairs)}
    by_template: dict[str, list[float]] = {}
    for seed in (0, 1):
        fifo = {r["query_id"]: r for r in read_csv(results / f"queries-fifo-seed{seed}.csv")}
        groups: dict[str, tuple[list[float], list[float]]] = {}
        for row in read_csv(results / f"queries-srpt-seed{seed}.csv"):
            a, b = groups.setdefault(row["template"], ([], []))
            a.append(float(fifo[row["query_id"]]["latency_s"]))
            b.append(float(row["latency_s"]))
        for template, (a, b) in groups.items():
            by_template.setdefault(template, []).append(np.mean(b) / np.mean(a))
    for template, ratios in by_template.items():
        assert bars[template].ratio == pytest.approx(np.mean(ratios))
        assert bars[template].ci95 == pytest.approx(confidence_halfwidth(ratios))
    assert {"class adhoc", "class report", ALL_QUERIES} <= set(bars)
    figure = plots_by_name(results, ["fifo", "srpt"])["paired-fifo-vs-srpt.png"]
    drawn = [p.get_x() + p.get_width() for p in figure.axes[1].patches]  # bars start at 1
    assert drawn == pytest.approx([b.ratio for b in ratio_bars(pairs)])
    templates = [b.ratio for b in ratio_bars(pairs)][-len(by_template) :]
    assert templates == sorted(templates)  # largest gain first


def test_a_batch_is_one_arrival_period_drawn_without_warnings() -> None:
    """All queries at t = 0 (duckdb-batch, tpch-batch): one period holding every query, and
    the figure draws without matplotlib's singular-limits warning."""
    import warnings

    from lsched.plots.data import Pairs
    from lsched.plots.paired import paired_figure, period_ratios

    n = 6
    pairs = Pairs(
        seed=np.repeat([0, 1], n // 2),
        template=np.array(["q1", "q6"] * (n // 2)),
        query_class=np.array(["batch"] * n),
        arrival_s=np.zeros(n),
        baseline_s=np.arange(1.0, n + 1),
        other_s=np.arange(1.0, n + 1) * 0.5,
    )
    periods = period_ratios(pairs)
    assert np.all(np.diff(periods.edges_s) > 0)
    assert periods.ratio[0] == pytest.approx(0.5) and np.isnan(periods.ratio[1:]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paired_figure(pairs, "a", "b", "batch")


def test_the_timeline_obeys_littles_law_and_counts_busy_threads(results: Path) -> None:
    figure = plots_by_name(results, ["fifo", "fair"])["timeline-fifo-vs-fair.png"]
    system, waiting, busy, arrivals = figure.axes
    assert [ax.get_ylabel() for ax in (system, busy, arrivals)] == [
        "queries in system",
        "threads busy",
        "arrivals / s",
    ]
    assert "waiting" in waiting.get_ylabel()
    assert [line.get_label() for line in system.get_lines()] == ["fifo", "fair"]
    assert len(busy.get_lines()) == 3  # two agents and the thread count
    start, end = system.get_xlim()
    for number, agent in enumerate(("fifo", "fair")):
        queries = read_queries(results, agent, 0)
        tasks = read_tasks(results, agent, 0)
        in_system = system.get_lines()[number].get_ydata()
        # Area under "queries in system" = the sum of latencies (Little's law).
        assert in_system.mean() * (end - start) == pytest.approx(queries.latency_s.sum())
        running = busy.get_lines()[number].get_ydata()
        assert running.mean() * (end - start) == pytest.approx((tasks.end_s - tasks.start_s).sum())
        assert busy.get_lines()[number].get_ydata().max() <= 6 + 1e-9
    heights = [p.get_height() * p.get_width() for p in arrivals.patches]
    assert sum(heights) == pytest.approx(24)  # every query arrives once


def test_time_average_is_the_exact_mean_count_in_each_bin() -> None:
    starts, ends = np.array([0.0, 1.0, 1.5]), np.array([2.0, 3.0, 1.75])
    averages = time_average(starts, ends, np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    assert averages == pytest.approx([1.0, 2.25, 1.0, 0.0])


def test_the_side_by_side_gantt_shares_time_and_colours_and_marks_nodes(results: Path) -> None:
    figure = plots_by_name(results, ["fifo", "fair"])["gantt-fifo-vs-fair.png"]
    panels = [ax for ax in figure.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == ["fifo", "fair"]
    assert panels[0].get_xlim() == panels[1].get_xlim()
    arrival = {}
    for row in read_csv(results / "queries-fifo-seed0.csv"):
        arrival[int(row["query_id"])] = float(row["arrival_s"])
    colour_of: dict[int, tuple[float, ...]] = {}
    for ax, agent in zip(panels, ("fifo", "fair"), strict=True):
        rows = read_csv(results / f"tasks-{agent}-seed0.csv")
        bars = ax.collections[0]
        assert len(bars.get_paths()) == len(rows)
        for path, colour, row in zip(bars.get_paths(), bars.get_facecolors(), rows, strict=True):
            xs, ys = path.vertices[:, 0], path.vertices[:, 1]
            assert xs.min() == pytest.approx(float(row["start_s"]))
            assert xs.max() == pytest.approx(float(row["end_s"]))
            assert (ys.min() + ys.max()) / 2 == pytest.approx(int(row["thread"]))
            assert 0.5 < ys.max() - ys.min() < 1.0  # a bar stays within its thread's row
            # A query has one colour under every agent.
            assert colour_of.setdefault(int(row["query_id"]), tuple(colour)) == tuple(colour)
        boundaries = [line.get_ydata()[0] for line in ax.get_lines()]
        assert boundaries == [2.5]  # 2 nodes × 3 threads
        assert [t.get_text() for t in ax.get_yticklabels()] == ["node 0", "node 1"]
    late, early = max(arrival, key=arrival.get), min(arrival, key=arrival.get)
    assert colour_of[late] != colour_of[early]


def test_a_window_zooms_the_gantt_charts_and_the_timeline(results: Path) -> None:
    plots = plots_by_name(results, ["fifo", "fair"], (10.0, 40.0))
    assert plots["gantt-fifo-vs-fair.png"].axes[0].get_xlim() == (10.0, 40.0)
    assert plots["gantt-srpt.png"].axes[0].get_xlim() == (10.0, 40.0)
    assert plots["timeline-fifo-vs-fair.png"].axes[0].get_xlim() == (10.0, 40.0)
    with pytest.raises(ValueError, match="--window"):
        folder_plots(results, window=(40.0, 10.0))
    with pytest.raises(ValueError, match="starts after seed 0's last task ended"):
        folder_plots(results, window=(1e9, 2e9))


def test_comparison_bars_are_means_over_seeds_best_first_relative_to_the_best() -> None:
    per_seed = {
        "a": [np.array([1.0, 3.0]), np.array([3.0, 5.0])],
        "b": [np.array([2.0])] * 2,
        "c": [np.array([200.0])] * 2,
    }
    figure = comparison_figure(per_seed, lower_bound_s=0.5, scenario="x")
    mean = figure.axes[0]
    assert [t.get_text() for t in mean.get_yticklabels()] == ["b", "a", "c"]
    assert [bar.get_width() for bar in mean.patches] == pytest.approx([2.0, 3.0, 200.0])
    assert mean.get_xscale() == "log" and "mean latency" in mean.get_xlabel()
    labels = [t.get_text() for t in mean.texts]
    assert labels[0].endswith("best") and labels[1].endswith("+50.0%")
    assert labels[2].endswith("×100.0")
    (bound,) = [line for line in mean.get_lines() if line.get_label().startswith("lower bound")]
    assert list(bound.get_xdata()) == [0.5, 0.5]
    assert "p95" in figure.axes[1].get_xlabel()


def test_error_bars_show_the_spread_over_seeds_and_none_with_one_seed() -> None:
    two = comparison_figure({"a": [np.array([1.0]), np.array([3.0])]}, 0.5, "x").axes[0]
    (bars,) = [c for c in two.containers if getattr(c, "has_xerr", False)]
    assert bars.lines[2][0].get_segments()[0][:, 0] == pytest.approx([1.0, 3.0])  # 2 ± 1
    one = comparison_figure({"a": [np.array([2.0])]}, 0.5, "x").axes[0]
    assert not [c for c in one.containers if getattr(c, "has_xerr", False)]


def test_millisecond_axes_label_decades_only_in_plain_numbers() -> None:
    """Within one decade matplotlib labels the minor ticks (3×10⁻¹, 4×10⁻¹, ...), which
    overlapped at DuckDB's latencies: only the decades are labelled, as plain numbers."""
    per_seed = {"a": [np.array([0.106])] * 2, "b": [np.array([0.112])] * 2}
    figure = comparison_figure(per_seed, lower_bound_s=0.069, scenario="ms")
    figure.canvas.draw()
    for ax in figure.axes:
        shown = [t.get_text() for t in ax.get_xticklabels(which="both") if t.get_text()]
        assert shown and all(float(text) > 0 for text in shown), shown


def test_every_log_axis_labels_plain_numbers_and_iterations_are_whole() -> None:
    """The CDF, the learning curve and the parity plot label their log axes as the comparison
    does (0.2, not 2×10⁻¹ or 2e−01), and a short learning curve has no half iterations."""
    from lsched.plots.overview import cdf_figure
    from lsched.plots.training import parity_figure

    latencies = {"a": [np.array([0.08, 0.12, 0.3])], "b": [np.array([0.09, 0.2, 0.5])]}
    points = [{"agent": "a", "predicted_s": 0.1, "real_s": 0.12}]
    records = [
        {"iteration": i, "eval": {"s": {"mean_latency_s": 1.5 + i / 40, "best_baseline_s": 1.6}}}
        for i in range(3)
    ]
    curve = learning_curve_figure(records, "run")
    axes = [*cdf_figure(latencies, "ms").axes, *parity_figure(points, "p").axes, curve.axes[1]]
    for figure in {id(ax.figure): ax.figure for ax in axes}.values():
        figure.canvas.draw()
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            shown = [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
            assert shown and all(float(text.replace("\u2212", "-")) > 0 for text in shown), shown
    iterations = [t.get_text() for t in curve.axes[1].get_xticklabels() if t.get_text()]
    assert iterations and all(text.lstrip("\u2212-").isdigit() for text in iterations), iterations


def test_the_learning_curve_shows_validation_beside_the_best_baseline() -> None:
    records = [{"iteration": i, "rollout_mean_latency_s": 10.0 - i / 10} for i in range(1, 13)] + [
        {"iteration": i, "eval": {"s1": {"mean_latency_s": 9 - i / 4, "best_baseline_s": 8.0}}}
        for i in (0, 4, 8)
    ]
    validation = learning_curve_figure(records, "run").axes[1]
    policy, level = validation.get_lines()
    assert list(policy.get_ydata()) == [9.0, 8.0, 7.0]
    assert list(level.get_ydata()) == [8.0, 8.0]
    assert [policy.get_label(), level.get_label()] == ["s1: policy", "s1: best baseline"]
    # iterations=0 (a margin choice): no rollouts, and the panel says so instead of an empty axis
    rollouts = learning_curve_figure(records[-3:], "margin").axes[0]
    assert [t.get_text() for t in rollouts.texts] == ["no policy-gradient iterations in this run"]


def test_a_folder_without_results_or_with_a_missing_csv_fails_clearly(
    tmp_path: Path, results: Path
) -> None:
    with pytest.raises(ResultsError, match=r"results\.json: no such file"):
        render_plots(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not a results document"):
        render_plots(tmp_path)
    (tmp_path / "results.json").write_text((results / "results.json").read_text())
    with pytest.raises(ResultsError, match=r"queries-srpt-seed0\.csv: no such file"):
        render_plots(tmp_path)
    assert not list(tmp_path.glob("*.png"))


def test_lsched_plot_compares_any_pair_and_refuses_bad_options(
    tmp_path: Path, results: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["plot", str(results), "--compare", "fair,srpt,fifo"])
    assert result.exit_code == 0, result.output
    assert (results / "paired-fair-vs-srpt.png").exists()
    assert (results / "paired-fair-vs-fifo.png").exists()
    assert (results / "gantt-fair-vs-srpt-vs-fifo.png").exists()
    for args, message in (
        (["--compare", "fair,nope"], "error: --compare: no agent 'nope' in"),
        (["--compare", "fair"], "error: --compare: fair: name two or more different agents"),
        (["--window", "5"], "error: --window: '5' is not START,END in seconds"),
        (["--window", "9,3"], "error: --window: '9,3': need 0 <= START < END"),
    ):
        result = runner.invoke(app, ["plot", str(results), *args])
        assert result.exit_code == 2, args
        assert result.output.startswith(message), result.output
        assert len(result.output.strip().splitlines()) == 1
    # A folder from an older run that lacks a file names it, without a traceback.
    old = tmp_path / "old"
    old.mkdir()
    for path in results.iterdir():
        if path.name != "tasks-fair-seed0.csv":
            (old / path.name).write_bytes(path.read_bytes())
    before = {p.name: p.read_bytes() for p in old.glob("*.png")}
    result = runner.invoke(app, ["plot", str(old)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {old / 'tasks-fair-seed0.csv'}: no such file"
    assert {p.name: p.read_bytes() for p in old.glob("*.png")} == before  # nothing half-written


def test_agent_labels_that_are_not_file_names_are_made_safe(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(SMALL.replace(", fair]", ", {name: fifo, max_parallelism: 2}]"))
    scenario = load_scenario(path)
    report = run_scenario(scenario, seeds=1, keep_results=True)
    write_results(report, scenario, tmp_path / "out")
    written = {p.name for p in render_plots(tmp_path / "out")}
    assert "gantt-fifo_max_parallelism=2_.png" in written


def test_a_glyph_the_font_lacks_is_drawn_without_a_warning() -> None:
    """An emoji in a scenario's name warned once per label on stderr (about 20 lines a run)."""
    import warnings

    from matplotlib.figure import Figure

    from lsched.plots.data import png_bytes

    figure = Figure()
    figure.add_subplot().set_title("dashboards \U0001f680")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert png_bytes(figure).startswith(b"\x89PNG")
    assert not [w for w in caught if "missing from font" in str(w.message)]


def test_a_folder_written_before_file_names_were_capped_still_reads(tmp_path: Path) -> None:
    """Labels of 81 to ~240 characters were written whole before names were capped."""
    import shutil

    from lsched.io import agent_slug
    from lsched.plots.data import read_queries

    label = "fair[max_parallelism=" + "1" * 100 + "]"
    capped = tmp_path / f"queries-{agent_slug(label)}-seed0.csv"
    header = "query_id,template,class,scale_factor,arrival_s,start_s,finish_s,latency_s,"
    capped.write_text(header + "isolated_s,slowdown,origin\n0,t,adhoc,1,0,0,1,1,1,1,\n")
    whole = tmp_path / f"queries-{agent_slug(label, capped=False)}-seed0.csv"
    shutil.move(capped, whole)
    assert len(read_queries(tmp_path, label, 0).latency_s) == 1
