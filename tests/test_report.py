"""`lsched report`: one self-contained page whose table is results.json, checked in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsched.cli import app
from lsched.report import report_html, write_report

SMALL = """\
name: small-report
description: A tiny SSB stream & a <report> class, for the report tests.
cluster: {nodes: 2, threads_per_node: 3, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 16
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.2}
      mix: "ssb-*"
      work_multiplier: 60
agents: [fifo, fair, srpt]
"""
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
"""Executables tried for the browser check (Debian: `apt-get install chromium-headless-shell`);
LSCHED_BROWSER names another."""


def invoke(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    (root / "small.yaml").write_text(SMALL)
    out = root / "out"
    result = invoke("run", root / "small.yaml", "--seeds", "2", "--out", out)
    assert result.exit_code == 0, result.output
    return out


class Page(HTMLParser):
    """The parts of the page the tests read: table cells, images, scripts' sources, links."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[list[dict[str, str]]] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self.meta: dict[str, str] = {}
        self._in_header = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.references += [attributes[k] for k in ("src", "href") if k in attributes]
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.rows[-1].append(attributes)
        elif tag == "th":
            self._in_header = True
            self.headers.append("")
        elif tag == "meta" and "http-equiv" in attributes:
            self.meta[attributes["http-equiv"]] = attributes.get("content", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._in_header = False

    def handle_data(self, data: str) -> None:
        if self._in_header:
            self.headers[-1] += data


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


def table(page: Page) -> dict[str, dict[str, float]]:
    """Agent -> {figure key: value} from the data attributes of the results table."""
    rows = [r for r in page.rows if r]
    return {
        row[0]["data-value"]: {c["data-key"]: json.loads(c["data-value"]) for c in row[1:]}
        for row in rows
    }


def test_the_table_is_results_json_and_the_baseline_column_is_relative(folder: Path) -> None:
    document = json.loads((folder / "results.json").read_text())
    result = invoke("report", folder, "--baseline", "fair")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(folder / "report.html")
    cells = table(parse((folder / "report.html").read_text()))
    assert list(cells) == list(document["agents"])
    for agent, figures in document["agents"].items():
        mine = dict(cells[agent])
        change = mine.pop("vs_baseline")
        # every figure, exactly as results.json has it (one it gives none, missed deadlines
        # on a workload without deadlines, has no column)
        assert mine == {key: value for key, value in figures.items() if value is not None}
        # `lsched run`'s column: the ratio seed by seed, averaged (not the ratio of averages)
        ratios = [seed_mean(folder, agent, seed) / seed_mean(folder, "fair", seed)
                  for seed in document["seeds"]]  # fmt: skip
        assert change == pytest.approx(sum(ratios) / len(ratios) - 1)
    assert cells["fair"]["vs_baseline"] == 0.0
    best = document["paired"]["baseline"]
    assert invoke("report", folder).exit_code == 0  # the default baseline: results.json's
    default = table(parse((folder / "report.html").read_text()))
    for agent, paired in document["paired"]["agents"].items():
        assert default[agent]["vs_baseline"] == pytest.approx(paired["ratio"] - 1), best


def seed_mean(folder: Path, agent: str, seed: int) -> float:
    import csv

    with (folder / f"queries-{agent}-seed{seed}.csv").open() as handle:
        latencies = [float(row["latency_s"]) for row in csv.DictReader(handle)]
    return sum(latencies) / len(latencies)


def test_the_page_is_self_contained_with_every_plot_and_the_scenario(folder: Path) -> None:
    text = report_html(folder)
    page = parse(text)
    assert page.meta["Content-Security-Policy"].startswith("default-src 'none'")
    assert all(ref.startswith("data:image/png;base64,") for ref in page.references)
    assert len(page.images) == 5  # comparison, CDF, paired, timeline, side-by-side Gantt
    names = re.findall(r'<img alt="([^"]+)"', text)
    assert names[:2] == ["comparison.png", "latency-cdf.png"]
    assert [n.split("-")[0] for n in names[2:]] == ["paired", "timeline", "gantt"]
    # The scenario's description, escaped, and its document.
    assert "A tiny SSB stream &amp; a &lt;report&gt; class" in text
    assert "work_multiplier: 60" in text
    assert report_html(folder) == text  # the same folder gives the same page


def test_a_folder_without_scenario_yaml_still_reports_and_says_so(
    folder: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    (old / "scenario.yaml").unlink()
    text = report_html(old)
    assert "has no scenario.yaml" in text
    assert len(parse(text).images) == 5


def test_bad_folders_and_options_are_one_line_errors_that_write_nothing(
    folder: Path, tmp_path: Path
) -> None:
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {tmp_path / 'results.json'}: no such file")
    result = invoke("report", folder, "--baseline", "nope")
    assert result.exit_code == 2
    assert result.output.startswith("error: --baseline: no agent 'nope' in")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "report.html").unlink(missing_ok=True)
    (broken / "queries-srpt-seed1.csv").unlink()
    result = invoke("report", broken)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {broken / 'queries-srpt-seed1.csv'}: no such file"
    assert not (broken / "report.html").exists()
    assert not list(broken.glob(".*.tmp"))
    result = invoke("report", folder, "--out", tmp_path)
    assert result.exit_code == 2 and "--out is a folder; name the HTML file" in result.output
    result = invoke("report", folder, "--out", tmp_path / "no" / "such" / "r.html")
    assert result.exit_code == 2 and "--out: no such folder" in result.output
    assert not (tmp_path / "no").exists()
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    result = invoke("report", sweep)  # a sweep's folder has a report, but this table is broken
    assert result.exit_code == 2 and "sweep.json: runs: not a sweep table" in result.output
    assert not (sweep / "report.html").exists()


def browser() -> str | None:
    named = os.environ.get("LSCHED_BROWSER")
    if named:
        return shutil.which(named) or named
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


SORT_BY_MEAN = """
<script>
const header = Array.from(document.querySelectorAll("#results th"))
  .find((th) => th.textContent.startsWith("mean"));
header.querySelector("button").click();
document.body.dataset.sorted = Array.from(document.querySelectorAll("#results tbody tr"))
  .map((row) => row.cells[0].dataset.value).join(",");
</script>
"""


def run_browser(executable: str, page: Path, profile: Path) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and the browser's log (console lines in it)."""
    done = subprocess.run(
        [
            executable,
            "--headless",
            "--no-sandbox",  # tests may run as root
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_the_report_opens_in_a_headless_browser_without_errors(
    folder: Path, tmp_path: Path
) -> None:
    executable = browser()
    if executable is None:
        pytest.skip(
            "no headless Chromium found (tried "
            + ", ".join(BROWSERS)
            + "; Debian: apt-get install chromium-headless-shell, or set LSCHED_BROWSER)"
        )
    page = write_report(folder, out=tmp_path / "report.html")
    dom, log = run_browser(executable, page, tmp_path / "profile")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console  # no errors, no warnings, nothing logged at all
    shown = parse(dom)
    document = json.loads((folder / "results.json").read_text())
    assert list(table(shown)) == list(document["agents"])
    assert len(shown.images) == 5
    # The table sorts: click "mean" in the page and read the order back from the DOM.
    sorting = tmp_path / "sorting.html"
    sorting.write_text(page.read_text().replace("</body>", SORT_BY_MEAN + "</body>"))
    dom, log = run_browser(executable, sorting, tmp_path / "profile")
    assert not [line for line in log.splitlines() if ":CONSOLE" in line]
    order = re.search(r'data-sorted="([^"]*)"', dom)
    assert order is not None, "the test script did not run"
    agents = document["agents"]
    assert order.group(1).split(",") == sorted(agents, key=lambda a: agents[a]["mean_latency"])


def test_the_report_says_what_tuned_chose(folder: Path, tmp_path: Path) -> None:
    """As the terminal does under the table (it was only in results.json)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    document = json.loads((copy / "results.json").read_text())
    agent = document["paired"]["baseline"]
    document["descriptions"] = {agent: f"{agent}: serpt adaptive_parallelism=1 (a note)"}
    (copy / "results.json").write_text(json.dumps(document))
    assert invoke("report", copy).exit_code == 0
    assert f"{agent}: serpt adaptive_parallelism=1 (a note)" in (copy / "report.html").read_text()
