"""What the plots read from a results folder: results.json, the per-run query and task CSVs.

Every plot is drawn from these files alone, never from in-memory state, so `lsched plot DIR`
re-renders exactly what a run produced. A missing or malformed file is a ResultsError naming
it (one line), so an older folder that lacks a file says which one.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from agents.registry import is_learned
from lsched.errors import ResultsError
from lsched.io import (
    METRICS_FILE,
    RESULTS_FILE,
    SWEEP_TABLE_FILE,
    agent_slug,
    queries_file,
    read_csv,
    tasks_file,
)
from lsched.stats import best_baseline

DPI = 110
"""Resolution of every PNG."""


class _PlainLogFormatter(LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as plain numbers (0.3, 2,
    1.5): its own labels are 3×10⁻¹ or 1e−02, unreadable beside millisecond latencies."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def plain_log_axis(axis: Axis) -> None:
    """Label a log-scaled axis in plain numbers: the decades, and between them the ticks
    matplotlib labels on a narrow range (`minor_thresholds`, its default)."""
    axis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


@dataclass(frozen=True, slots=True)
class ResultsFolder:
    """results.json of a folder `lsched run --out` (or `lsched real --out`) wrote."""

    folder: Path
    scenario: str
    seeds: tuple[int, ...]
    agents: tuple[str, ...]
    """Agent labels in the order they ran."""
    lower_bound_mean_latency_s: float
    figures: Mapping[str, Mapping[str, float]]
    """Per agent, the seed-averaged figures of results.json (`mean_latency`, `p95_latency`, ...)."""
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """What agents that can say ran (`tuned`'s chosen rule), by label; empty in older folders."""


@dataclass(frozen=True, slots=True)
class Queries:
    """One run's queries-AGENT-seedK.csv as arrays, one entry per query, in file order."""

    query_id: np.ndarray
    template: np.ndarray
    query_class: np.ndarray
    arrival_s: np.ndarray
    start_s: np.ndarray
    finish_s: np.ndarray
    latency_s: np.ndarray


@dataclass(frozen=True, slots=True)
class Tasks:
    """One run's tasks-AGENT-seedK.csv as arrays, one entry per task execution."""

    query_id: np.ndarray
    node: np.ndarray
    thread: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray


def read_results(folder: str | Path) -> ResultsFolder:
    """Read results.json of a folder `lsched run --out` wrote."""
    path = Path(folder) / RESULTS_FILE
    if path.exists() and not path.is_file():  # /dev/zero would be read until memory ran out
        raise ResultsError(f"{path}: not a regular file (a device, pipe or folder)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        agents = document["agents"]
        results = ResultsFolder(
            folder=Path(folder),
            scenario=str(document["scenario"]),
            seeds=tuple(int(s) for s in document["seeds"]),
            agents=tuple(agents),
            lower_bound_mean_latency_s=float(document["lower_bound"]["mean_latency"]),
            figures={
                str(label): {k: float(v) for k, v in values.items() if _is_number(v)}
                for label, values in agents.items()
            },
            descriptions={str(k): str(v) for k, v in (document.get("descriptions") or {}).items()},
        )
    except FileNotFoundError:
        folder_path = Path(folder)
        if (folder_path / SWEEP_TABLE_FILE).is_file() or (folder_path / METRICS_FILE).is_file():
            kind = "a sweep's" if (folder_path / SWEEP_TABLE_FILE).is_file() else "a training run's"
            raise ResultsError(
                f"{path}: no such file: {folder_path} is {kind} folder, which `lsched plot` "
                "draws; this takes a folder `lsched run --out` wrote"
            ) from None
        raise ResultsError(
            f"{path}: no such file (is this a folder `lsched run --out` wrote?)"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise ResultsError(f"{path}: not a results document ({error})") from None
    if not results.seeds or not results.agents:
        raise ResultsError(f"{path}: not a results document (no seeds or no agents)")
    return results


def read_queries(folder: str | Path, agent: str, seed: int) -> Queries:
    """queries-AGENT-seedK.csv of one run."""
    path = _written(queries_file(folder, agent, seed), agent)
    rows = _rows(path)
    try:
        return Queries(
            query_id=np.array([int(r["query_id"]) for r in rows], dtype=np.int64),
            template=np.array([r["template"] for r in rows], dtype=object),
            query_class=np.array([r["class"] for r in rows], dtype=object),
            arrival_s=_floats(rows, "arrival_s"),
            start_s=_floats(rows, "start_s"),
            finish_s=_floats(rows, "finish_s"),
            latency_s=_floats(rows, "latency_s"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsError(f"{path}: a column is missing or malformed ({error})") from None


def read_tasks(folder: str | Path, agent: str, seed: int) -> Tasks:
    """tasks-AGENT-seedK.csv of one run."""
    path = _written(tasks_file(folder, agent, seed), agent)
    rows = _rows(path)
    try:
        return Tasks(
            query_id=np.array([int(r["query_id"]) for r in rows], dtype=np.int64),
            node=np.array([int(r["node"]) for r in rows], dtype=np.int64),
            thread=np.array([int(r["thread"]) for r in rows], dtype=np.int64),
            start_s=_floats(rows, "start_s"),
            end_s=_floats(rows, "end_s"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsError(f"{path}: a column is missing or malformed ({error})") from None


@dataclass(frozen=True, slots=True)
class Pairs:
    """The queries two agents ran on the same seeds, matched by (seed, query id)."""

    seed: np.ndarray
    template: np.ndarray
    query_class: np.ndarray
    arrival_s: np.ndarray
    baseline_s: np.ndarray
    """Latency of each query under the baseline (agent A)."""
    other_s: np.ndarray
    """Latency of the same query under agent B."""


def pair_queries(folder: str | Path, baseline: str, other: str, seeds: Sequence[int]) -> Pairs:
    """Match every query of `other` with the same query under `baseline`, seed by seed.

    Seed K gives every agent the same queries, so a query id names the same query in both
    files; files that disagree on the set of ids come from different workloads (an error).
    """
    parts = []
    for seed in seeds:
        a = read_queries(folder, baseline, seed)
        b = read_queries(folder, other, seed)
        order_a, order_b = np.argsort(a.query_id, kind="stable"), np.argsort(b.query_id)
        if not np.array_equal(a.query_id[order_a], b.query_id[order_b]):
            raise ResultsError(
                f"{queries_file(folder, other, seed)}: its queries are not those of "
                f"{queries_file(folder, baseline, seed).name} (a different workload)"
            )
        parts.append(
            (
                np.full(len(order_a), seed),
                a.template[order_a],
                a.query_class[order_a],
                a.arrival_s[order_a],
                a.latency_s[order_a],
                b.latency_s[order_b],
            )
        )
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return Pairs(*columns)


def default_comparison(results: ResultsFolder, baseline: str | None = None) -> tuple[str, ...]:
    """(baseline, challenger) the paired plots show by default; () with a single agent.

    The baseline is the best agent by mean latency that is not a learned policy (the
    scenario's best baseline) unless named; the challenger is the first learned agent, or
    else the best of the others.
    """
    if baseline is not None:
        check_agents(results, [baseline], "--baseline")
    if len(results.agents) < 2:
        return ()

    def mean(label: str) -> float:
        return results.figures.get(label, {}).get("mean_latency", float("inf"))

    if baseline is None:
        baseline = best_baseline({a: mean(a) for a in results.agents})
    others = [a for a in results.agents if a != baseline]
    learned = [a for a in others if is_learned(a)]
    return baseline, learned[0] if learned else min(others, key=mean)


def check_agents(results: ResultsFolder, agents: Sequence[str], option: str) -> None:
    """Every name in `agents` is an agent of the folder, else one line naming the option."""
    unknown = [a for a in agents if a not in results.agents]
    if unknown:
        raise ResultsError(
            f"{option}: no agent {unknown[0]!r} in {results.folder / RESULTS_FILE} "
            f"(agents: {', '.join(results.agents)})"
        )


def template_order(names: Sequence[str]) -> list[str]:
    """Distinct names in natural order: tpch-q2 before tpch-q10."""

    def key(name: str) -> list[object]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

    return sorted(set(names), key=key)


def png_bytes(figure: Figure) -> bytes:
    """Render a figure on the Agg canvas (no display needed). A glyph the font lacks (an
    emoji in a scenario's name) is drawn as a box, not warned about once per label on stderr."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _written(path: Path, agent: str) -> Path:
    """`path`, or where a run before 2026-12-08 wrote it: an agent's part of a file name was
    then not capped (lsched.io.MAX_SLUG_CHARS)."""
    if path.exists():
        return path
    legacy = path.with_name(path.name.replace(agent_slug(agent), agent_slug(agent, capped=False)))
    return legacy if legacy.exists() else path


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        return read_csv(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path}: cannot read ({error})") from None


def _floats(rows: Sequence[Mapping[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows], dtype=float)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
