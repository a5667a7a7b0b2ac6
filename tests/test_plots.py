"""Plots are drawn from the result files alone, show what the files say, and fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lsched.errors import ResultsError
from lsched.io import read_csv
from lsched.plots import comparison_figure, gantt_figure, read_results, render_plots
from lsched.runner import run_scenario, write_results
from lsched.scenario import load_scenario

SMALL = """\
name: small
cluster: {nodes: 1, threads_per_node: 4, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 12
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.2}
      mix: "ssb-*"
      work_multiplier: 60
agents: [srpt, fifo]
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


def test_render_writes_every_plot_as_a_real_png(results: Path) -> None:
    written = render_plots(results)
    names = {p.name for p in written}
    assert names == {"gantt-srpt.png", "gantt-fifo.png", "latency-cdf.png", "comparison.png"}
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, path.name


def test_the_gantt_chart_has_one_bar_per_task_on_its_thread(results: Path) -> None:
    rows = read_csv(results / "tasks-srpt-seed0.csv")
    tasks = {
        key: np.array([float(r[key]) for r in rows])
        for key in ("query_id", "thread", "start_s", "end_s")
    }
    figure = gantt_figure(tasks, "srpt")
    bars = figure.axes[0].collections[0].get_paths()
    assert len(bars) == len(rows)
    first = bars[0].vertices
    assert first[:, 0].min() == pytest.approx(tasks["start_s"][0])
    assert first[:, 0].max() == pytest.approx(tasks["end_s"][0])
    low, high = first[:, 1].min(), first[:, 1].max()
    assert (low + high) / 2 == pytest.approx(tasks["thread"][0])
    assert 0.5 < high - low < 1.0  # a bar stays within its thread's row


def test_comparison_bars_are_the_mean_over_seeds_with_their_spread(results: Path) -> None:
    per_seed = {"a": [np.array([1.0, 3.0]), np.array([5.0, 7.0])], "b": [np.array([2.0])] * 2}
    figure = comparison_figure(per_seed, lower_bound_s=0.5, scenario="x")
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert heights == pytest.approx([4.0, 2.0])
    document = json.loads((results / "results.json").read_text())
    assert read_results(results).agents == tuple(document["agents"])


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


def test_agent_labels_that_are_not_file_names_are_made_safe(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(SMALL.replace(", fifo]", ", {name: fifo, max_parallelism: 2}]"))
    scenario = load_scenario(path)
    report = run_scenario(scenario, seeds=1, keep_results=True)
    write_results(report, scenario, tmp_path / "out")
    written = {p.name for p in render_plots(tmp_path / "out")}
    assert "gantt-fifo_max_parallelism=2_.png" in written
