"""Trace replay: real query logs (Amazon Redset, or a simple CSV) become simulated queries.

A trace gives, per query, when it arrived, what it looked like (a fingerprint, and in Redset
the plan's join / scan / aggregation counts) and how costly it was (execution time, or bytes
scanned). Replay keeps the arrival process exactly (gaps relative to the first record, times a
`time_scale`) and borrows the plan structure from the measured templates: each record runs as
the template nearest in shape, scaled so that its total work matches what the record cost.

Replay by template: a trace with a `scale_factor` column and no cost column (no execution time,
no bytes) is a log of known queries, e.g. a benchmark driver's, so each record runs as exactly
the template its `template` column names, at that scale factor and the template's calibrated
work (`QueryTemplate.instantiate`, no multiplier and no scale-factor bounds): nothing is
inferred, so a name the library lacks is an error rather than a nearest match. A trace that has
a cost column keeps mapping by shape and cost even if it also has `scale_factor`.

Where the numbers come from:
- Redset's schema (github.com/amazon-science/redset, VLDB 2024 "Why TPC is not enough"):
  `arrival_timestamp`, `execution_duration_ms`, `mbytes_scanned`, `num_joins`, `num_scans`,
  `num_aggregations`, `query_type`, `feature_fingerprint`, `user_id`, `was_cached`, ...
- The parallelism assumption (ReplayOptions.threads = 8): a query's execution time was spent
  with one simulated node's worth of threads busy (ClusterConfig's default threads_per_node),
  so its work is duration × 8 thread-seconds. Redshift runs every query on all slices of a
  cluster; 8 is a mid-size cluster's slice count, and the knob is there to change it.
- The bytes knob (ReplayOptions.work_per_mb_s = 1 ms per MB): over the 22 TPC-H queries at
  SF 1 on DuckDB 1.5.5 (2 threads), whole-query work per MB of table-scan output was 0.9 ms
  (median query 1.8 ms; the scans alone 0.3 ms per MB), measured with the profiler the
  calibration uses. Redset's MB are compressed storage bytes, so this is an order of magnitude,
  not a conversion; prefer execution times when the trace has them.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import heapq
import math
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lsched.workloads.templates import (
    QueryTemplate,
    TemplateError,
    natural_key,
    select_templates,
)
from sim.model import QuerySpec


class TraceError(ValueError):
    """A trace file or replay setting that cannot be used; names the file, column and problem."""


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One query of a trace, in the trace's own terms (before mapping to a template)."""

    arrival_s: float
    """Arrival on the trace's clock (epoch seconds for timestamps); replay keeps only the gaps."""
    fingerprint: str
    """Query-likeness: Redset's feature_fingerprint, or a generic trace's template name."""
    duration_s: float | None = None
    mbytes_scanned: float | None = None
    num_joins: int | None = None
    num_scans: int | None = None
    num_aggregations: int | None = None
    query_type: str | None = None
    query_class: str | None = None
    """A class given directly by the trace (generic column `query_class`); wins over query_type."""
    user_id: str | None = None
    was_cached: bool | None = None
    scale_factor: float | None = None
    """Set when the trace replays by template (see the module docstring); ignored by a record
    that has a cost (duration_s or mbytes_scanned)."""
    source: str | None = field(default=None, compare=False)
    """Where the record was read (`file: row N`), so a replay error can point at the line;
    provenance, not content, so it takes no part in equality."""
    row: int | None = field(default=None, compare=False)
    """Its place in the file: the CSV line it starts on, or the Parquet row (from 1)."""

    @property
    def by_template(self) -> bool:
        """Replays as the template named by `fingerprint` at `scale_factor`, not by cost."""
        has_cost = self.duration_s is not None or self.mbytes_scanned is not None
        return self.scale_factor is not None and not has_cost


_ARRIVAL = ("arrival_timestamp", "arrival_s")
_FINGERPRINT = ("feature_fingerprint", "template", "fingerprint", "query_fingerprint")
_DURATION_TO_S = {"execution_duration_ms": 1e-3, "duration_s": 1.0, "duration_ms": 1e-3}
_BYTES = ("mbytes_scanned",)
_TEMPLATE = "template"
_SCALE_FACTOR = "scale_factor"
_OPTIONAL_INT = ("num_joins", "num_scans", "num_aggregations")
_OPTIONAL_TEXT = ("query_type", "query_class", "user_id")
_OPTIONAL_BOOL = ("was_cached",)


def _first_present(columns: Sequence[str], choices: Sequence[str]) -> str | None:
    return next((c for c in choices if c in columns), None)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which of the known columns a file has."""

    arrival: str
    fingerprint: str
    duration: str | None
    mbytes: str | None
    optional: tuple[str, ...]
    scale_factor: str | None = None
    """Set only when the file replays by template (a scale factor and no cost column)."""

    @property
    def columns(self) -> list[str]:
        wanted = [
            self.arrival,
            self.fingerprint,
            self.duration,
            self.mbytes,
            self.scale_factor,
            *self.optional,
        ]
        return [c for c in wanted if c is not None]


def _layout(columns: Sequence[str], source: str) -> _Layout:
    arrival = _first_present(columns, _ARRIVAL)
    if arrival is None:
        raise TraceError(
            f"{source}: column {' or '.join(_ARRIVAL)}: missing{_found_columns(columns)}"
        )
    fingerprint = _first_present(columns, _FINGERPRINT)
    if fingerprint is None:
        raise TraceError(
            f"{source}: column {' or '.join(_FINGERPRINT)}: missing{_found_columns(columns)}"
        )
    duration = _first_present(columns, tuple(_DURATION_TO_S))
    mbytes = _first_present(columns, _BYTES)
    optional = tuple(c for c in (*_OPTIONAL_INT, *_OPTIONAL_TEXT, *_OPTIONAL_BOOL) if c in columns)
    if duration is not None or mbytes is not None:
        return _Layout(arrival, fingerprint, duration, mbytes, optional)
    if _SCALE_FACTOR not in columns:
        names = " or ".join((*_DURATION_TO_S, *_BYTES, _SCALE_FACTOR))
        raise TraceError(
            f"{source}: column {names}: missing (need an execution time or bytes, or a scale"
            " factor to replay each record as its named template)"
        )
    if _TEMPLATE not in columns:
        # A fingerprint is not a template name; replaying one "exactly" would always fail.
        raise TraceError(
            f"{source}: column {_TEMPLATE}: missing (a trace with {_SCALE_FACTOR} and no cost"
            " column replays by template name)"
        )
    return _Layout(arrival, _TEMPLATE, None, None, optional, scale_factor=_SCALE_FACTOR)


def _found_columns(columns: Sequence[str]) -> str:
    """What the header holds instead, with the likely slip: another delimiter, or a case."""
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
    found = f" (the header has: {shown})" if columns else " (the header is empty)"
    if len(columns) == 1 and any(mark in columns[0] for mark in ";\t|"):
        return f"{found}; columns are separated by commas"
    known = {c.lower(): c for c in (*_ARRIVAL, *_FINGERPRINT, *_DURATION_TO_S, _SCALE_FACTOR)}
    cased = [f"{c} → {known[c.lower()]}" for c in columns if c.lower() in known and c not in known]
    if cased:
        return f"{found}; names are case-sensitive: {', '.join(cased)}"
    return found


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise TraceError(f"{where}: not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TraceError(f"{where}: not a number: {value!r}") from exc
    if not math.isfinite(number):
        raise TraceError(f"{where}: not finite: {value!r}")
    return number


def _to_epoch_s(value: Any, where: str) -> float:
    """Epoch seconds from a number, a datetime or an ISO-8601 string (naive means UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _to_float(value, where)
    else:
        text = str(value).strip()
        try:
            return _to_float(text, where)
        except TraceError:
            pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise TraceError(f"{where}: not a timestamp or epoch seconds: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y"):
        return True
    if text in ("0", "false", "f", "no", "n"):
        return False
    raise TraceError(f"{where}: not a boolean: {value!r}")


def _record(row: Mapping[str, Any], layout: _Layout, where: str, number: int) -> TraceRecord:
    def at(column: str) -> str:
        return f"{where}: column {column}"

    if _is_missing(row[layout.arrival]):
        raise TraceError(f"{at(layout.arrival)}: empty")
    if _is_missing(row[layout.fingerprint]):
        raise TraceError(f"{at(layout.fingerprint)}: empty")
    fields: dict[str, Any] = {
        "arrival_s": _to_epoch_s(row[layout.arrival], at(layout.arrival)),
        "fingerprint": str(row[layout.fingerprint]).strip(),
        "source": where,
        "row": number,
    }
    if layout.scale_factor is not None:
        # Required on every row: with no cost column there is nothing else to size the query by.
        if _is_missing(row[layout.scale_factor]):
            raise TraceError(f"{at(layout.scale_factor)}: empty")
        scale_factor = _to_float(row[layout.scale_factor], at(layout.scale_factor))
        if scale_factor <= 0:
            raise TraceError(
                f"{at(layout.scale_factor)}: must be > 0, got {row[layout.scale_factor]!r}"
            )
        fields["scale_factor"] = scale_factor
    if layout.duration is not None and not _is_missing(row[layout.duration]):
        duration = _to_float(row[layout.duration], at(layout.duration))
        if duration < 0:
            raise TraceError(f"{at(layout.duration)}: negative duration {duration:g}")
        fields["duration_s"] = duration * _DURATION_TO_S[layout.duration]
    if layout.mbytes is not None and not _is_missing(row[layout.mbytes]):
        mbytes = _to_float(row[layout.mbytes], at(layout.mbytes))
        if mbytes < 0:
            raise TraceError(f"{at(layout.mbytes)}: negative {mbytes:g}")
        fields["mbytes_scanned"] = mbytes
    for column in layout.optional:
        value = row[column]
        if _is_missing(value):
            continue
        if column in _OPTIONAL_INT:
            count = _to_float(value, at(column))
            if count < 0 or count != int(count):
                raise TraceError(f"{at(column)}: not a non-negative integer: {value!r}")
            fields[column] = int(count)
        elif column in _OPTIONAL_BOOL:
            fields[column] = _to_bool(value, at(column))
        else:
            fields[column] = str(value).strip().lower()
    return TraceRecord(**fields)


def _read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """The header's named columns and each record with the line it starts on, read as they
    are consumed (a log is not held whole in memory). A column named twice, or a record with a
    non-empty field beyond the header, is an error (a dict reader would keep one of the two,
    or drop the extra); unnamed columns (a spreadsheet's trailing commas) are ignored."""
    with path.open(newline="", encoding="utf-8-sig") as handle:  # Excel's CSVs start with a BOM
        header = [c.strip() for c in next(csv.reader(handle), [])]
    named = [c for c in header if c]
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        raise TraceError(f"{path}: header: column {twice[0]} appears more than once")

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            if [c.strip() for c in next(reader, [])] != header:
                raise TraceError(f"{path}: header: the file changed while it was read")
            line = reader.line_num  # the line the next record starts on, less one
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(v.strip() for v in values):  # a blank line, as a dict reader skips
                    continue
                if any(v.strip() for v in values[len(header) :]):
                    raise TraceError(
                        f"{path}: row {start}: {len(values)} fields, but the header names "
                        f"{len(header)}"
                    )
                padded = [*values, *[None] * (len(header) - len(values))]  # a short row: empty
                yield start, {c: v for c, v in zip(header, padded[: len(header)], strict=True) if c}

    return named, rows()


MAX_TRACE_RECORDS = 1_000_000
"""Most records a log replays without `max_records` (held in memory; a budget's max_queries
caps a run far below it by default). A longer log with `max_records` keeps only that many
earliest arrivals while it reads: a 6-million-row CSV ran out of memory before."""


def _earliest(
    records: Iterable[TraceRecord], max_records: int | None, path: Path
) -> list[TraceRecord]:
    """The records by arrival (stable: ties keep the file's order), the first `max_records`
    kept in a bounded heap as they are read."""
    if max_records is None:
        kept = []
        for record in records:
            kept.append(record)
            if len(kept) > MAX_TRACE_RECORDS:
                raise TraceError(
                    f"{path}: more than {MAX_TRACE_RECORDS:,} records "
                    "(lsched.workloads.trace.MAX_TRACE_RECORDS); set the trace's max_records "
                    "to replay the first arrivals"
                )
        kept.sort(key=lambda r: r.arrival_s)
        return kept
    heap: list[tuple[float, int, TraceRecord]] = []  # the latest kept on top
    for order, record in enumerate(records):
        item = (-record.arrival_s, -order, record)
        if len(heap) < max_records:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)
    return [record for _, _, record in sorted(heap, key=lambda i: i[:2], reverse=True)]


def _read_parquet(
    path: Path, max_records: int | None, instance_id: str | None
) -> tuple[list[str], Any]:
    """Only the known columns are read; filtering and the first-N cut happen in Arrow, so a
    full Redset file (hundreds of millions of rows) never becomes Python objects. Each row
    comes with its number in the file (from 1), as a CSV's with its line."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise TraceError(
            f"{path}: reading Parquet needs pyarrow; pip install 'lsched[parquet]'"
        ) from exc
    try:
        columns = list(pq.read_schema(path).names)
        layout = _layout(columns, str(path))
        wanted = layout.columns
        if instance_id is not None:
            if "instance_id" not in columns:
                raise TraceError(f"{path}: column instance_id: missing (needed to filter)")
            wanted = [*wanted, "instance_id"]
        table = pq.read_table(path, columns=wanted)
        table = table.append_column(_ROW, pa.array(np.arange(1, table.num_rows + 1)))
        if instance_id is not None:
            ids = pc.cast(table.column("instance_id"), "string")
            table = table.filter(pc.equal(ids, str(instance_id)))
        if max_records is not None:
            table = table.sort_by(layout.arrival).slice(0, max_records)
    except TraceError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise TraceError(f"{path}: cannot read Parquet: {exc}") from exc
    data = {name: table.column(name).to_pylist() for name in table.column_names}
    numbers = data.pop(_ROW)
    rows = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    return columns, list(zip(numbers, rows, strict=True))


_ROW = "__lsched_row__"
"""The column `_read_parquet` numbers the file's rows in before it filters and cuts them."""


def read_trace(
    path: Path, *, max_records: int | None = None, instance_id: str | int | None = None
) -> list[TraceRecord]:
    """Read a CSV or Parquet trace, sorted by arrival (stable).

    Recognised columns (Redset's names or generic ones): arrival_timestamp (timestamp or epoch
    seconds) | arrival_s; feature_fingerprint | template | fingerprint; execution_duration_ms |
    duration_s | duration_ms and/or mbytes_scanned, or else template and scale_factor (replay
    by template, see the module docstring); optional num_joins, num_scans, num_aggregations,
    query_type, query_class, user_id, was_cached. Other columns are ignored. Records with equal
    arrivals keep the file's order. `instance_id` keeps one Redset cluster; `max_records` keeps
    the first N arrivals.
    """
    path = Path(path)
    if path.is_dir():
        raise TraceError(f"{path}: a folder, not a trace file (.csv or .parquet)")
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    if path.stat().st_size == 0:
        raise TraceError(f"{path}: empty file: a trace needs a header row and records")
    if max_records is not None and max_records < 1:
        raise TraceError(f"{path}: max_records: must be >= 1, got {max_records}")
    wanted_instance = None if instance_id is None else str(instance_id)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        columns, rows = _read_parquet(path, max_records, wanted_instance)
    elif suffix in (".csv", ".txt"):
        try:
            columns, rows = _read_csv(path)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise TraceError(f"{path}: cannot read CSV: {exc}") from exc
    else:
        raise TraceError(f"{path}: unknown trace format {suffix!r}; use .csv or .parquet")
    layout = _layout(columns, str(path))
    # A record's number is the line it starts on in a CSV, its row (from 1) in a Parquet file.
    if wanted_instance is not None and suffix not in (".parquet", ".pq"):
        if "instance_id" not in columns:
            raise TraceError(f"{path}: column instance_id: missing (needed to filter)")
        rows = ((n, r) for n, r in rows if str(r["instance_id"]).strip() == wanted_instance)
    stream = iter(rows)
    try:
        records = _earliest(
            (_record(row, layout, f"{path}: row {n}", n) for n, row in stream), max_records, path
        )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(f"{path}: cannot read CSV: {exc}") from exc
    finally:  # a CSV's rows hold the file open until closed: on an error too
        if isinstance(stream, Generator):
            stream.close()
    if not records:
        raise TraceError(f"{path}: no records")
    return records


# --- replay ---------------------------------------------------------------------------------

DEFAULT_QUERY_CLASSES = (
    ("select", "adhoc"),
    ("insert", "etl"),
    ("copy", "etl"),
    ("delete", "etl"),
    ("update", "etl"),
    ("merge", "etl"),
    ("ctas", "etl"),
    ("unload", "etl"),
    ("analyze", "etl"),
    ("vacuum", "etl"),
)
"""Redset query_type -> query class: reads are ad-hoc, writes and maintenance are batch ETL."""


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How a trace becomes simulated queries; every knob is documented in the module docstring."""

    time_scale: float = 1.0
    """Multiplies arrival gaps: 0.5 replays the trace twice as fast."""
    threads: int = 8
    """Parallelism assumption: a record's work is execution time × this many thread-seconds."""
    work_per_mb_s: float = 1e-3
    """Thread-seconds per MB scanned, used when a record has no execution time."""
    min_work_s: float = 1e-3
    """Floor on a record's work (cached or instantaneous queries still cost a little)."""
    min_scale_factor: float = 0.01
    max_scale_factor: float = 100.0
    """Bounds on the scale factor a record is instantiated at; beyond them the work still
    matches the record, through a multiplier, but tasks and memory stop growing (which keeps
    a one-hour query from becoming millions of simulated tasks)."""
    query_classes: tuple[tuple[str, str], ...] = DEFAULT_QUERY_CLASSES
    default_class: str = "adhoc"
    """Class for a record without a query_type, or with one not in `query_classes`."""
    skip_cached: bool = True
    """Drop records answered from the result cache (Redset's was_cached): they ran nothing."""
    templates: tuple[str, ...] = ()
    """Patterns ("tpch-*") of the templates a record may map onto by shape; empty: all. A
    log of one engine's dashboards maps onto that suite, not onto the nearest of 130."""

    def __post_init__(self) -> None:
        checks = {
            "time_scale": self.time_scale > 0,
            "threads": self.threads >= 1,
            "work_per_mb_s": self.work_per_mb_s > 0,
            "min_work_s": self.min_work_s > 0,
            "min_scale_factor": 0 < self.min_scale_factor <= self.max_scale_factor,
            "max_scale_factor": math.isfinite(self.max_scale_factor),
            "default_class": bool(self.default_class),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise TraceError(f"replay options: invalid setting(s): {', '.join(bad)}")


def _stable_hash(text: str) -> int:
    """Process-independent (unlike hash()): the same fingerprint picks the same template."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


class _Matcher:
    """Maps records to templates: by name, else by nearest shape; fixed per fingerprint."""

    def __init__(self, library: Mapping[str, QueryTemplate]) -> None:
        self.templates = sorted(library.values(), key=lambda t: natural_key(t.name))
        self.by_name = {t.name: t for t in self.templates}
        self.shapes = [t.shape for t in self.templates]
        self.chosen: dict[str, QueryTemplate] = {}

    def template_for(self, record: TraceRecord) -> QueryTemplate:
        if record.fingerprint in self.chosen:
            return self.chosen[record.fingerprint]
        template = self.by_name.get(record.fingerprint) or self.nearest(record)
        self.chosen[record.fingerprint] = template
        return template

    def nearest(self, record: TraceRecord) -> QueryTemplate:
        """Least L1 distance over the counts the record has; ties by a hash of its fingerprint
        (deterministic, and spreads unrelated fingerprints over equally near templates)."""
        distances = []
        for shape in self.shapes:
            distance = 0
            if record.num_joins is not None:
                distance += abs(record.num_joins - shape.joins)
            if record.num_scans is not None:
                distance += abs(record.num_scans - shape.scans)
            if record.num_aggregations is not None:
                distance += abs(record.num_aggregations - shape.aggregations)
            distances.append(distance)
        best = min(distances)
        candidates = [t for t, d in zip(self.templates, distances, strict=True) if d == best]
        return candidates[_stable_hash(record.fingerprint) % len(candidates)]


def mapping_library(
    library: Mapping[str, QueryTemplate], patterns: Sequence[str]
) -> Mapping[str, QueryTemplate]:
    """The templates records map onto by shape: those the patterns match (all without any);
    a pattern that matches nothing is a TraceError."""
    if not patterns:
        return library
    try:
        return {t.name: t for t in select_templates(library, patterns)}
    except TemplateError as error:
        raise TraceError(f"{error.field}: {error.problem}") from None


def _unknown_template(name: str, where: str, library: Mapping[str, QueryTemplate]) -> TraceError:
    """The one-line error for a name the library lacks, with the closest known name if any
    (compared case-insensitively, so `TPCH-Q1` still points at `tpch-q1`)."""
    by_folded = {known.lower(): known for known in sorted(library, key=natural_key)}
    close = difflib.get_close_matches(name.lower(), list(by_folded), n=1)
    hint = (
        f"did you mean {by_folded[close[0]]!r}?"
        if close
        else f"no similar name among the library's {len(library)} templates"
    )
    return TraceError(f"{where}: column {_TEMPLATE}: unknown template {name!r}; {hint}")


def check_template_names(
    records: Sequence[TraceRecord], library: Mapping[str, QueryTemplate]
) -> None:
    """Raise TraceError for the first record that replays by template and names a template the
    library lacks; call it once the library is known to fail before any query is drawn."""
    for position, record in enumerate(records):
        if record.by_template and record.fingerprint not in library:
            where = record.source or f"replay: records[{position}]"
            raise _unknown_template(record.fingerprint, where, library)


def _scale_factor_for(template: QueryTemplate, work_s: float, options: ReplayOptions) -> float:
    """The scale factor at which the template's total work is `work_s` (bisection in log sf),
    clamped to the options' bounds."""
    lo, hi = math.log(options.min_scale_factor), math.log(options.max_scale_factor)
    if template.work_s(math.exp(lo)) >= work_s:
        return options.min_scale_factor
    if template.work_s(math.exp(hi)) <= work_s:
        return options.max_scale_factor
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if template.work_s(math.exp(mid)) < work_s:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def record_work_s(record: TraceRecord, options: ReplayOptions) -> float | None:
    """Thread-seconds a record cost: duration × threads, else MB scanned × work_per_mb_s."""
    if record.duration_s is not None:
        work = record.duration_s * options.threads
    elif record.mbytes_scanned is not None:
        work = record.mbytes_scanned * options.work_per_mb_s
    else:
        return None
    return max(work, options.min_work_s)


def replay_trace(
    records: Sequence[TraceRecord],
    library: Mapping[str, QueryTemplate],
    rng: np.random.Generator,
    *,
    estimate_error_sigma: float,
    time_scale: float | None = None,
    work_per_mb_s: float | None = None,
    threads: int | None = None,
    options: ReplayOptions | None = None,
) -> tuple[QuerySpec, ...]:
    """Queries that replay `records` on templates from `library`, arrivals relative to the first.

    Each record becomes its nearest template at the scale factor where the template's total work
    equals the record's cost (`record_work_s`), with a multiplier for the rest so the totals
    match exactly; a record with neither duration nor bytes runs its template at scale factor 1.
    A record that replays by template (`TraceRecord.by_template`) runs as the template it names
    at its own scale factor and calibrated work; a name the library lacks is a TraceError.
    Records with equal arrivals keep their order. `time_scale`, `work_per_mb_s` and `threads`
    override the same fields of `options`. Estimates get lognormal(0, estimate_error_sigma)
    errors drawn from `rng`.
    """
    opts = options or ReplayOptions()
    overrides = {"time_scale": time_scale, "work_per_mb_s": work_per_mb_s, "threads": threads}
    opts = replace(opts, **{k: v for k, v in overrides.items() if v is not None})
    if not library:
        raise TraceError("replay: library: no templates to map the trace onto")
    if estimate_error_sigma < 0:
        raise TraceError("replay: estimate_error_sigma: must be >= 0")
    check_template_names(records, library)
    kept = [r for r in records if not (opts.skip_cached and r.was_cached)]
    if not kept:
        raise TraceError(
            "replay: records: none left to replay (all empty, or answered from the result "
            "cache: was_cached)"
        )
    kept.sort(key=lambda r: r.arrival_s)  # stable: ties keep the given order
    classes = dict(opts.query_classes)
    matcher = _Matcher(mapping_library(library, opts.templates))
    start_s = kept[0].arrival_s
    queries = []
    for query_id, record in enumerate(kept):
        if record.by_template and record.scale_factor is not None:  # (by_template implies it)
            template = library[record.fingerprint]
            scale_factor, multiplier = record.scale_factor, 1.0
        else:
            template = matcher.template_for(record)
            work_s = record_work_s(record, opts)
            if work_s is None:
                scale_factor, multiplier = 1.0, 1.0
            else:
                scale_factor = _scale_factor_for(template, work_s, opts)
                multiplier = work_s / template.work_s(scale_factor)
        query_class = record.query_class or classes.get(record.query_type or "", opts.default_class)
        query = template.instantiate(
            query_id=query_id,
            arrival_s=(record.arrival_s - start_s) * opts.time_scale,
            scale_factor=scale_factor,
            query_class=query_class,
            estimate_error_sigma=estimate_error_sigma,
            rng=rng,
            work_multiplier=multiplier,
        )
        where = f"row {record.row}: " if record.row is not None else ""
        queries.append(replace(query, origin=f"{where}{record.fingerprint}"))
    return tuple(queries)
