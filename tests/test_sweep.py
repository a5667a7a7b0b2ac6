"""Sweeps: the plan, one table whatever the worker count, resuming, failed runs, bad files.

The Ray backend's table is checked in test_backends.py, next to the one Ray instance.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lsched.backends import LocalBackend
from lsched.runner import RunFigures
from lsched.sweep import (
    CSV_FILE,
    JOURNAL_FILE,
    JSON_FILE,
    PLOT_FILE,
    STATUS_ERROR,
    STATUS_OK,
    SweepError,
    SweepTask,
    confidence_halfwidth,
    load_sweep,
    plan_runs,
    plot_sweep,
    read_journal,
    read_rows,
    run_key,
    run_sweep,
    run_task,
    summarize_sweep,
    write_table,
)

TINY_SCENARIO = """\
name: tiny
cluster: {nodes: 2, threads_per_node: 4}
workload:
  queries: 12
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.5}
      mix: "tpch-*"
      work_multiplier: 20
agents: [fifo, {name: fair, max_parallelism: 2}]
"""

SWEEP = """\
scenarios: [tiny.yaml]
agents: [fifo, fair]
seeds: 2
overrides:
  cluster.nodes: [1, 2]
"""
"""2 agents × 2 override values × 2 seeds: 8 runs."""


def write_sweep(folder: Path, sweep: str = SWEEP) -> Path:
    (folder / "tiny.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    path = folder / "sweep.yaml"
    path.write_text(sweep, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sweep run once in this process: (sweep file, output folder)."""
    folder = tmp_path_factory.mktemp("reference")
    spec = write_sweep(folder)
    run_sweep(spec, folder / "out", LocalBackend(1))
    return spec, folder / "out"


def table_files(out: Path) -> tuple[str, str]:
    return (out / CSV_FILE).read_text(), (out / JSON_FILE).read_text()


def raise_on_fair_seed_1(task: SweepTask) -> RunFigures:
    """A run function that fails for fair on seed 1 (module level: workers import it)."""
    if task.agent.name == "fair" and task.seed == 1:
        raise RuntimeError(f"boom in {task.key}")
    return run_task(task)


# ------------------------------------------------------------------------- the plan
def test_plan_is_the_product_in_table_order(reference: tuple[Path, Path]) -> None:
    spec = load_sweep(reference[0])
    runs = plan_runs(spec)
    assert [(r.overrides["cluster.nodes"], r.agent, r.seed) for r in runs] == [
        (nodes, agent, seed) for nodes in (1, 2) for agent in ("fifo", "fair") for seed in (0, 1)
    ]
    assert len({r.key for r in runs}) == 8
    assert runs[0].key == "tiny.yaml|cluster.nodes=1|fifo|0"
    # The scenario's own options apply to a bare agent name, as with `lsched run --agents`.
    fair = next(r for r in runs if r.agent == "fair")
    assert dict(fair.task.agent.options) == {"max_parallelism": 2}
    assert fair.task.scenario().cluster.nodes == 1


def test_run_key_ignores_override_order() -> None:
    one = run_key("s", {"a.b": 1, "c": [1, 2]}, "fifo", 3)
    assert one == run_key("s", {"c": [1, 2], "a.b": 1}, "fifo", 3)
    assert one != run_key("s", {"a.b": 1, "c": [1, 2]}, "fifo", 4)


# ------------------------------------------------------------------------- one table
def test_table_has_every_run_and_no_wall_time(reference: tuple[Path, Path]) -> None:
    document, rows = read_rows(reference[1])
    assert [row.status for row in rows] == [STATUS_OK] * 8
    assert document["total"] == document["finished"] == 8
    csv_text, _ = table_files(reference[1])
    header = csv_text.splitlines()[0].split(",")
    assert header[:7] == ["key", "scenario", "cluster.nodes", "agent", "seed", "status", "error"]
    assert "wall_s" not in header
    by_nodes = {
        nodes: [r.figures["mean_latency_s"] for r in rows if r.overrides["cluster.nodes"] == nodes]
        for nodes in (1, 2)
    }
    # More nodes, same queries: every run's mean latency drops.
    assert all(two < one for one, two in zip(by_nodes[1], by_nodes[2], strict=True))
    cells = summarize_sweep(rows)
    assert [(c.overrides["cluster.nodes"], c.agent, c.runs, c.failed) for c in cells] == [
        (1, "fifo", 2, 0),
        (1, "fair", 2, 0),
        (2, "fifo", 2, 0),
        (2, "fair", 2, 0),
    ]
    assert cells[0].mean == pytest.approx(sum(by_nodes[1][:2]) / 2)
    assert cells[0].ci95 > 0


def test_two_workers_write_the_same_table(reference: tuple[Path, Path], tmp_path: Path) -> None:
    with LocalBackend(2) as backend:
        report = run_sweep(reference[0], tmp_path / "out", backend)
    assert report.executed == 8 and report.failed == 0
    assert table_files(tmp_path / "out") == table_files(reference[1])


# ------------------------------------------------------------------------- resuming
def test_resume_runs_only_what_is_missing(reference: tuple[Path, Path], tmp_path: Path) -> None:
    spec, full = reference
    document, rows = read_rows(full)
    out = tmp_path / "out"
    kept = [rows[0], rows[3], rows[6]]
    write_table(out, load_sweep(spec), kept, document["total"])
    done = []
    report = run_sweep(spec, out, progress=lambda d, total, row: done.append((d, total, row.key)))
    assert report.executed == 5
    assert {key for _, _, key in done} == {r.key for r in rows} - {r.key for r in kept}
    assert [(d, total) for d, total, _ in done] == [(n, 8) for n in range(4, 9)]
    assert table_files(out) == table_files(full)
    assert run_sweep(spec, out).executed == 0


def test_an_interrupted_sweep_keeps_its_finished_runs(
    reference: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, full = reference
    out = tmp_path / "out"

    def interrupt_after_three(done: int, total: int, row: object) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, progress=interrupt_after_three)
    assert read_rows(out)[0]["finished"] == 3
    assert run_sweep(spec, out).executed == 5
    assert table_files(out) == table_files(full)


def test_a_journal_line_torn_by_a_kill_is_cut_before_the_next_row(
    reference: tuple[Path, Path], tmp_path: Path
) -> None:
    """A kill can leave half a line at the journal's end: resuming must not glue the next
    row onto it (that row would be lost, and the line after it would make the file unreadable)."""
    spec, full = reference
    out = tmp_path / "out"

    def interrupt_at(count: int) -> Callable[[int, int, object], None]:
        def hook(done: int, total: int, row: object) -> None:
            if done == count:
                raise KeyboardInterrupt

        return hook

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, progress=interrupt_at(3))
    journal = out / JOURNAL_FILE
    whole = journal.read_text(encoding="utf-8")
    journal.write_text(whole + whole.splitlines()[0][:40], encoding="utf-8")  # torn mid-write
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, progress=interrupt_at(4))
    assert len(read_journal(out)) == 4
    assert journal.read_text(encoding="utf-8").startswith(whole)
    assert run_sweep(spec, out).executed == 4
    assert table_files(out) == table_files(full)

    # a whole row that lost only its newline is kept (it was counted as run), not cut
    again = tmp_path / "again"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, again, progress=interrupt_at(3))
    lines = (again / JOURNAL_FILE).read_text(encoding="utf-8")
    (again / JOURNAL_FILE).write_text(lines.rstrip("\n"), encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, again, progress=interrupt_at(4))
    assert len(read_journal(again)) == 4
    assert run_sweep(spec, again).executed == 4


def test_resume_refuses_another_sweeps_folder(reference: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference[1], out)
    narrower = write_sweep(tmp_path, SWEEP.replace("[1, 2]", "[1]"))
    with pytest.raises(SweepError, match=r"4 run\(s\) are not part of this sweep"):
        run_sweep(narrower, out)


def test_resume_refuses_a_changed_scenario(reference: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference[1], out)
    spec = write_sweep(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_SCENARIO.replace("queries: 12", "queries: 13"))
    with pytest.raises(SweepError, match="changed since run"):
        run_sweep(spec, out)


# ------------------------------------------------------------------------- failures
@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_run_is_recorded_and_the_others_finish(
    reference: tuple[Path, Path], tmp_path: Path, workers: int
) -> None:
    spec, full = reference
    out = tmp_path / "out"
    with LocalBackend(workers) as backend:
        report = run_sweep(spec, out, backend, run=raise_on_fair_seed_1)
    assert report.executed == 8 and report.failed == 2
    _, rows = read_rows(out)
    failed = [r for r in rows if r.status == STATUS_ERROR]
    assert [(r.agent, r.seed) for r in failed] == [("fair", 1), ("fair", 1)]
    assert failed[0].error == f"RuntimeError: boom in {failed[0].key}"
    assert failed[0].figures is None
    _, reference_rows = read_rows(full)
    good = {r.key: r.figures for r in rows if r.status == STATUS_OK}
    assert good == {r.key: r.figures for r in reference_rows if r.key in good}
    # Running again retries the failed runs only.
    fair_1 = [c for c in summarize_sweep(rows) if c.agent == "fair"]
    assert [(c.runs, c.failed, c.ci95) for c in fair_1] == [(1, 1, 0.0), (1, 1, 0.0)]
    assert run_sweep(spec, out).executed == 2
    assert table_files(out) == table_files(full)


def test_failed_runs_can_be_kept(reference: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep(reference[0], out, run=raise_on_fair_seed_1)
    assert run_sweep(reference[0], out, retry_failed=False).executed == 0


# ------------------------------------------------------------------------- bad files
BAD_SWEEPS = [
    ("scenarios: [tiny.yaml]\nagents: [fifo]\nbogus: 1\n", "bogus: unknown key"),
    ("agents: [fifo]\n", "scenarios: required key is missing"),
    (
        "scenario: [tiny.yaml]\nagents: [fifo]\n",
        "scenario: unknown key (did you mean 'scenarios'?",
    ),
    ("scenarios: []\nagents: [fifo]\n", "scenarios: List should have at least 1 item"),
    ("scenarios: [tiny.yaml]\nagents: [fifo, fiffo]\n", "agents.1: unknown agent 'fiffo'"),
    ("scenarios: [tiny.yaml]\nagents: [fifo, fifo]\n", "agents: fifo is listed twice"),
    ("scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: lots\n", "seeds: expected a number of"),
    ("scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: 0\n", "seeds: must be >= 1"),
    ("scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: [0, -2]\n", "seeds: must be >= 0"),
    ("scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: [0, 0]\n", "seeds: 0 is listed twice"),
    ("scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: [1000000]\n", "training range"),
    ("scenarios: [nope]\nagents: [fifo]\n", "scenarios.0: nope: no such file"),
    (
        "scenarios: [tiny.yaml]\nagents: [fifo]\noverrides: {cluster.nodes: 2}\n",
        "overrides.cluster.nodes: Input should be a valid list",
    ),
    (
        "scenarios: [tiny.yaml]\nagents: [fifo]\noverrides: {cluster.nodes: []}\n",
        "overrides.cluster.nodes: the list of values is empty",
    ),
    (
        "scenarios: [tiny.yaml]\nagents: [fifo]\noverrides: {cluster.nodes: [2, 0]}\n",
        "overrides.cluster.nodes: value 0 in tiny.yaml: Input should be greater than",
    ),
    (
        "scenarios: [tiny.yaml]\nagents: [fifo]\noverrides: {cluster.nodez: [2]}\n",
        "overrides.cluster.nodez: value 2 in tiny.yaml: unknown key",
    ),
    ("scenarios: [tiny.yaml\n", "invalid YAML"),
    ("- just a list\n", "expected a mapping of sections, got a list"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_SWEEPS)
def test_bad_sweep_files_give_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    spec = write_sweep(tmp_path, text)
    with pytest.raises(SweepError) as caught:
        run_sweep(spec, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{spec}: ")
    assert expected in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_sweep_errors_survive_pickling() -> None:
    error = SweepError("s.yaml", "seeds", "must be >= 1")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.field) == (SweepError, str(error), "seeds")


def test_a_missing_sweep_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"missing\.yaml: No such file"):
        load_sweep(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------- plots
def test_confidence_interval_is_students_t() -> None:
    assert confidence_halfwidth([5.0]) == 0.0
    # n = 3, sample sd 1: t(0.975, 2) / sqrt(3).
    assert math.isclose(confidence_halfwidth([1.0, 2.0, 3.0]), 4.303 / math.sqrt(3), rel_tol=1e-4)
    # Beyond the table, the normal quantile.
    assert math.isclose(
        confidence_halfwidth([0.0, 2.0] * 20), 1.959964 * 1.0128 / math.sqrt(40), rel_tol=1e-3
    )


def test_plot_sweep_draws_a_png(reference: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference[1], out)
    assert plot_sweep(out) == [out / PLOT_FILE]
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SweepError, match="no such file"):
        plot_sweep(tmp_path)


def test_plot_without_overrides_with_two_and_with_flags(tmp_path: Path) -> None:
    grid = "overrides: {cluster.nodes: [1, 2], cluster.threads_per_node: [2, 4]}\n"
    flags = "overrides: {simulation.oracle: [false, true]}\n"
    for name, overrides in (("flat", ""), ("grid", grid), ("flags", flags)):
        folder = tmp_path / name
        folder.mkdir()
        spec = write_sweep(folder, f"scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: 1\n{overrides}")
        run_sweep(spec, folder / "out")
        assert plot_sweep(folder / "out")[0].stat().st_size > 1000
    document = json.loads((tmp_path / "grid" / "out" / JSON_FILE).read_text())
    assert document["total"] == 4


SHIPPED_SWEEPS = sorted(
    (Path(__file__).resolve().parent.parent / "scenarios" / "sweeps").glob("*.yaml")
)


@pytest.mark.parametrize("path", SHIPPED_SWEEPS, ids=lambda p: p.name)
def test_shipped_sweep_files_are_valid(path: Path) -> None:
    spec = load_sweep(path)
    runs = plan_runs(spec)
    combos = math.prod(len(values) for _, values in spec.overrides)
    assert len(runs) == len(spec.scenarios) * combos * len(spec.agents) * len(spec.seeds)
    assert spec.description


def test_a_template_file_edited_between_calls_is_a_changed_scenario(tmp_path: Path) -> None:
    """The digest covers the files a scenario reads: runs on the old templates and the new
    were mixed silently in one table."""
    from lsched.workloads.templates import bundled_template_set, write_template_file

    write_template_file(bundled_template_set("tpch"), tmp_path / "mine.json")
    spec = write_sweep(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        TINY_SCENARIO.replace("  queries: 12\n", "  queries: 12\n  template_files: [mine.json]\n")
    )
    digest = plan_runs(load_sweep(spec))[0].digest
    text = (tmp_path / "mine.json").read_text()
    edited = json.loads(text)
    next(iter(edited["templates"].values()))["pipelines"][0]["work_s_sf1"] *= 2
    (tmp_path / "mine.json").write_text(json.dumps(edited))
    assert plan_runs(load_sweep(spec))[0].digest != digest
    (tmp_path / "mine.json").write_text(text)
    assert plan_runs(load_sweep(spec))[0].digest == digest


def test_interval_bars_stop_short_of_zero() -> None:
    """Two seeds give intervals wider than the mean: the bars went to −750 s latency."""
    from lsched.sweep import SweepSummary, _positive_errors

    wide = SweepSummary("s", {}, "fifo", runs=2, failed=0, mean=100.0, ci95=800.0)
    narrow = SweepSummary("s", {}, "fair", runs=2, failed=0, mean=100.0, ci95=5.0)
    lower, upper = _positive_errors([wide, narrow])
    assert 0 < 100.0 - lower[0] < 1 and lower[1] == 5.0 and upper == [800.0, 5.0]


def test_each_cell_is_paired_against_its_variants_best(reference: tuple[Path, Path]) -> None:
    """Which agent wins where: unpaired intervals over two seeds overlap (89 ± 805 s) where
    the seed-by-seed ratio can tell them apart."""
    _, rows = read_rows(reference[1])
    cells = summarize_sweep(rows)
    for cell in cells:
        variant = [c for c in cells if c.overrides == cell.overrides]
        best = min(variant, key=lambda c: c.mean)
        assert cell.best == best.agent
        mine = {r.seed: r.figures["mean_latency_s"] for r in rows
                if r.agent == cell.agent and r.overrides == cell.overrides}  # fmt: skip
        theirs = {r.seed: r.figures["mean_latency_s"] for r in rows
                  if r.agent == best.agent and r.overrides == cell.overrides}  # fmt: skip
        ratios = [mine[s] / theirs[s] for s in mine]
        assert cell.vs_best == pytest.approx(sum(ratios) / len(ratios))
        assert cell.vs_best_ci95 == pytest.approx(confidence_halfwidth(ratios))
    assert {c.vs_best for c in cells if c.agent == c.best} == {1.0}


def test_rows_record_what_tuned_chose_in_each_variant(tmp_path: Path) -> None:
    """How the winning rule moves with the swept value could not be seen from a sweep."""
    tuned = "{name: tuned, families: [fifo, srpt, fair], seeds: 2, max_queries: 6}"
    spec = write_sweep(
        tmp_path,
        f"scenarios: [tiny.yaml]\nagents: [fifo, {tuned}]\nseeds: 1\n"
        "overrides: {cluster.nodes: [1, 2]}\n",
    )
    run_sweep(spec, tmp_path / "out")
    run_sweep(spec, tmp_path / "two", LocalBackend(2))  # what a row records: not the split
    assert table_files(tmp_path / "two") == table_files(tmp_path / "out")
    _, rows = read_rows(tmp_path / "out")
    said = {r.overrides["cluster.nodes"]: r.description for r in rows if r.agent != "fifo"}
    assert set(said) == {1, 2} and all(text.startswith("tuned[") for text in said.values())
    assert {r.description for r in rows if r.agent == "fifo"} == {""}  # it says nothing
    from lsched.io import read_csv

    csv_rows = read_csv(tmp_path / "out" / CSV_FILE)
    assert [r["description"] for r in csv_rows if r["agent"] != "fifo"] == list(said.values())
    document = json.loads((tmp_path / "out" / JSON_FILE).read_text())
    for run in document["runs"]:
        del run["description"]  # a table written before descriptions were recorded
    (tmp_path / "out" / JSON_FILE).write_text(json.dumps(document))
    assert {r.description for r in read_rows(tmp_path / "out")[1]} == {""}


def test_a_sweep_folder_has_a_report(reference: tuple[Path, Path], tmp_path: Path) -> None:
    """`lsched report` refused a sweep's folder: a sweep could not be shared as one file."""
    from typer.testing import CliRunner

    from lsched.cli import app

    out = tmp_path / "out"
    shutil.copytree(reference[1], out)
    made = CliRunner().invoke(app, ["report", str(out)])
    assert made.exit_code == 0, made.output
    page = (out / "report.html").read_text()
    assert page.count('<tr class="best">') == 2  # one best agent per variant (nodes 1 and 2)
    assert page.count("<tr") == 1 + 4 and 'alt="sweep.png"' in page
    again = CliRunner().invoke(app, ["report", str(out)])
    assert again.exit_code == 0 and (out / "report.html").read_text() == page  # same bytes
    refused = CliRunner().invoke(app, ["report", str(out), "--baseline", "fifo"])
    assert refused.exit_code == 2 and "its own best agent" in refused.output
    table = json.loads((out / JSON_FILE).read_text())
    table["finished"] = "<script>alert(1)</script>"  # a shared folder's table is input too
    (out / JSON_FILE).write_text(json.dumps(table))
    hostile = CliRunner().invoke(app, ["report", str(out)])
    assert hostile.exit_code == 2 and "finished: not a count" in hostile.output
    assert "<script>alert" not in (out / "report.html").read_text()


def test_a_bad_swept_list_item_blames_its_value(tmp_path: Path) -> None:
    """The scenario names it `streams[0]`, the sweep `streams.0`: the value was not blamed and
    the message repeated the scenario's file."""
    spec = write_sweep(
        tmp_path,
        "scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: 1\n"
        "overrides: {workload.streams.0.arrivals.rate_per_s: [0.5, -1]}\n",
    )
    with pytest.raises(
        SweepError, match=r"overrides\.workload\.streams\.0\.arrivals\.rate_per_s: value -1 in"
    ):
        plan_runs(load_sweep(spec))


def test_a_table_from_before_file_digests_still_resumes(tmp_path: Path) -> None:
    """Tables written before the digest covered template files recorded the document's alone:
    their runs are kept, not refused as runs of a changed scenario."""
    from lsched.workloads.templates import bundled_template_set, write_template_file

    write_template_file(bundled_template_set("tpch"), tmp_path / "mine.json")
    spec = write_sweep(tmp_path, "scenarios: [tiny.yaml]\nagents: [fifo]\nseeds: 2\n")
    (tmp_path / "tiny.yaml").write_text(
        TINY_SCENARIO.replace("  queries: 12\n", "  queries: 12\n  template_files: [mine.json]\n")
    )
    planned = plan_runs(load_sweep(spec))
    assert planned[0].legacy_digest and planned[0].legacy_digest != planned[0].digest

    def stop(done: int, total: int, row: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "out", progress=stop)
    table = json.loads((tmp_path / "out" / JSON_FILE).read_text())
    for run in table["runs"]:
        run["scenario_digest"] = planned[0].legacy_digest  # as written before 2026-12-08
    (tmp_path / "out" / JSON_FILE).write_text(json.dumps(table))
    (tmp_path / "out" / JOURNAL_FILE).unlink(missing_ok=True)
    assert run_sweep(spec, tmp_path / "out").executed == 1


def test_each_variant_shows_its_offered_load(reference: tuple[Path, Path]) -> None:
    """A swept rate or cluster size is read as load: twice the nodes, half the load."""
    from lsched.sweep import variant_key, variant_loads

    loads = variant_loads(load_sweep(reference[0]))
    one = loads[variant_key("tiny.yaml", {"cluster.nodes": 1})]
    two = loads[variant_key("tiny.yaml", {"cluster.nodes": 2})]
    assert one is not None and two == pytest.approx(one / 2)
