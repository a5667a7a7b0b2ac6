"""The `lsched` command through its real entry point: outputs agree, user errors exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lsched.cli import app
from lsched.io import read_csv
from lsched.scenario import bundled_scenarios

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
name: small
description: A tiny TPC-H stream for tests.
cluster: {nodes: 2, threads_per_node: 4, moving_delay_s: 0.5, warmup_s: 0.1}
workload:
  queries: 25
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.3}
      mix: "tpch-*"
      work_multiplier: 60
agents: [fifo, fair]
"""

TEMPLATES = Path(__file__).parent.parent / "lsched" / "workloads" / "templates"


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, scenario_file: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "out"
    result = invoke("run", scenario_file, "--seeds", "2", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return out, result.stdout


def test_json_output_is_one_document_equal_to_results_json(run_dir: tuple[Path, str]) -> None:
    out, stdout = run_dir
    document = json.loads(stdout)
    assert document == json.loads((out / "results.json").read_text())
    assert document["scenario"] == "small"
    assert document["seeds"] == [0, 1]
    assert list(document["agents"]) == ["fifo", "fair"]
    assert document["lower_bound"]["mean_latency"] < document["agents"]["fair"]["mean_latency"]
    assert document["agents"]["fair"]["missed_deadlines"] is None  # no query has a deadline


def test_run_compares_every_agent_with_a_baseline(scenario_file: Path) -> None:
    result = invoke("run", scenario_file, "--seeds", "2", "--baseline", "fifo")
    assert result.exit_code == 0, result.output
    assert "vs fifo" in result.stdout
    bad = invoke("run", scenario_file, "--seeds", "2", "--baseline", "srpt")
    assert bad.exit_code == 2
    assert "--baseline: 'srpt' is not one of fifo, fair" in bad.output
    assert "Traceback" not in bad.output


def test_figures_can_be_recomputed_from_the_query_csvs(run_dir: tuple[Path, str]) -> None:
    out, stdout = run_dir
    document = json.loads(stdout)
    for agent, figures in document["agents"].items():
        means, p95s, slowdowns = [], [], []
        for seed in document["seeds"]:
            rows = read_csv(out / f"queries-{agent}-seed{seed}.csv")
            latency = np.array([float(r["latency_s"]) for r in rows])
            finish = np.array([float(r["finish_s"]) for r in rows])
            arrival = np.array([float(r["arrival_s"]) for r in rows])
            np.testing.assert_allclose(latency, finish - arrival, atol=1e-9)
            assert {r["class"] for r in rows} == {"adhoc"}
            means.append(latency.mean())
            p95s.append(np.percentile(latency, 95))
            slowdowns.append(np.mean([float(r["slowdown"]) for r in rows]))
        assert figures["mean_latency"] == pytest.approx(np.mean(means), rel=1e-12)
        assert figures["p95_latency"] == pytest.approx(np.mean(p95s), rel=1e-12)
        assert figures["mean_slowdown"] == pytest.approx(np.mean(slowdowns), rel=1e-12)
        assert figures["queries"] == 25


def test_task_and_plan_csvs_describe_the_same_runs(run_dir: tuple[Path, str]) -> None:
    out, _ = run_dir
    plan = read_csv(out / "dag-seed0.csv")
    tasks_per_query: dict[str, int] = {}
    for row in plan:
        parents = [int(p) for p in row["parents"].split(";") if p]
        assert all(p < int(row["pipeline"]) for p in parents)
        tasks_per_query[row["query_id"]] = tasks_per_query.get(row["query_id"], 0) + int(
            row["tasks"]
        )
    for agent in ("fifo", "fair"):
        tasks = read_csv(out / f"tasks-{agent}-seed0.csv")
        assert len(tasks) == sum(tasks_per_query.values())  # no faults: each task ran once
        assert all(float(t["end_s"]) > float(t["start_s"]) for t in tasks)
        assert {int(t["thread"]) for t in tasks} <= set(range(8))
        queries = {r["query_id"]: r for r in read_csv(out / f"queries-{agent}-seed0.csv")}
        for task in tasks:
            assert float(task["end_s"]) <= float(queries[task["query_id"]]["finish_s"]) + 1e-9


def test_plots_are_written_and_re_rendered_by_lsched_plot(run_dir: tuple[Path, str]) -> None:
    out, _ = run_dir
    pngs = ["gantt-fifo.png", "gantt-fair.png", "latency-cdf.png", "comparison.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name
        (out / name).unlink()
    result = invoke("plot", out)
    assert result.exit_code == 0, result.output
    for name in pngs:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    assert not list(out.glob(".*.tmp"))


def test_same_seed_gives_byte_identical_results(
    tmp_path: Path, scenario_file: Path, run_dir: tuple[Path, str]
) -> None:
    first, _ = run_dir
    again = tmp_path / "again"
    result = invoke("run", scenario_file, "--seeds", "2", "--out", again, "--json")
    assert result.exit_code == 0, result.output
    for name in ("results.json", "queries-fair-seed1.csv", "tasks-fifo-seed0.csv"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name


def test_without_a_terminal_run_prints_the_table_and_no_progress_bar(scenario_file: Path) -> None:
    result = invoke("run", scenario_file, "--seeds", "1", "--agents", "fair,fifo")
    assert result.exit_code == 0, result.output
    assert "lower bound" in result.stdout and "fair" in result.stdout
    assert "simulating" not in result.stdout and "\x1b[" not in result.stdout


def test_the_table_keeps_agent_options_and_millisecond_latencies(tmp_path: Path) -> None:
    """Agent labels carry options in brackets, which rich would read as markup and drop; and
    DuckDB-scale latencies (tens of ms) need more than one decimal of a second."""
    path = tmp_path / "ms.yaml"
    path.write_text(
        "name: ms\ncluster: {engine: duckdb}\nworkload:\n  queries: 10\n  streams:\n"
        "    - name: s\n      arrivals: {process: poisson, rate_per_s: 20}\n"
        "      mix: [tpch-q1, tpch-q6]\nagents: [sjf, {name: sjf, decisions: query}]\n"
    )
    result = invoke("run", path, "--seeds", "1")
    assert result.exit_code == 0, result.output
    assert "sjf[decisions=" in result.stdout
    mean = json.loads(invoke("run", path, "--seeds", "1", "--json").stdout)["agents"]["sjf"]
    assert f"{mean['mean_latency']:.3g}" in result.stdout  # three significant digits


def test_the_saved_scenario_reruns_from_anywhere_with_the_agents_that_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scenario.yaml in a results folder is the scenario as run: the agents of --agents (not
    the file's defaults), and paths that were relative to the file's folder made absolute."""
    import yaml

    home = tmp_path / "home"
    home.mkdir()
    (home / "log.csv").write_text(
        "arrival_s,template,scale_factor\n0,tpch-q1,1\n1,tpch-q6,1\n2,tpch-q1,1\n"
    )
    (home / "s.yaml").write_text(
        "name: traced\ncluster: {engine: duckdb}\nworkload:\n  trace: {path: log.csv}\n"
        "agents: [fifo, sjf]\n"
    )
    out = tmp_path / "out"
    assert (
        invoke("run", home / "s.yaml", "--seeds", "1", "--agents", "fair", "--out", out).exit_code
        == 0
    )
    saved = (out / "scenario.yaml").read_text()
    assert saved.endswith("\n") and yaml.safe_load(saved)["agents"] == ["fair"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (elsewhere / "copy.yaml").write_text(saved)
    rerun = invoke("run", "copy.yaml", "--seeds", "1", "--json")
    assert rerun.exit_code == 0, rerun.output
    assert list(json.loads(rerun.stdout)["agents"]) == ["fair"]


def test_a_saved_scenario_reruns_the_policy_file_that_ran(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy given by a relative path is saved absolute, and loading the saved file runs
    that file (an absolute `lsched:PATH` in a scenario file once fell back to the shipped
    policy without a word)."""
    import shutil

    import yaml

    from agents.learned import PRETRAINED

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(PRETRAINED, work / "pol.pt")
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    ran = invoke(
        "run", scenario_file, "--seeds", "1", "--agents", "fifo,lsched:pol.pt", "--out", out
    )
    assert ran.exit_code == 0, ran.output
    saved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert saved["agents"] == ["fifo", f"lsched:{work / 'pol.pt'}"]
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy.yaml"
    copy.write_text((out / "scenario.yaml").read_text())
    checked = invoke("validate", copy)
    assert checked.exit_code == 0 and f"lsched:{work / 'pol.pt'}" in checked.stdout
    copy.write_text(copy.read_text().replace("pol.pt", "gone.pt"))
    missing = invoke("validate", copy)
    assert missing.exit_code == 2 and "gone.pt" in missing.output  # that file, not the shipped one


BROKEN = {
    "wrong type": (SMALL.replace("nodes: 2", "nodes: two"), "cluster.nodes: Input should be"),
    "unknown key": (SMALL.replace("warmup_s", "warmup"), "cluster.warmup: unknown key"),
    "negative rate": (
        SMALL.replace("rate_per_s: 0.3", "rate_per_s: -1"),
        "workload.streams[0].arrivals.rate_per_s: Input should be greater than 0",
    ),
    "missing template": (
        SMALL.replace('"tpch-*"', "tpch-q99"),
        "workload.streams[0].mix[0].templates[0]: pattern 'tpch-q99' matches no template",
    ),
    "bad YAML": (SMALL.replace("agents: [fifo, fair]", "agents: [fifo, fair"), "invalid YAML"),
    "unknown agent": (SMALL.replace("[fifo, fair]", "[fifo, fare]"), "agents[1]: unknown agent"),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_scenario_is_one_error_line_and_exit_2(
    tmp_path: Path, case: str, command: str
) -> None:
    text, expected = BROKEN[case]
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    args = ["run", path, "--seeds", "1", "--out", out] if command == "run" else ["validate", path]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert expected in lines[0]
    assert not out.exists()


def test_user_errors_on_the_command_line_exit_2_and_write_nothing(
    tmp_path: Path, scenario_file: Path
) -> None:
    out = tmp_path / "out"
    cases = [
        (["run", scenario_file, "--agents", "fifo,nope", "--out", out], "unknown agent 'nope'"),
        (["run", scenario_file, "--seeds", "0", "--out", out], "--seeds must be >= 1"),
        (["run", tmp_path / "missing.yaml"], "missing.yaml: no such file"),
        (["validate", tmp_path], "a folder, not a scenario file"),
        (["run", scenario_file, "--agents", "bogus"], "known agents: cpf,"),
        (["run", "tpch-streeming"], "no such file or bundled scenario"),
        (["run", scenario_file, "--agents", "fifo,,sjf", "--out", out], "--agents: an empty name"),
        (["plot", tmp_path], "results.json: no such file"),
        (["calibrate", "tpch", "--scale-factors", "0.1,x"], "'x' is not a number"),
        (
            ["calibrate", "tpch", "--speed-reference", TEMPLATES / "ssb.json", "--out", out],
            "ssb.json: suite: the file holds 'ssb', not 'tpch'",
        ),
        (
            ["calibrate", "tpch", "--speed-reference", tmp_path / "none.json", "--out", out],
            "none.json",
        ),
        (
            [
                *("calibrate", "tpch", "--scale-factors", "3", "--speed-reference"),
                *(TEMPLATES / "tpch.json", "--out", out),
            ],
            "tpch.json: scale_factors: shares none with --scale-factors (it holds 0.1, 1)",
        ),
        (
            ["calibrate", "tpch", "--refit", TEMPLATES / "tpch.json", "--speed-reference", out],
            "--speed-reference: scales a new measurement",
        ),
    ]
    for args, expected in cases:
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and expected in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    assert not out.exists()
    a_file = tmp_path / "file"
    a_file.write_text("")
    result = invoke("run", scenario_file, "--seeds", "1", "--out", a_file)
    assert result.exit_code == 2 and "must be a folder" in result.stderr


def test_the_sigterm_handler_is_the_commands_alone(
    scenario_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command turns SIGTERM into Ctrl-C while it runs (tests/test_hostile.py terminates a
    sweep) and gives the caller's handler back when it ends; from another thread, where no
    handler may be set, it runs as it is."""
    import signal
    import threading

    import lsched.scenario

    before = signal.getsignal(signal.SIGTERM)
    during = []
    load = lsched.scenario.load_scenario

    def watched(name: object) -> object:
        during.append(signal.getsignal(signal.SIGTERM))
        return load(name)

    monkeypatch.setattr(lsched.scenario, "load_scenario", watched)
    assert invoke("validate", scenario_file).exit_code == 0
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(KeyboardInterrupt):
        during[0](signal.SIGTERM, None)
    results = []
    thread = threading.Thread(target=lambda: results.append(invoke("validate", scenario_file)))
    thread.start()
    thread.join(timeout=120)
    assert results and results[0].exit_code == 0, results and results[0].output
    assert during[1] is before and signal.getsignal(signal.SIGTERM) is before


def test_calibrate_without_duckdb_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # makes `import duckdb` fail
    result = invoke("calibrate", "tpch", "--out", tmp_path / "t.json")
    assert result.exit_code == 2
    assert "duckdb" in result.stderr and "lsched[calibrate]" in result.stderr
    assert not (tmp_path / "t.json").exists()


def test_validate_and_scenarios_describe_what_is_there(scenario_file: Path) -> None:
    result = invoke("validate", scenario_file)
    assert result.exit_code == 0
    assert "ok" in result.stdout and "25 queries on seed 0" in result.stdout
    listing = invoke("scenarios")
    assert listing.exit_code == 0
    for name in bundled_scenarios():
        assert name in listing.stdout
    assert "Poisson" in listing.stdout  # descriptions are shown


def test_the_installed_entry_point_reports_errors_the_same_way(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "lsched.cli", "run", str(tmp_path / "none.yaml"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"error: {tmp_path / 'none.yaml'}: no such file\n"


def test_sweep_runs_resumes_and_plots(scenario_file: Path, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        f"scenarios: [{scenario_file}]\nagents: [fifo, fair]\nseeds: 2\n"
        "overrides: {cluster.nodes: [1, 2]}\n"
    )
    out = tmp_path / "sweep"
    first = invoke("sweep", spec, "--out", out, "--workers", "1")
    assert first.exit_code == 0, first.output
    assert "8 of 8 runs run now" in first.output
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    again = invoke("sweep", spec, "--out", out, "--workers", "1")
    assert "0 of 8 runs run now, 8 kept" in again.output
    assert (out / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert invoke("plot", out).exit_code == 0


def test_train_writes_a_policy_that_run_evaluates(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "train"
    settings = [
        "--set", "imitate=null", "--set", "eval_every=1", "--set", "eval_max_queries=10",
        "--set", "curriculum_start_queries=10", "--set", "curriculum_end_queries=15",
        "--set", "workloads_per_iteration=1", "--set", "rollouts_per_workload=2",
        "--set", 'baselines=["fifo"]',
    ]  # fmt: skip
    trained = invoke("train", scenario_file, "--out", out, "--iterations", "2", "--workers", "1",
                     *settings)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    curve = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in curve] == [1, 2]
    best = min(curve, key=lambda r: r["eval_score"])  # what best.pt, so policy.pt, holds
    shipped = f"small {100 * best['eval']['small']['vs_best']:+.2f}%"
    assert f"(iteration {best['iteration']}, the best validated): {shipped}" in trained.output
    assert invoke("plot", out).exit_code == 0
    assert (out / "learning-curve.png").read_bytes().startswith(b"\x89PNG")
    policy = out / "policy.pt"
    run = invoke(
        "run", scenario_file, "--agents", f"fifo,lsched:{policy}", "--seeds", "1", "--json"
    )
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["agents"][f"lsched:{policy}"]["queries"] == 25


def test_a_corrupt_checkpoint_is_one_error_line(scenario_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "policy.pt"
    broken.write_bytes(b"not a checkpoint")
    result = invoke("run", scenario_file, "--agents", f"lsched:{broken}", "--seeds", "1")
    assert result.exit_code == 2
    assert str(broken) in result.output and result.output.count("\n") == 1


def test_lost_and_rerun_tasks_are_reported_for_a_faulty_cluster(tmp_path: Path) -> None:
    faulty = tmp_path / "faulty.yaml"
    faulty.write_text(SMALL + "simulation: {faults: {mean_time_between_failures_s: 30}}\n")
    result = invoke("run", faulty, "--agents", "fair", "--seeds", "1", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["agents"]["fair"]
    assert figures["lost_tasks"] > 0 and figures["rerun_tasks"] > 0
    table = invoke("run", faulty, "--agents", "fair", "--seeds", "1")
    assert "lost/re-run" in table.output


def test_calibrate_refit_rewrites_a_file_from_its_own_latencies(tmp_path: Path) -> None:
    shipped = Path(__file__).parent.parent / "lsched" / "workloads" / "templates" / "tpch.json"
    out = tmp_path / "tpch.json"
    result = invoke("calibrate", "tpch", "--refit", shipped, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "uniform shape: tpch-q11 at SF 1" in result.stdout
    assert out.read_bytes() == shipped.read_bytes()  # the shipped file is its own refit
    result = invoke("calibrate", "ssb", "--refit", shipped, "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "suite: the file holds 'tpch', not 'ssb'" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "x.json").exists()


def test_calibrate_interference_refuses_a_suite_whose_costs_the_preset_does_not_read(
    tmp_path: Path,
) -> None:
    shipped = Path(__file__).parent.parent / "lsched" / "workloads" / "templates" / "ssb.json"
    out = tmp_path / "ssb.json"
    result = invoke("calibrate", "ssb", "--interference", shipped, "--out", out)
    assert result.exit_code == 2 and "reads the engine costs of the tpch file" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()
    both = invoke("calibrate", "tpch", "--refit", out, "--interference", out)
    assert both.exit_code == 2 and "give one of them" in both.stderr


def test_the_run_says_what_tuned_chose_and_how_often_lsched_followed_it(tmp_path: Path) -> None:
    """ "Would a learned scheduler beat tuned?" needs what `tuned` ran and whether the policy
    decided anything of its own: the table's notes and the JSON's `descriptions` say both."""
    path = tmp_path / "described.yaml"
    agents = (
        "agents: [fifo, {name: tuned, seeds: 1}, {name: lsched, deviation_margin: 1000}, "
        "{name: lsched, deviation_margin: 0}]\n"
    )
    path.write_text(SMALL.replace("agents: [fifo, fair]\n", agents))
    result = invoke("run", path, "--seeds", "1", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # the note that tuned searches first goes to stderr
    assert result.stderr.startswith("tuned: searching its knobs on the training seeds first")
    described = document["descriptions"]
    tuned = described["tuned[seeds=1]"]
    assert tuned.startswith("tuned[seeds=1]: ") and "on training seeds" in tuned  # its label
    assert described["lsched[deviation_margin=0]"].startswith("lsched[deviation_margin=0]: ")
    assert "fifo" not in described
    following = described["lsched[deviation_margin=1000]"]
    made = re.fullmatch(r".*decision in ([\d,]+) of its ([\d,]+) decisions", following)
    assert made and made[1] == made[2] and made[2] != "0"
    agents_figures = document["agents"]
    assert (
        agents_figures["lsched[deviation_margin=1000]"]["mean_latency"]
        == agents_figures["tuned[seeds=1]"]["mean_latency"]
    )
    own = re.fullmatch(
        r".*decision in ([\d,]+) of its ([\d,]+) decisions", described["lsched[deviation_margin=0]"]
    )
    assert own and int(own[1].replace(",", "")) <= int(own[2].replace(",", ""))
    table = invoke("run", path, "--seeds", "1", "--agents", "fifo,tuned[seeds=1]")
    assert tuned in table.stdout.replace("\n", "")


def test_validate_says_how_loaded_the_cluster_will_be(tmp_path: Path) -> None:
    """Queries of 10 thread-seconds (5 s at 2 threads) arriving every 10 s on 4 threads
    offer a load of 0.25 (ρ = λ·E[work] / threads); arriving together they are a batch."""
    log = tmp_path / "log.csv"
    log.write_text("arrival_s,template,duration_s\n0,a,5\n10,b,5\n")
    path = tmp_path / "load.yaml"
    path.write_text(
        "name: load\ncluster: {nodes: 1, threads_per_node: 4}\n"
        "workload:\n  trace: {path: log.csv, threads: 2}\nagents: [fifo]\n"
    )
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert "2 queries on seed 0 (offered load 0.25: arrival rate × mean" in result.stdout
    # the results join back to the log: each query's row and fingerprint
    out = tmp_path / "out"
    assert invoke("run", path, "--seeds", "1", "--out", out).exit_code == 0
    rows = read_csv(out / "queries-fifo-seed0.csv")
    assert [r["origin"] for r in rows] == ["row 2: a", "row 3: b"]
    log.write_text("arrival_s,template,duration_s\n0,a,5\n0,b,5\n")
    assert "(a batch: all arrive at once)" in invoke("validate", path).stdout


def test_missed_deadlines_are_reported_where_queries_have_deadlines(tmp_path: Path) -> None:
    path = tmp_path / "due.yaml"
    path.write_text(
        SMALL.replace("work_multiplier: 60\n", "work_multiplier: 60\n      deadline_s: 2\n")
    )
    document = json.loads(invoke("run", path, "--seeds", "1", "--json").stdout)
    missed = [figures["missed_deadlines"] for figures in document["agents"].values()]
    assert all(0 < share <= 1 for share in missed), missed  # 2 s is short for these queries
    table = invoke("run", path, "--seeds", "1").stdout
    assert "deadlines" in table and f"{missed[0]:.1%}" in table


def test_a_run_that_fails_writing_leaves_the_earlier_results_whole(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs are written beside the folder and replace the earlier run's only once whole: a
    full disk while plotting used to leave the old results deleted and the new ones half."""
    import lsched.plots

    out = tmp_path / "out"
    assert invoke("run", scenario_file, "--seeds", "1", "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(folder: Path) -> None:
        (folder / "gantt-fifo.png").write_bytes(b"half")
        raise OSError(27, "File too large")

    monkeypatch.setattr(lsched.plots, "render_plots", full_disk)
    failed = invoke("run", scenario_file, "--seeds", "2", "--out", out)
    assert failed.exit_code == 2, failed.output
    assert "nothing written" in failed.output and "Traceback" not in failed.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging left
    assert invoke("run", scenario_file, "--seeds", "2", "--out", tmp_path / "new").exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # a folder it made: removed


def test_outputs_replace_the_earlier_runs_on_another_file_system(
    scenario_file: Path, tmp_path: Path
) -> None:
    """Staged inside --out, not beside it: a mount point or a symlink to another disk made the
    moves fail after the old results were deleted, losing both runs."""
    import tempfile

    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        out = tmp_path / "out"
        out.symlink_to(elsewhere, target_is_directory=True)
        for seeds in ("1", "2"):
            ran = invoke("run", scenario_file, "--seeds", seeds, "--out", out)
            assert ran.exit_code == 0, ran.output
        assert json.loads((out / "results.json").read_text())["seeds"] == [0, 1]
        assert not list(out.glob(".staging-*"))
    finally:
        import shutil

        shutil.rmtree(elsewhere)


def test_long_agent_labels_get_file_names_the_file_system_takes() -> None:
    import lsched.io

    long_label = "fair[max_parallelism=" + "1" * 300 + "]"
    name = lsched.io.queries_file(Path("."), long_label, 0).name
    assert len(name) < 255 and name != lsched.io.queries_file(Path("."), long_label + "x", 0).name


def test_plot_options_of_run_folders_on_a_sweep_folder_say_so(tmp_path: Path) -> None:
    """It said results.json was missing and, in the same line, that plot draws sweep folders."""
    (tmp_path / "sweep.json").write_text("{}")
    result = invoke("plot", tmp_path, "--compare", "fifo,fair")
    assert result.exit_code == 2
    assert "--compare applies to a run folder's plots; this is a sweep's folder" in result.output


def test_set_changes_one_setting_for_a_command_and_results_record_it(
    scenario_file: Path, tmp_path: Path
) -> None:
    """A one-off override needed a copy of the file or a one-point sweep."""
    import yaml

    out = tmp_path / "out"
    ran = invoke(
        "run", scenario_file, "--seeds", "1", "--agents", "fifo", "--out", out,
        "--set", "cluster.nodes=3", "--set", "workload.streams.0.arrivals.rate_per_s=0.5",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    saved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert saved["cluster"]["nodes"] == 3
    assert saved["workload"]["streams"][0]["arrivals"]["rate_per_s"] == 0.5
    checked = invoke("validate", scenario_file, "--set", "cluster.nodes=3")
    assert checked.exit_code == 0 and "12 threads" in checked.output
    typo = invoke("validate", scenario_file, "--set", "cluster.nodez=3")
    assert typo.exit_code == 2 and "cluster.nodez: unknown key (did you mean 'nodes'" in typo.output
    bare = invoke("run", scenario_file, "--set", "cluster.nodes")
    assert bare.exit_code == 2 and "expected KEY=VALUE" in bare.output


def test_a_sweep_file_given_as_a_scenario_and_back_says_which_it_is(
    scenario_file: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"scenarios: [{scenario_file}]\nagents: [fifo]\nseeds: 1\n")
    wrong = invoke("validate", spec)
    assert (
        wrong.exit_code == 2 and "a sweep file" in wrong.output and "lsched sweep" in wrong.output
    )
    back = invoke("sweep", scenario_file, "--out", tmp_path / "out")
    assert back.exit_code == 2 and "a scenario file" in back.output and "lsched run" in back.output


def test_a_finished_run_clears_dead_runs_staging_not_live_ones(
    scenario_file: Path, tmp_path: Path
) -> None:
    """Two runs into one folder: the first to finish removed the other's staging folder while
    it was still writing."""
    import os

    out = tmp_path / "out"
    out.mkdir()
    live = out / f".staging-{os.getppid()}-abc"  # a process that runs: our parent
    dead = out / ".staging-999999999-abc"  # no such process
    for stage in (live, dead):
        stage.mkdir()
    assert invoke("run", scenario_file, "--seeds", "1", "--out", out).exit_code == 0
    assert live.is_dir() and not dead.exists()
