"""`lsched report DIR`: one self-contained HTML page for sharing a result.

The page holds the results table (sortable by clicking a column), every overview plot of the
folder and the scenario document, all drawn from the folder's files. It needs no network when
viewed: the plots are embedded as data URLs, the script and style are inline, and a Content
Security Policy forbids loading anything else. The same folder gives the same bytes.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from lsched.documents import read_text
from lsched.errors import InputError, ResultsError
from lsched.io import FIDELITY_FILE, SCENARIO_FILE, SWEEP_TABLE_FILE, atomic_write_text
from lsched.plots import Plot, folder_plots, png_bytes
from lsched.plots.data import ResultsFolder, default_comparison, read_queries, read_results
from lsched.stats import paired_ratio

REPORT_FILE = "report.html"
MAX_FIDELITY_BYTES = 64 << 20
"""Largest fidelity.json read (a point per query, agent and seed: ~150 bytes each)."""
COLUMNS: Mapping[str, str] = {
    "mean_latency": "mean (s)",
    "p50_latency": "p50 (s)",
    "p95_latency": "p95 (s)",
    "p99_latency": "p99 (s)",
    "mean_slowdown": "slowdown",
    "makespan": "makespan (s)",
    "utilization": "utilisation",
    "queries": "queries",
    "failed_queries": "failed",
    "lost_tasks": "lost tasks",
    "rerun_tasks": "re-run tasks",
    "missed_deadlines": "missed deadlines",
}
"""Headers of the figures results.json holds per agent; other numeric figures keep their key."""
VS_BASELINE = "vs_baseline"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1d1d1f; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
.meta { color: #555; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer;
            padding: 0; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
tr.best td { font-weight: 600; background: #e8f5f2; }
tr.baseline td:first-child::after { content: " (baseline)"; color: #555; font-weight: 400; }
figure { margin: 2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; max-width: 60rem; }
pre { background: #f6f6f6; padding: 1rem; overflow: auto; }
"""

SCRIPT = """
"use strict";
for (const table of document.querySelectorAll("table.sortable")) {
  const headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach((header, column) => {
    header.querySelector("button").addEventListener("click", () => {
      const ascending = header.getAttribute("aria-sort") !== "ascending";
      for (const other of headers) other.removeAttribute("aria-sort");
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const text = header.dataset.type === "text";
      const key = (row) => {
        const value = row.cells[column].dataset.value;
        return text ? value : Number(value);
      };
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (ascending ? 1 : -1));
      for (const row of rows) body.appendChild(row);
    });
  });
}
"""

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_report(
    folder: str | Path, baseline: str | None = None, out: str | Path | None = None
) -> Path:
    """Draw the report of `folder` and write it (atomically) to `out` or FOLDER/report.html;
    `out` must be a file whose folder exists (checked before anything is drawn)."""
    target = Path(out) if out is not None else Path(folder) / REPORT_FILE
    if out is not None:
        if target.is_dir():
            raise ResultsError(
                f"{target}: --out is a folder; name the HTML file (e.g. {REPORT_FILE})"
            )
        if not target.parent.is_dir():
            raise ResultsError(f"{target}: --out: no such folder {target.parent}")
    page = report_html(folder, baseline)
    return atomic_write_text(target, page)


def report_html(folder: str | Path, baseline: str | None = None) -> str:
    """The report page of a results folder, compared against `baseline` (default: the best
    agent that is not a learned policy); of a sweep's folder, its table and plot."""
    if (Path(folder) / SWEEP_TABLE_FILE).is_file():
        if baseline is not None:
            raise ResultsError(
                f"{folder}: --baseline: a sweep's report compares each variant with its own "
                "best agent (drop the option)"
            )
        return _sweep_html(Path(folder))
    results = read_results(folder)
    compared = default_comparison(results, baseline)
    plots = folder_plots(folder, compared or None, agent_gantts=False)
    scenario = _scenario_document(Path(folder))
    description = str(scenario.get("description", "")) if scenario else ""
    reference = compared[0] if compared else None
    title = f"{results.scenario} — lsched report"
    parts = [
        *_head(title),
        f'<p class="description">{_text(description)}</p>' if description else "",
        f'<p class="meta">{_text(_summary(results, compared))}</p>',
        "<h2>Results</h2>",
        _table(results, reference, _paired(results, reference)),
        '<p class="meta">Seed-averaged figures of results.json; click a column to sort. '
        "The highlighted row has the lowest mean latency; the vs column is each seed's ratio, "
        "averaged, ± its 95% interval.</p>",
        *(f'<p class="meta">{_text(text)}</p>' for text in results.descriptions.values()),
        *(_figure(plot) for plot in plots),
        _fidelity_section(Path(folder)),
        "<h2>Scenario</h2>",
        _scenario_section(scenario),
        '<p class="meta">Drawn from the files of the results folder by <code>lsched report'
        "</code>; <code>lsched plot DIR</code> writes the same plots as PNG files.</p>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _summary(results: ResultsFolder, compared: Sequence[str]) -> str:
    seeds = ", ".join(str(s) for s in results.seeds)
    text = (
        f"Seeds {seeds}; {len(results.agents)} agents; lower bound on mean latency "
        f"{results.lower_bound_mean_latency_s:.3g} s."
    )
    if compared:
        others = ", ".join(compared[1:])
        text += f" Baseline: {compared[0]}; compared query by query with {others}."
    return text


def _paired(results: ResultsFolder, reference: str | None) -> dict[str, tuple[float, float]]:
    """Each agent's mean latency over the reference's, seed by seed, averaged over seeds, and
    the 95% half-width: `lsched run`'s vs column, from the folder's per-seed query files
    (a ratio of the seed-averaged means differs from it)."""
    if reference is None:
        return {}
    means = {
        agent: {
            seed: float(np.mean(read_queries(results.folder, agent, seed).latency_s))
            for seed in results.seeds
        }
        for agent in results.agents
    }
    return {agent: paired_ratio(means[agent], means[reference])[:2] for agent in results.agents}


def _table(
    results: ResultsFolder, reference: str | None, paired: Mapping[str, tuple[float, float]]
) -> str:
    keys = list(dict.fromkeys(k for values in results.figures.values() for k in values))
    best = min(results.agents, key=lambda a: results.figures[a].get("mean_latency", float("inf")))
    headers = ['<th data-type="text"><button type="button">agent</button></th>']
    headers += [f'<th><button type="button">{_text(COLUMNS.get(k, k))}</button></th>' for k in keys]
    if paired:
        headers.append(f'<th><button type="button">vs {_text(reference)}</button></th>')
    rows = []
    for agent in results.agents:
        figures = results.figures[agent]
        cells = [f'<td data-value="{_text(agent)}">{_text(agent)}</td>']
        for key in keys:
            value = figures.get(key)
            cells.append(
                f'<td data-key="{key}" data-value="{json.dumps(value)}">{_format(key, value)}</td>'
                if value is not None
                else f'<td data-key="{key}" data-value="">—</td>'
            )
        if paired:
            ratio, halfwidth = paired[agent]
            interval = f" ±{100 * halfwidth:.1f}" if len(results.seeds) > 1 else ""
            cells.append(
                f'<td data-key="{VS_BASELINE}" data-value="{json.dumps(ratio - 1)}">'
                f"{100 * (ratio - 1):+.1f}%{interval}</td>"
            )
        classes = [
            name for name, on in (("best", agent == best), ("baseline", agent == reference)) if on
        ]
        row_class = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    return (
        '<table class="sortable" id="results"><thead><tr>'
        + "".join(headers)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _format(key: str, value: float) -> str:
    if key == "utilization":
        return f"{value:.0%}"
    if key == "missed_deadlines":
        return f"{value:.1%}"
    if key in ("queries", "failed_queries", "lost_tasks", "rerun_tasks"):
        return f"{value:g}"
    return f"{value:.2f}"


def _figure(plot: Plot) -> str:
    data = base64.b64encode(png_bytes(plot.figure)).decode("ascii")
    return (
        f'<figure id="{_text(plot.name.removesuffix(".png"))}">'
        f'<img alt="{_text(plot.name)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_text(plot.name)}</b> — {_text(plot.caption)}</figcaption></figure>"
    )


def _head(title: str) -> list[str]:
    """The page's head (the policy that forbids loading anything) and its title heading."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
    ]


def _sweep_html(folder: Path) -> str:
    """A sweep's page: per variant and agent the mean ± interval and the paired ratio to the
    variant's best baseline (the table `lsched sweep` prints), what `tuned` chose in each
    variant, and the sweep's plot."""
    from lsched.sweep import read_rows, summarize_sweep, sweep_figure

    document, rows = read_rows(folder)
    spec = document["sweep"]
    paths = list(spec["overrides"])
    headers = ["scenario", *paths, "agent", "mean latency (s)", "± 95%", "vs best", "runs"]
    body = []
    for cell in summarize_sweep(rows):
        versus = "best" if cell.agent == cell.best else (
            "—" if cell.vs_best != cell.vs_best else f"{cell.vs_best - 1:+.1%}"
        )  # fmt: skip
        values = [
            cell.scenario, *(cell.overrides.get(p) for p in paths), cell.agent,
            f"{cell.mean:.3g}", f"{cell.ci95:.3g}" if cell.runs > 1 else "", versus, cell.runs,
        ]  # fmt: skip
        row_class = ' class="best"' if cell.agent == cell.best else ""
        body.append(f"<tr{row_class}>" + "".join(f"<td>{_text(v)}</td>" for v in values) + "</tr>")
    noted = dict.fromkeys(  # as the terminal names them: the variant, else the scenario
        f"{', '.join(f'{p}={v}' for p, v in row.overrides.items()) or row.scenario}: "
        f"{row.description}"
        for row in rows
        if row.description
    )
    title = f"sweep {spec['name']} — lsched report"
    plot = Plot(
        "sweep.png",
        "Mean latency against the first swept value, one line per agent, 95% intervals over "
        "seeds; a panel per combination of the other swept values.",
        sweep_figure(folder),
    )
    parts = [
        *_head(title),
        f'<p class="description">{_text(spec.get("description", ""))}</p>',
        f'<p class="meta">{_text(document["finished"])} of {_text(document["total"])} runs '
        f"finished, {_text(document['failed'])} failed; seeds {_text(spec['seeds'])}.</p>",
        "<h2>Results</h2>",
        "<table><thead><tr>"
        + "".join(f"<th>{_text(h)}</th>" for h in headers)
        + f"</tr></thead><tbody>{''.join(body)}</tbody></table>",
        '<p class="meta">vs best: each agent against its variant\'s best agent that is not a '
        "learned policy, seed by seed, averaged.</p>",
        *(f'<p class="meta">{_text(text)}</p>' for text in noted),
        _figure(plot),
        '<p class="meta">Drawn from the files of the sweep folder by <code>lsched report'
        "</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _fidelity_section(folder: Path) -> str:
    """A real-engine folder's answer (`lsched real`): the prediction beside the measurement,
    the verdict and the parity plot; nothing for a simulated run's folder."""
    path = folder / FIDELITY_FILE
    if not path.is_file():
        return ""
    from lsched.plots import parity_figure
    from lsched.real import fidelity_verdict

    try:
        fidelity = json.loads(read_text(path, max_bytes=MAX_FIDELITY_BYTES, error=InputError))
        rows = [
            "<tr>"
            + "".join(
                f"<td>{_text(cell)}</td>"
                for cell in (
                    label,
                    f"{figures['real_mean_latency'] * 1e3:.1f}",
                    f"{figures['predicted_mean_latency'] * 1e3:.1f}",
                    f"{figures['mean_error']:+.1%}",
                )
            )
            + "</tr>"
            for label, figures in fidelity["agents"].items()
        ]
        verdict = fidelity_verdict(fidelity)
        parity = Plot(
            "parity.png",
            "Predicted against real latency per query, one colour per agent; on the diagonal "
            "the simulator was exact.",
            parity_figure(fidelity["queries"], f"{fidelity['scenario']}: simulator vs DuckDB"),
        )
    except (InputError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise ResultsError(f"{path}: not a fidelity document ({error})") from None
    header = "".join(
        f"<th>{h}</th>" for h in ("agent", "real mean (ms)", "predicted (ms)", "error")
    )
    return "\n".join(
        [
            "<h2>Simulator against DuckDB</h2>",
            f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
            "<ul>" + "".join(f"<li>{_text(line)}</li>" for line in verdict) + "</ul>",
            _figure(parity),
        ]
    )


def _scenario_document(folder: Path) -> dict | None:
    """scenario.yaml of the folder, or None for a folder written before runs kept it."""
    path = folder / SCENARIO_FILE
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ResultsError(f"{path}: cannot read the scenario ({error})") from None
    if not isinstance(document, dict):
        raise ResultsError(f"{path}: not a scenario document")
    return document


def _scenario_section(document: dict | None) -> str:
    if document is None:
        return (
            f'<p class="meta">This folder has no {SCENARIO_FILE} (it was written before runs '
            "kept the scenario).</p>"
        )
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return f"<details open><summary>{SCENARIO_FILE}</summary><pre>{_text(text)}</pre></details>"


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)
