"""The `lsched` command: run a scenario, plot a results folder, validate and list scenarios.

Every user error (a bad scenario file, an unknown agent, a missing file, a bad option value)
ends as one line on stderr, "error: ...", and exit code 2; nothing is written before the runs
succeed. Heavy modules (the runner, agents, matplotlib) load only in the commands that need them.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lsched.errors import LschedError

if TYPE_CHECKING:
    from rich.progress import Progress

    from lsched.runner import PairedRatio, ScenarioReport
    from lsched.sweep import SweepReport
    from sim.model import QuerySpec

USER_ERROR_EXIT = 2
"""Exit code of every user error (the same code click uses for bad command lines)."""
INTERRUPTED_EXIT = 130
"""Exit code of a command stopped by Ctrl-C or SIGTERM (click's own for Ctrl-C: 128 + SIGINT)."""

PIPE_WIDTH = 120
"""Columns of rich output written to a file or pipe (a terminal's own width is used otherwise)."""

app = typer.Typer(
    name="lsched",
    help="Workload-aware query scheduling: simulate a database cluster and compare schedulers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _on_start(ctx: typer.Context) -> None:
    """Every command stops on SIGTERM (`timeout`, `kill`, a cancelled CI job) as it does on
    Ctrl-C, so what Ctrl-C cleans up — a half-generated database, a half-written output — a
    terminated run cleans up too. Only on the main thread (the only one that may set handlers),
    and the caller's handler is back when the command ends (`app` called as a library)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into `error: ...` on stderr and exit code 2."""
    try:
        yield
    except (LschedError, ValueError) as error:
        _fail(str(error))
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        _fail(f"{where}{error.strerror or error}")
    except MemoryError:  # what no check foresaw: a one-line error, not a traceback
        _fail("out of memory: the input asks for more than this machine holds")
    except RecursionError:
        _fail("the input is nested too deeply to read")
    except OverflowError as error:
        _fail(f"a number too large: {error}")


def _fail(message: str) -> None:
    typer.echo("error: " + " ".join(message.split()), err=True)
    raise typer.Exit(USER_ERROR_EXIT)


def _csv_list(text: str | None, option: str) -> list[str] | None:
    """The items of a comma-separated option; an empty item (`fifo,,sjf`) is a typo, refused."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ValueError(f"{option}: expected a comma-separated list, got {text!r}")
    if not all(items):
        raise ValueError(f"{option}: an empty name in {text!r}")
    return items


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="KEY=VALUE: change one setting of the scenario for this command, by its dotted "
        "path (cluster.nodes=3, workload.streams.0.arrivals.rate_per_s=0.2; repeatable; VALUE "
        "as JSON, else a string).",
    ),
]


def _with_settings(loaded: Any, settings: Sequence[str] | None) -> Any:
    """The scenario with `--set` applied (results record it: their scenario.yaml reruns it)."""
    if not settings:
        return loaded
    from lsched.documents import setting_value

    overrides: dict[str, Any] = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. cluster.nodes=3")
        overrides[key.strip()] = setting_value(text)
    return loaded.with_overrides(overrides)


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="A bundled scenario name or a YAML file.")],
    agents: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated agents (default: the scenario's); a name the scenario lists "
            "keeps its options there."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="How many seeds to run.")] = 3,
    seed_start: Annotated[int, typer.Option(help="First seed.")] = 0,
    out_text: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Write results.json, CSVs and plots to this folder (new, empty, or an earlier "
            "run's: its old files are replaced).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of a table.")
    ] = False,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="The agent every other is compared with, seed by seed (default: the best "
            "that is not a learned policy)."
        ),
    ] = None,
    settings: SetOption = None,
) -> None:
    """Run agents × seeds on a scenario and compare their latencies."""
    with _user_errors():
        from agents.registry import is_learned
        from lsched.io import check_results_folder, out_folder, staged_outputs
        from lsched.runner import (
            agent_choices,
            agent_labels,
            check_agents,
            run_scenario,
            seed_range,
            write_results,
        )
        from lsched.scenario import load_scenario

        out = out_folder(out_text)
        loaded = _with_settings(load_scenario(scenario), settings)
        agent_list = _csv_list(agents, "--agents")
        labels = agent_labels(loaded, agent_list)
        if baseline is not None and baseline not in labels:
            raise ValueError(f"--baseline: {baseline!r} is not one of {', '.join(labels)}")
        if out is not None:
            check_results_folder(out)
        console = _console()
        show_progress = console.is_terminal and sys.stdout.isatty() and not json_output
        # agents are built first: `tuned` searches its grid on training seeds (minutes, at times),
        # and so does the guide of a learned policy
        tuning = any(label.startswith("tuned") or is_learned(label) for label in labels)
        first = "building agents (tuned: searching its knobs)" if tuning else "simulating"
        if tuning and not show_progress:  # no bar to say why nothing happens for a while
            seed_range(seeds, seed_start, loaded)  # bad arguments fail first
            check_agents(loaded, agent_choices(loaded, agent_list))
            typer.echo(
                "tuned: searching its knobs on the training seeds first, unless an earlier "
                "command's choice is cached (minutes on a large workload; its option "
                "max_queries shortens the search)",
                err=True,
            )
        with _progress(console, show_progress, first) as progress:
            report = run_scenario(
                loaded,
                agent_list,
                seeds,
                seed_start,
                progress=progress,
                keep_results=out is not None,
            )
        if out is not None:
            from lsched.plots import render_plots

            with staged_outputs(out) as stage:  # the earlier run's stay until these are whole
                write_results(report, loaded, stage, baseline)
                render_plots(stage)
        if json_output:
            from lsched.io import json_text

            sys.stdout.write(json_text(report.to_document(baseline)))
            return
        console.print(_report_table(report, baseline))
        for text in report.descriptions.values():
            console.print(f"[dim]{escape(text)}[/dim]")
        if out is not None:
            console.print(f"results, CSVs and plots written to {escape(str(out))}/")


@app.command()
def real(
    scenario: Annotated[str, typer.Argument(help="A bundled scenario name or a YAML file.")],
    agents: Annotated[
        str | None,
        typer.Option(help="Comma-separated agents, run in their query-level forms."),
    ] = None,
    seeds: Annotated[int, typer.Option(help="How many seeds to run.")] = 1,
    seed_start: Annotated[int, typer.Option(help="First seed.")] = 0,
    repeats: Annotated[
        int, typer.Option(help="Real runs per agent and seed (interleaved); medians reported.")
    ] = 3,
    time_scale: Annotated[
        str,
        typer.Option(
            help="Multiplies arrival times: 0.5 submits twice as fast; auto: by the engine's "
            "speed factor measured before the runs, so the engine sees the scenario's load."
        ),
    ] = "1",
    timeout_s: Annotated[
        float, typer.Option(help="Per-query timeout on the engine (seconds).")
    ] = 60.0,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Workers' tables: memory (default: a copy per worker, the storage the "
            "templates are calibrated on) or file (the read-only database file)."
        ),
    ] = None,
    out_text: Annotated[
        str | None,
        typer.Option(
            "--out", help="Write results.json, CSVs, fidelity.json and plots to this folder."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results and fidelity as one JSON document.")
    ] = False,
    settings: SetOption = None,
) -> None:
    """Run a scenario's workload on real DuckDB and compare it with the simulator's prediction."""
    with _user_errors():
        try:
            import duckdb  # noqa: F401
        except ModuleNotFoundError:
            raise LschedError("lsched real needs duckdb: pip install 'lsched[calibrate]'") from None
        from lsched.io import check_results_folder, out_folder, staged_outputs
        from lsched.real import (
            DEFAULT_STORAGE,
            QUERY_LEVEL_AGENTS,
            STORAGES,
            fidelity_report,
            fidelity_verdict,
            results_document,
            run_real,
            write_real_results,
        )
        from lsched.runner import agent_choices, seed_range
        from lsched.scenario import load_scenario

        out = out_folder(out_text)
        loaded = _with_settings(load_scenario(scenario), settings)
        if out is not None:
            check_results_folder(out)
        scale = _time_scale(time_scale)
        if repeats < 1:
            raise ValueError(f"--repeats: {repeats}; at least 1 real run per agent and seed")
        if not 0 < timeout_s < math.inf:  # inf overflowed the watchdog timers, silently
            raise ValueError(f"--timeout-s: {timeout_s}; a finite number of seconds > 0")
        storage = storage or DEFAULT_STORAGE
        if storage not in STORAGES:
            raise ValueError(f"--storage: expected one of {', '.join(STORAGES)}, got {storage!r}")
        seed_list = seed_range(seeds, seed_start, loaded)
        choices = agent_choices(loaded, _csv_list(agents, "--agents"))
        if agents is None:  # the scenario's list: the agents that can steer DuckDB
            choices = [c for c in choices if c.name in QUERY_LEVEL_AGENTS] or choices
        from agents.registry import is_known

        unknown = [c.name for c in choices if not is_known(c.name)]
        if unknown:  # the registry's list would offer pipeline-only agents too
            steer = ", ".join(sorted(QUERY_LEVEL_AGENTS))
            raise ValueError(
                f"--agents: unknown agent {unknown[0]!r}; DuckDB is steered by {steer} "
                "(and lsched:PATH, or a plugin's agent with a query-level form)"
            )
        total = sum(len(loaded.queries(s)) for s in seed_list) * len(choices) * repeats
        console = _console()
        show = console.is_terminal and sys.stdout.isatty() and not json_output
        try:
            with contextlib.ExitStack() as stack:
                on_done = None
                if show:
                    bar = stack.enter_context(_bar(console, transient=True))
                    task = bar.add_task("queries on DuckDB", total=total)

                    def on_done(_record: object) -> None:
                        bar.advance(task)

                say = (lambda line: console.print(line, style="dim")) if show else None
                if not show:  # no bar: what is coming, and then what happens, on stderr

                    def say(line: str) -> None:
                        typer.echo(line, err=True)

                report = run_real(
                    loaded,
                    choices,
                    seed_list,
                    repeats=repeats,
                    time_scale=scale,
                    timeout_s=timeout_s,
                    storage=storage,
                    progress=say,
                    on_done=on_done,
                )
        except KeyboardInterrupt:
            typer.echo("interrupted: no results written", err=True)
            raise typer.Exit(INTERRUPTED_EXIT) from None
        fidelity = fidelity_report(report, loaded, choices)
        document = results_document(report)
        if out is not None:
            from lsched.plots import render_plots

            with staged_outputs(out) as stage:
                write_real_results(report, fidelity, stage, loaded, choices)
                render_plots(stage)
        if json_output:
            from lsched.io import json_text

            sys.stdout.write(json_text({"results": document, "fidelity": fidelity}))
            return
        console.print(_real_table(document, fidelity))
        for line in fidelity_verdict(fidelity):
            console.print(escape(line))
        for text in report.descriptions.values():
            console.print(f"[dim]{escape(text)}[/dim]")
        if out is not None:
            console.print(f"results, fidelity and plots written to {escape(str(out))}/")


def _time_scale(text: str) -> float | str:
    """`--time-scale`: a number > 0, or `auto` (the engine's speed factor)."""
    from lsched.real import AUTO_TIME_SCALE

    if text.strip().lower() == AUTO_TIME_SCALE:
        return AUTO_TIME_SCALE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"--time-scale: expected a number > 0 or {AUTO_TIME_SCALE}, got {text!r}")
    return value


def _real_table(document: dict, fidelity: dict) -> Table:
    """Per agent: real and predicted latency (ms), the error after the speed factor and
    after each run's own (drift-matched), the prediction had deciding been free, and the time
    (ms) one of its decisions took."""
    table = Table(
        title=(
            f"{escape(str(document['scenario']))} on DuckDB: {len(document['seeds'])} seed(s) × "
            f"{document['repeats']} repeats; latencies in ms; speed factor "
            f"{fidelity['speed_factor']:.2f}, noise floor "
            + (
                f"{fidelity['noise_floor']:.1%}"
                if fidelity["noise_floor"] is not None
                else "unknown (one repeat: --repeats 3 measures it)"
            )
            + (f"; arrivals × {fidelity['time_scale']:.2f}" if fidelity["time_scale"] != 1 else "")
            + (
                f"; agents deciding alike {fidelity['same_schedule_spread']:.1%} apart"
                if fidelity["same_schedule_spread"] is not None
                else ""
            )
        ),
        title_justify="left",
    )
    for header in (
        "agent",
        "real mean",
        "predicted",
        "error",
        "drift-matched",
        "if free",  # predicted were deciding free (headers short: the table fits 100 columns)
        "real p95",
        "pred. p95",
        "ms/decision",
        "failed",
    ):
        table.add_column(header, justify="left" if header == "agent" else "right")
    for label, figures in fidelity["agents"].items():
        table.add_row(
            escape(label),
            f"{figures['real_mean_latency'] * 1e3:.1f}",
            f"{figures['predicted_mean_latency'] * 1e3:.1f}",
            f"{figures['mean_error']:+.1%}",
            f"{figures['mean_error_matched']:+.1%}" if "mean_error_matched" in figures else "",
            f"{figures['predicted_mean_latency_free'] * 1e3:.1f}",
            f"{figures['real_p95_latency'] * 1e3:.1f}",
            f"{figures['predicted_p95_latency'] * 1e3:.1f}",
            f"{figures['decision_s'] * 1e3:.2f}",
            f"{figures['failed_queries']:g}",
        )
    return table


def _console() -> Console:
    """Rich output; wide enough for the results table when stdout is a file or a pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def _bar(console: Console, transient: bool) -> Progress:
    """The one progress-bar layout: description, bar, done/total, elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


@contextlib.contextmanager
def _progress(console: Console, enabled: bool, first: str = "starting") -> Iterator[object]:
    """A rich progress bar on a terminal, saying `first` until the first run ends; a no-op
    callback (None) elsewhere."""
    if not enabled:
        yield None
        return
    with _bar(console, transient=True) as bar:
        task = bar.add_task(first, total=None)

        def update(done: int, total: int, figures: object) -> None:
            where = ", ".join(
                f"{path}={value}"
                for path, value in (getattr(figures, "overrides", None) or {}).items()
            )
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"{figures.agent} seed {figures.seed}"  # type: ignore[attr-defined]
                + (f" ({where})" if where else ""),
            )

        yield update


def _report_table(report: ScenarioReport, baseline: str | None = None) -> Table:
    """Per-agent figures (latencies in seconds), best mean latency in bold, each agent's mean
    latency against the baseline's seed by seed (with its 95% interval), and the lower bound."""
    seeds = ", ".join(str(s) for s in report.seeds)
    paired = report.paired(baseline)
    reference = next(iter(paired.values())).baseline
    table = Table(
        title=f"{escape(report.scenario)}: seeds {seeds}; latencies in seconds",
        title_justify="left",
        caption=f"± sd: over seeds; vs {escape(reference)}: the mean latency's change, seed by "
        "seed, ± its 95% interval",
        caption_justify="left",
    )
    table.add_column("agent", overflow="fold")
    headers = (
        "mean",
        "± sd",
        f"vs {escape(reference)}",
        "p50",
        "p95",
        "p99",
        "slowdown",
        "makespan",
    )
    headers = (*headers, "util.", "queries")
    faults = any(s.lost_tasks for s in report.agents.values())
    if faults:
        headers = (*headers, "lost/re-run tasks")
    deadlines = any(s.missed_deadlines is not None for s in report.agents.values())
    if deadlines:
        headers = (*headers, "missed deadlines")
    for header in headers:
        table.add_column(header, justify="right", overflow="fold")
    best = min(s.mean_latency_s for s in report.agents.values())
    for label, s in report.agents.items():
        lost = (f"{s.lost_tasks:g}/{s.rerun_tasks:g}",) if faults else ()
        if deadlines:
            missed = s.missed_deadlines
            lost = (*lost, "—" if missed is None else f"{missed:.1%}")
        table.add_row(
            f"[bold]{escape(label)}[/bold]" if s.mean_latency_s == best else escape(label),
            _seconds(s.mean_latency_s),
            _seconds(s.mean_latency_std_s) if len(report.seeds) > 1 else "—",
            "—" if label == reference else _versus(paired[label]),
            _seconds(s.p50_latency_s),
            _seconds(s.p95_latency_s),
            _seconds(s.p99_latency_s),
            f"{s.mean_slowdown:.2f}",
            _seconds(s.makespan_s),
            f"{s.utilization:.0%}",
            f"{s.queries:g}",
            *lost,
        )
    table.add_section()
    table.add_row(
        "[dim]lower bound[/dim]",
        f"[dim]{_seconds(report.lower_bound_mean_latency_s)}[/dim]",
        *[""] * (len(headers) - 1),
    )
    return table


def _seconds(value: float) -> str:
    """Seconds to three significant digits (0.0912, 1.06, 34.6; whole from 100): one decimal
    showed every DuckDB-scale latency as 0.1 or 0.0."""
    if not math.isfinite(value) or value == 0:
        return f"{abs(value) if value == 0 else value:.1f}"
    rounded = float(f"{value:.3g}")  # decimals from the rounded value: 99.95 is 100, not 100.0
    if abs(rounded) >= 100:
        return f"{value:.0f}"  # whole seconds, every digit kept
    if abs(rounded) < 1e-3:
        return f"{rounded:.3g}"  # microseconds and below: 1.23e-05
    return f"{rounded:.{max(1, 2 - math.floor(math.log10(abs(rounded))))}f}"


def _versus(paired: PairedRatio) -> str:
    """ "+0.32% ±0.41": the mean per-seed change against the baseline and its 95% interval
    (none from a single seed)."""
    change = 100 * (paired.ratio - 1)
    if not paired.has_interval:
        return f"{change:+.2f}%"
    return f"{change:+.2f}% ±{100 * paired.ci95:.2f}"


@app.command()
def plot(
    folder: Annotated[
        Path, typer.Argument(help="A folder `lsched run`, `lsched sweep` or `lsched train` wrote.")
    ],
    compare: Annotated[
        str | None,
        typer.Option(
            help="A,B[,C...]: agents to compare, A the baseline (default: the scenario's best "
            "baseline and the learned policy, or the runner-up)."
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(help="START,END in seconds: zoom the Gantt charts and the timeline."),
    ] = None,
) -> None:
    """Re-render the plots of a results, sweep or training folder from the files in it."""
    with _user_errors():
        from lsched.plots import METRICS_FILE, render_learning_curve, render_plots
        from lsched.sweep import JSON_FILE, plot_sweep

        results_only = compare is not None or window is not None
        kind = "sweep" if (folder / JSON_FILE).exists() else "training run"
        if results_only and ((folder / JSON_FILE).exists() or (folder / METRICS_FILE).exists()):
            option = "--compare" if compare is not None else "--window"
            raise ValueError(
                f"{folder}: {option} applies to a run folder's plots; this is a {kind}'s "
                "folder (drop the option)"
            )
        if (folder / JSON_FILE).exists():
            paths = plot_sweep(folder)
        elif (folder / METRICS_FILE).exists():
            paths = render_learning_curve(folder)
        else:
            paths = render_plots(folder, _csv_list(compare, "--compare"), _window(window))
        for path in paths:
            typer.echo(str(path))


def _window(text: str | None) -> tuple[float, float] | None:
    """--window START,END as seconds, START < END."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        start, end = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--window: {text!r} is not START,END in seconds") from None
    if not 0 <= start < end < float("inf"):
        raise ValueError(f"--window: {text!r}: need 0 <= START < END")
    return start, end


@app.command()
def report(
    folder: Annotated[
        Path, typer.Argument(help="A folder `lsched run`, `lsched real` or `lsched sweep` wrote.")
    ],
    baseline: Annotated[
        str | None,
        typer.Option(help="The agent others are compared with (default: the best baseline)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="The HTML file to write (default: FOLDER/report.html).")
    ] = None,
) -> None:
    """Write one self-contained HTML page: results table, every plot, the scenario."""
    with _user_errors():
        from lsched.report import write_report

        typer.echo(str(write_report(folder, baseline, out)))


@app.command()
def train(
    scenarios: Annotated[str, typer.Argument(help="Comma-separated scenarios to train on.")],
    out_text: Annotated[
        str, typer.Option("--out", help="Folder for metrics, checkpoints and policy.pt.")
    ],
    iterations: Annotated[int | None, typer.Option(help="Policy-gradient steps.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Rollout workers (default: one per core).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE of lsched.learn.TrainConfig (repeatable)."),
    ] = None,
    backend: Annotated[str, typer.Option(help="Where rollouts run: local or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (with --backend ray).")
    ] = None,
) -> None:
    """Train the learned scheduler; then `lsched run S --agents lsched:OUT/policy.pt`."""
    with _user_errors():
        from lsched.backends import make_backend
        from lsched.io import out_folder
        from lsched.learn import CHECKPOINT_FILE, config_from_settings
        from lsched.learn import train as train_policy
        from lsched.learn.loop import check_out_folder

        out = out_folder(out_text)
        assert out is not None
        flags = [
            f"{k}={v}"
            for k, v in (("iterations", iterations), ("workers", workers), ("seed", seed))
            if v is not None
        ]
        config = config_from_settings([*(settings or []), *flags])
        names = _csv_list(scenarios, "SCENARIOS") or []
        check_out_folder(out, resume)  # before a backend (a Ray cluster) is started
        console = _console()
        if resume and not (out / CHECKPOINT_FILE).exists():
            console.print(
                f"nothing to resume in {escape(str(out))} (no {CHECKPOINT_FILE}): a new run starts"
            )
        with (
            make_backend(backend, config.workers, address) as runner,
            _training_progress(console, config.iterations) as progress,
        ):
            path = train_policy(config, names, out, resume, progress=progress, backend=runner)
        from lsched.io import METRICS_FILE
        from lsched.learn.summary import training_summary

        for line in training_summary(out / METRICS_FILE):
            style = "bold yellow" if line.startswith("warning") else "dim"
            console.print(f"[{style}]{escape(line)}[/{style}]")
        console.print(
            f"policy written to {escape(str(path))}; "
            f"`lsched plot {escape(str(out))}` draws the learning curve"
        )


@contextlib.contextmanager
def _training_progress(console: Console, iterations: int) -> Iterator[object]:
    """A progress bar with the rollouts' latency and the validation against the best baseline
    on a terminal; one JSON line per iteration elsewhere."""
    import json

    if not (console.is_terminal and sys.stdout.isatty()):
        yield lambda record: typer.echo(json.dumps(record, allow_nan=False))
        return
    with _bar(console, transient=False) as bar:
        task = bar.add_task("training", total=iterations)
        vs_best = "validation pending"

        def update(record: dict) -> None:
            nonlocal vs_best
            if "eval_score" in record:
                vs_best = f"{100 * record['eval_score']:+.1f}% vs best baseline"
            if "margin" in record:
                margin = record["margin"]
                worst = margin["margins"][str(margin["chosen"])]["worst"]
                vs_best = f"deviation margin {margin['chosen']:g}: worst {100 * worst:+.1f}%"
            latency = record.get("rollout_mean_latency_s")
            shown = f"rollout latency {latency:.1f} s, " if latency is not None else ""
            bar.update(task, completed=record["iteration"], description=shown + vs_best)

        yield update


SWEEP_FAILED_EXIT = 1
"""Exit code of a sweep that finished with failed runs (recorded in its table)."""


@app.command()
def sweep(
    spec: Annotated[
        Path, typer.Argument(help="A sweep file: scenarios, agents, seeds, overrides.")
    ],
    out_text: Annotated[
        str,
        typer.Option(
            "--out", help="Folder for sweep.csv, sweep.json and sweep.png; rerun to resume."
        ),
    ],
    backend: Annotated[str, typer.Option(help="Where runs execute: local or ray.")] = "local",
    workers: Annotated[
        int, typer.Option(help="Runs at once; 0: one per CPU (ray: every CPU of the cluster).")
    ] = 0,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster (host:6379 or ray://host:10001); default: $RAY_ADDRESS."),
    ] = None,
    plot: Annotated[bool, typer.Option(help="Draw sweep.png when the sweep is done.")] = True,
) -> None:
    """Run scenarios × overrides × agents × seeds into one table; a rerun resumes it."""
    with _user_errors():
        from lsched.backends import make_backend
        from lsched.io import out_folder
        from lsched.sweep import load_sweep, plan_runs, plot_sweep, run_sweep

        out = out_folder(out_text)
        assert out is not None
        total = len(plan_runs(load_sweep(spec)))  # a bad file fails before any worker starts
        console = _console()
        show_progress = console.is_terminal and sys.stdout.isatty()
        said = [0]

        def say(done: int, total: int, row: object) -> None:  # without a terminal: ~10 lines
            if done == total or done * 10 // total > said[0] * 10 // total:
                said[0] = done
                typer.echo(f"sweep: {done} of {total} runs finished", err=True)

        try:
            with (
                make_backend(backend, workers, address) as runner,
                _progress(console, show_progress) as progress,
            ):
                report = run_sweep(spec, out, runner, progress=progress or say)
        except KeyboardInterrupt:
            typer.echo(
                f"interrupted: the runs finished so far are kept in {out}; run the same "
                "command to resume",
                err=True,
            )
            raise typer.Exit(INTERRUPTED_EXIT) from None
        if plot and report.rows:
            plot_sweep(out)
        console.print(_sweep_table(report))
        noted = {}  # what tuned chose in each variant: how the winning rule moves with load
        for row in report.rows:
            if row.description:
                where = ", ".join(f"{p}={v}" for p, v in row.overrides.items()) or row.scenario
                noted.setdefault(f"{where}: {row.description}", None)
        for text in noted:
            console.print(f"[dim]{escape(text)}[/dim]")
        console.print(
            f"{report.executed} of {total} runs run now, {total - report.executed} kept from "
            f"before; table in {out}/sweep.csv"
        )
        if report.failed:
            console.print(
                f"[red]{report.failed} run(s) failed[/red] (status and error in sweep.csv); "
                "run the same command again to retry them"
            )
            raise typer.Exit(SWEEP_FAILED_EXIT)


def _sweep_table(report: SweepReport) -> Table:
    from lsched.sweep import summarize_sweep, variant_key, variant_loads

    paths = report.spec.override_paths
    loads = variant_loads(report.spec) if paths else {}
    table = Table(title=f"sweep {escape(report.spec.name)}", title_justify="left")
    for header in ("scenario", *paths, *(["load"] if loads else []), "agent"):
        table.add_column(escape(header), overflow="fold")
    for header in ("mean latency (s)", "vs best", "runs", "failed"):
        table.add_column(header, justify="right")
    for cell in summarize_sweep(report.rows):
        if not cell.runs:
            mean = "—"
        elif cell.runs == 1:
            mean = _seconds(cell.mean)  # one run: no interval to give
        else:
            mean = f"{_seconds(cell.mean)} ± {_seconds(cell.ci95)}"
        if cell.agent == cell.best:
            versus = "[bold]best[/bold]"
        elif math.isnan(cell.vs_best):
            versus = "—"
        else:
            interval = f" ±{cell.vs_best_ci95:.1%}" if cell.vs_best_seeds > 1 else ""
            versus = f"{cell.vs_best - 1:+.1%}{interval}"
        load = loads.get(variant_key(cell.scenario, cell.overrides))
        table.add_row(
            escape(cell.scenario),
            *(escape(str(cell.overrides[p])) for p in paths),
            *([("batch" if load is None else f"{load:.2f}")] if loads else []),
            escape(cell.agent),
            mean,
            versus,
            str(cell.runs),
            f"[red]{cell.failed}[/red]" if cell.failed else "0",
        )
    table.caption = (
        "mean latency ± its 95% interval over seeds; vs best: against the variant's best agent "
        "that is not a learned policy, seed by seed, ± its 95% interval"
        + ("; load: offered load on the first seed, as lsched validate gives it" if loads else "")
    )
    return table


@app.command()
def validate(
    file: Annotated[str, typer.Argument(help="A scenario YAML file (or a bundled name).")],
    settings: SetOption = None,
) -> None:
    """Check a scenario file: schema, templates, agents, and that its workload generates."""
    with _user_errors():
        from lsched.runner import agent_choices, check_agents, seed_queries
        from lsched.scenario import load_scenario

        scenario = _with_settings(load_scenario(file), settings)
        check_agents(scenario, agent_choices(scenario, None))  # listed twice is refused too
        queries = seed_queries(scenario, 0)
        scenario.check_size(queries)
        agents = ", ".join(a.label for a in scenario.agents)
        threads = scenario.cluster.total_threads
        typer.echo(
            f"{file}: ok — scenario {scenario.name!r}, {threads} threads, "
            f"{len(queries)} quer{'y' if len(queries) == 1 else 'ies'} on seed 0"
            f"{_load_note(queries, threads)}, agents: {agents}"
        )


def _load_note(queries: Sequence[QuerySpec], threads: int) -> str:
    """How loaded the cluster will be (the load every heuristic's ranking depends on): the
    offered load ρ = λ·E[work] / threads, the arrival rate λ measured as (n − 1) gaps over the
    first-to-last span; or that it is a batch."""
    from lsched.workloads.generate import offered_load

    load = offered_load(queries, threads)
    if load is None:
        return " (a batch: all arrive at once)" if len(queries) > 1 else ""
    overloaded = "; above 1, queues grow without bound" if load > 1 else ""
    return (
        f" (offered load {load:.2f}: arrival rate × mean single-thread work / threads; "
        f"parallel overheads add to it{overloaded})"
    )


@app.command()
def scenarios(
    env: Annotated[
        bool,
        typer.Option(
            "--env",
            help="Show each scenario's Gymnasium spaces as the env sizes them by default.",
        ),
    ] = False,
) -> None:
    """List the bundled scenarios."""
    with _user_errors():
        from lsched.scenario import bundled_scenarios, load_scenario

        if env:
            _console().print(_env_sizes_table(bundled_scenarios()))
            return
        table = Table(title="bundled scenarios (lsched run NAME)", title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        for name in bundled_scenarios():
            table.add_row(name, load_scenario(name).description)
        _console().print(table)


def _env_sizes_table(names: list[str]) -> Table:
    """Observation sizes of `gym.make(ENV_ID, scenario=NAME)` with no options."""
    from lsched.env import QuerySchedulingEnv
    from lsched.env.sizing import peak_queries

    table = Table(
        title="default env sizes (gym.make(lsched.ENV_ID, scenario=NAME))", title_justify="left"
    )
    for column in (
        "name",
        "peak queries (fair)",
        "window",
        "pipelines",
        "threads",
        "actions",
        "observation values",
    ):
        table.add_column(column, justify="left" if column == "name" else "right")
    for name in names:
        built = QuerySchedulingEnv(name)
        slots, choices = (int(n) for n in built.action_space.nvec)
        table.add_row(
            name,
            str(peak_queries(built.scenario)),
            str(built.max_queries),
            str(built.max_pipelines),
            str(built.total_threads),
            f"{slots} × {choices}",
            f"{built.observation_values:,}",
        )
    return table


@app.command()
def calibrate(
    suite: Annotated[str, typer.Argument(help="Benchmark suite: tpch, ssb or tpcds.")],
    scale_factors: Annotated[
        str, typer.Option(help="Comma-separated scale factors to measure and fit.")
    ] = "0.1,1",
    threads: Annotated[
        str,
        typer.Option(
            help="Comma-separated DuckDB thread counts to time, including 1 (work is profiled "
            "single-threaded; more counts fit the serial fractions better where there are cores)."
        ),
    ] = "1,2",
    out: Annotated[
        Path | None,
        typer.Option(help="Template file to write (default: SUITE-templates.json here)."),
    ] = None,
    queries: Annotated[
        str | None, typer.Option(help="Comma-separated query names (default: all).")
    ] = None,
    repeats: Annotated[
        int, typer.Option(help="Runs per query and setting; the fastest counts.")
    ] = 5,
    parameter_draws: Annotated[
        int, typer.Option(help="Parameter draws timed per template (TPC-H, SSB); 0: none.")
    ] = 6,
    refit: Annotated[
        Path | None,
        typer.Option(
            help="Refit this template file's serial fractions from its stored latencies "
            "(no engine run; written to --out, default in place)."
        ),
    ] = None,
    interference: Annotated[
        Path | None,
        typer.Option(
            help="Measure the co-run slow-down again for this template file (the engine "
            "cost the duckdb preset reads; written to --out, default in place)."
        ),
    ] = None,
    speed_reference: Annotated[
        Path | None,
        typer.Option(
            help="Keep this template file's time scale: scale the new latencies, per scale "
            "factor, by its summed 1-thread latency over the new one (the engine drifts; the "
            "bundled scenarios' load is the file's time scale)."
        ),
    ] = None,
) -> None:
    """Measure query plans on DuckDB and write a template file (needs the calibrate extra)."""
    with _user_errors():
        if refit is not None and interference is not None:
            raise ValueError("--refit and --interference: give one of them")
        if speed_reference is not None and (refit is not None or interference is not None):
            raise ValueError(
                "--speed-reference: scales a new measurement; not with --refit or --interference"
            )
        if refit is not None:
            _refit(suite, refit, out if out is not None else refit)
            return
        if interference is not None:
            _remeasure_interference(suite, interference, out if out is not None else interference)
            return
        try:
            from lsched.workloads.calibrate import run_calibration
        except ModuleNotFoundError as error:
            raise LschedError(
                f"calibration needs {error.name}: pip install 'lsched[calibrate]'"
            ) from None
        factors = [
            _positive_float(v, "--scale-factors")
            for v in _csv_list(scale_factors, "--scale-factors") or []
        ]
        counts = []
        for text in _csv_list(threads, "--threads") or []:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"--threads: {text!r} is not a thread count >= 1")
            counts.append(int(text))
        if repeats < 1:
            raise ValueError(f"--repeats: {repeats}; at least 1 run per query")
        if parameter_draws < 0:
            raise ValueError(f"--parameter-draws: {parameter_draws}; 0 or more")
        target = out if out is not None else Path(f"{suite}-templates.json")
        reference = None
        if speed_reference is not None:
            from lsched.workloads.templates import load_template_file

            reference = load_template_file(speed_reference)
            if reference.suite != suite:
                raise ValueError(
                    f"{speed_reference}: suite: the file holds {reference.suite!r}, not {suite!r}"
                )
            if not set(factors) & set(reference.scale_factors):  # before any measuring
                held = ", ".join(f"{sf:g}" for sf in reference.scale_factors)
                raise ValueError(
                    f"{speed_reference}: scale_factors: shares none with --scale-factors "
                    f"(it holds {held})"
                )
        try:
            result = run_calibration(
                suite,
                factors,
                counts,
                target,
                queries=_csv_list(queries, "--queries"),
                repeats=repeats,
                parameter_draws=parameter_draws,
                progress=lambda line: typer.echo(line, err=True),
                reference=reference,
            )
        except ModuleNotFoundError as error:
            raise LschedError(
                f"calibration needs {error.name}: pip install 'lsched[calibrate]'"
            ) from None
        typer.echo(f"{len(result.templates)} templates of {suite} written to {target}")


def _refit(suite: str, path: Path, target: Path) -> None:
    """`lsched calibrate SUITE --refit FILE`: today's scalability fit on FILE's measurements."""
    from lsched.workloads.calibrate import refit_local_fractions
    from lsched.workloads.templates import load_template_file, write_template_file

    template_set = load_template_file(path)
    if template_set.suite != suite:
        raise ValueError(f"{path}: suite: the file holds {template_set.suite!r}, not {suite!r}")
    refitted, uniform = refit_local_fractions(template_set)
    write_template_file(refitted, target)
    spread = ", ".join(
        f"{n} at SF {'/'.join(f'{sf:g}' for sf in sfs)}" for n, sfs in uniform.items()
    )
    typer.echo(
        f"{len(refitted.templates)} templates of {suite} refitted to {target}"
        f" (uniform shape: {spread or 'none'})"
    )


def _remeasure_interference(suite: str, path: Path, target: Path) -> None:
    """`lsched calibrate SUITE --interference FILE`: the co-run slow-down measured again."""
    from lsched.workloads.templates import load_template_file, write_template_file

    template_set = load_template_file(path)
    if template_set.suite != suite:
        raise ValueError(f"{path}: suite: the file holds {template_set.suite!r}, not {suite!r}")
    try:
        from lsched.workloads.calibrate import remeasure_interference

        measured = remeasure_interference(template_set)
    except ModuleNotFoundError as error:
        raise LschedError(
            f"calibration needs {error.name}: pip install 'lsched[calibrate]'"
        ) from None
    write_template_file(measured, target)
    typer.echo(
        f"co-run interference of {suite} measured: "
        f"{measured.engine_costs['interference']:+.1%} per other query (was "
        f"{template_set.engine_costs.get('interference', 0.0):+.1%}), "
        f"written to {target}"
    )


def _positive_float(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{option}: {text!r} must be > 0")
    return value


if __name__ == "__main__":  # pragma: no cover
    app()
