"""Trace replay: Redset and generic traces (CSV and Parquet) replay with their arrival gaps,
their measured cost as work, and a stable template per fingerprint."""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lsched.workloads.templates import PipelineTemplate, QueryTemplate, load_library
from lsched.workloads.trace import (
    ReplayOptions,
    TraceError,
    TraceRecord,
    check_template_names,
    read_trace,
    record_work_s,
    replay_trace,
)
from sim.model import validate_query

START = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)
# (seconds after START, fingerprint, duration ms, MB scanned, joins, scans, aggs, type, cached)
REDSET_ROWS = [
    (0.0, "fp-a", 1200, 50.0, 2, 3, 1, "select", False),
    (0.5, "fp-b", 300, 5.0, 0, 1, 1, "insert", False),
    (2.25, "fp-a", 1500, 55.0, 2, 3, 1, "select", False),
    (3.0, "fp-c", 0, 0.0, 0, 1, 0, "select", True),
    (10.0, "fp-d", 40_000, 9000.0, 5, 6, 2, "copy", False),
    (11.0, "fp-b", 250, 4.0, 0, 1, 1, "delete", False),
]


def _redset_columns() -> dict[str, list]:
    return {
        "instance_id": [7] * len(REDSET_ROWS),
        "user_id": [1, 2, 1, 3, 2, 2],
        "arrival_timestamp": [START + timedelta(seconds=r[0]) for r in REDSET_ROWS],
        "execution_duration_ms": [r[2] for r in REDSET_ROWS],
        "feature_fingerprint": [r[1] for r in REDSET_ROWS],
        "was_cached": [r[8] for r in REDSET_ROWS],
        "query_type": [r[7] for r in REDSET_ROWS],
        "mbytes_scanned": [r[3] for r in REDSET_ROWS],
        "num_joins": [r[4] for r in REDSET_ROWS],
        "num_scans": [r[5] for r in REDSET_ROWS],
        "num_aggregations": [r[6] for r in REDSET_ROWS],
    }


def _write_csv(path: Path, columns: dict[str, list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow(
                [v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row]
            )
    return path


def _write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    arrays = {
        name: pa.array([v.replace(tzinfo=None) for v in values], type=pa.timestamp("us"))
        if name == "arrival_timestamp"
        else pa.array(values)
        for name, values in columns.items()
    }
    pq.write_table(pa.table(arrays), path)
    return path


def _chain(name: str, operators: list[str], work: float, scans: int) -> QueryTemplate:
    pipelines = tuple(
        PipelineTemplate(
            index=i,
            parents=(i - 1,) if i else (),
            operator=op,
            work_s_sf1=work / len(operators),
            work_exponent=1.0,
            tasks_sf1=20.0,
            memory_gb_sf1=0.1,
            table_scans=scans if i == 0 else 0,
        )
        for i, op in enumerate(operators)
    )
    return QueryTemplate(name=name, suite="toy", pipelines=pipelines)


LIBRARY = {
    t.name: t
    for t in (
        _chain("toy-scan", ["aggregate", "result"], 1.0, 1),
        _chain("toy-scan2", ["aggregate", "result"], 2.0, 1),
        _chain("toy-join2", ["hash_build", "hash_build", "aggregate", "result"], 4.0, 3),
        _chain("toy-join5", ["hash_build"] * 5 + ["aggregate", "aggregate", "result"], 8.0, 6),
    )
}


@pytest.fixture(params=["csv", "parquet"])
def redset_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "csv":
        return _write_csv(tmp_path / "redset.csv", _redset_columns())
    return _write_parquet(tmp_path / "redset.parquet", _redset_columns())


def test_redset_trace_reads_all_columns(redset_file: Path) -> None:
    records = read_trace(redset_file)
    assert len(records) == len(REDSET_ROWS)
    first = records[0]
    assert first.arrival_s == pytest.approx(START.timestamp())
    assert first.fingerprint == "fp-a" and first.query_type == "select"
    assert first.duration_s == pytest.approx(1.2) and first.mbytes_scanned == 50.0
    assert (first.num_joins, first.num_scans, first.num_aggregations) == (2, 3, 1)
    assert first.user_id == "1" and first.was_cached is False
    assert records[3].was_cached is True


def test_instance_filter_and_first_arrivals(redset_file: Path) -> None:
    assert len(read_trace(redset_file, instance_id=7)) == len(REDSET_ROWS)
    with pytest.raises(TraceError, match="no records"):
        read_trace(redset_file, instance_id="8")
    first = read_trace(redset_file, max_records=2)
    assert [r.fingerprint for r in first] == ["fp-a", "fp-b"]


def test_replay_keeps_arrival_gaps_and_matches_work(redset_file: Path) -> None:
    records = read_trace(redset_file)
    queries = replay_trace(
        records, LIBRARY, np.random.default_rng(0), estimate_error_sigma=0.3, threads=4
    )
    kept = [r for r in REDSET_ROWS if not r[8]]  # the cached record ran nothing
    assert len(queries) == len(kept)
    assert [q.arrival_s for q in queries] == pytest.approx([r[0] for r in kept])
    assert [q.work_s for q in queries] == pytest.approx([r[2] / 1000 * 4 for r in kept])
    assert [q.query_id for q in queries] == list(range(len(kept)))
    for query in queries:
        validate_query(query)


def test_fingerprints_map_to_one_template_by_shape(redset_file: Path) -> None:
    queries = replay_trace(
        read_trace(redset_file), LIBRARY, np.random.default_rng(0), estimate_error_sigma=0.0
    )
    by_fingerprint: dict[str, set[str]] = {}
    kept = [r for r in REDSET_ROWS if not r[8]]
    for record, query in zip(kept, queries, strict=True):
        by_fingerprint.setdefault(record[1], set()).add(query.template)
    assert by_fingerprint["fp-a"] == {"toy-join2"}  # 2 joins, 3 scans, 1 aggregation: exact
    assert by_fingerprint["fp-d"] == {"toy-join5"}
    assert len(by_fingerprint["fp-b"]) == 1
    assert by_fingerprint["fp-b"] <= {"toy-scan", "toy-scan2"}  # a tie, broken per fingerprint


def test_query_type_sets_the_class(redset_file: Path) -> None:
    queries = replay_trace(
        read_trace(redset_file), LIBRARY, np.random.default_rng(0), estimate_error_sigma=0.0
    )
    assert [q.query_class for q in queries] == ["adhoc", "etl", "adhoc", "etl", "etl"]


def test_time_scale_and_determinism(tmp_path: Path) -> None:
    records = read_trace(_write_csv(tmp_path / "r.csv", _redset_columns()))
    fast = replay_trace(
        records, LIBRARY, np.random.default_rng(5), estimate_error_sigma=0.5, time_scale=0.5
    )
    assert [q.arrival_s for q in fast] == pytest.approx([0.0, 0.25, 1.125, 5.0, 5.5])
    again = replay_trace(
        records, LIBRARY, np.random.default_rng(5), estimate_error_sigma=0.5, time_scale=0.5
    )
    assert fast == again
    estimates = [p.est_work_s / p.work_s for q in fast for p in q.pipelines]
    assert len(set(np.round(estimates, 9))) > 1  # errors are drawn per pipeline


def test_generic_trace_with_template_names(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "generic.csv",
        {
            "arrival_s": [100.0, 100.5, 103.0],
            "template": ["tpch-q1", "tpch-q6", "tpch-q1"],
            "duration_s": [2.0, 0.5, 4.0],
            "query_class": ["dashboard", "", ""],
        },
    )
    library = load_library()
    queries = replay_trace(
        read_trace(path), library, np.random.default_rng(1), estimate_error_sigma=0.2, threads=2
    )
    assert [q.template for q in queries] == ["tpch-q1", "tpch-q6", "tpch-q1"]
    assert [q.arrival_s for q in queries] == pytest.approx([0.0, 0.5, 3.0])
    assert [q.work_s for q in queries] == pytest.approx([4.0, 1.0, 8.0])
    assert [q.query_class for q in queries] == ["dashboard", "adhoc", "adhoc"]
    # Bigger records run at bigger scale factors: more tasks, not just longer ones.
    assert queries[2].scale_factor > queries[0].scale_factor > 1.0
    assert queries[2].num_tasks > queries[0].num_tasks


def test_records_come_sorted_by_arrival(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "unsorted.csv",
        {
            "arrival_timestamp": ["2024-03-01T00:00:05+00:00", "1709251200", "2024-03-01 00:00:02"],
            "template": ["c", "a", "b"],
            "duration_s": [1, 1, 1],
        },
    )
    records = read_trace(path)
    assert [r.fingerprint for r in records] == ["a", "b", "c"]
    assert [r.arrival_s - records[0].arrival_s for r in records] == [0.0, 2.0, 5.0]


def test_bytes_scanned_when_there_is_no_duration(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "bytes.csv",
        {"arrival_s": [0, 1], "fingerprint": ["x", "y"], "mbytes_scanned": [1000, 20]},
    )
    queries = replay_trace(
        read_trace(path), LIBRARY, np.random.default_rng(0), estimate_error_sigma=0.0,
        work_per_mb_s=0.002,
    )  # fmt: skip
    assert [q.work_s for q in queries] == pytest.approx([2.0, 0.04])
    options = ReplayOptions(min_work_s=0.1)
    assert record_work_s(TraceRecord(0.0, "z", mbytes_scanned=1.0), options) == 0.1
    assert record_work_s(TraceRecord(0.0, "z"), options) is None


def test_huge_record_keeps_its_work_with_bounded_tasks() -> None:
    record = TraceRecord(0.0, "toy-scan", duration_s=3600.0)
    options = ReplayOptions(threads=8, max_scale_factor=10.0)
    (query,) = replay_trace(
        [record], LIBRARY, np.random.default_rng(0), estimate_error_sigma=0.0, options=options
    )
    assert query.work_s == pytest.approx(3600 * 8)
    assert query.scale_factor == 10.0
    assert query.num_tasks == 2 * 20 * 10


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    columns = _redset_columns()
    del columns["arrival_timestamp"]
    path = _write_csv(tmp_path / "noarrival.csv", columns)
    with pytest.raises(TraceError, match=r"noarrival\.csv: column arrival_timestamp or arrival_s"):
        read_trace(path)
    columns = _redset_columns()
    del columns["execution_duration_ms"], columns["mbytes_scanned"]
    path = _write_csv(tmp_path / "nocost.csv", columns)
    with pytest.raises(TraceError, match=r"nocost\.csv: column execution_duration_ms.*missing"):
        read_trace(path)
    columns = _redset_columns()
    del columns["feature_fingerprint"]
    path = _write_parquet(tmp_path / "nofp.parquet", columns)
    with pytest.raises(TraceError, match=r"nofp\.parquet: column feature_fingerprint"):
        read_trace(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("arrival_s,template,duration_s,duration_s\n0,a,1,2\n",
         "header: column duration_s appears more than once"),
        ("arrival_s,template,duration_s\n0,a,1\n\n1,b,2,9\n",
         "row 4: 4 fields, but the header names 3"),
        ("Arrival_S,Template,duration_s\n0,a,1\n",
         "column arrival_timestamp or arrival_s: missing (the header has: Arrival_S, Template, "
         "duration_s); names are case-sensitive: Arrival_S → arrival_s, Template → template"),
        ("arrival_s;template;duration_s\n0;a;1\n",
         "column arrival_timestamp or arrival_s: missing (the header has: "
         "arrival_s;template;duration_s); columns are separated by commas"),
    ],
)  # fmt: skip
def test_a_malformed_csv_is_refused_not_half_read(text: str, problem: str, tmp_path: Path) -> None:
    """A column named twice or a row longer than the header was read silently (one of the
    two columns kept, the extra field dropped); a wrong header says what it holds."""
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_records_are_numbered_by_their_line_and_unnamed_columns_are_ignored(
    tmp_path: Path,
) -> None:
    """A spreadsheet's trailing commas (unnamed columns, empty fields) are no error, and a
    record's row is the line it starts on: after a blank line, and after a quoted field that
    spans two lines, so `origin` points at the log's own line."""
    path = tmp_path / "sheet.csv"
    path.write_text(
        'arrival_s,template,duration_s,note,,\n0,a,1,,,\n\n1,b,2,"two\nlines",,\n2,a,3,,,\n'
    )
    records = read_trace(path)
    assert [(r.row, r.fingerprint, r.duration_s) for r in records] == [
        (2, "a", 1.0), (4, "b", 2.0), (6, "a", 3.0)
    ]  # fmt: skip


def test_parquet_rows_keep_their_number_in_the_file_through_filter_and_cut(
    tmp_path: Path,
) -> None:
    columns = {
        "arrival_s": [3.0, 1.0, 2.0, 0.5],
        "template": ["a", "b", "c", "d"],
        "duration_s": [1.0, 1.0, 1.0, 1.0],
        "instance_id": [1, 2, 1, 1],
    }
    path = _write_parquet(tmp_path / "log.parquet", columns)
    kept = read_trace(path, instance_id=1, max_records=2)
    assert [(r.fingerprint, r.row) for r in kept] == [("d", 4), ("c", 3)]


def test_a_spreadsheets_csv_an_empty_file_and_a_folder(tmp_path: Path) -> None:
    """Excel writes CSVs with a byte-order mark, which hid the first column's name; an empty
    file and a folder say what they are."""
    plain = "arrival_s,template,scale_factor\r\n0,tpch-q1,1\r\n2,tpch-q6,1\r\n"
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + plain.encode())
    assert [r.arrival_s for r in read_trace(excel)] == [0.0, 2.0]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TraceError, match=r"empty\.csv: empty file"):
        read_trace(empty)
    with pytest.raises(TraceError, match="a folder, not a trace file"):
        read_trace(tmp_path)


def test_bad_values_name_row_and_column(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "bad.csv",
        {"arrival_s": [0, "soon"], "template": ["a", "b"], "duration_s": [1, 2]},
    )
    with pytest.raises(TraceError, match=r"bad\.csv: row 3: column arrival_s: not a timestamp"):
        read_trace(path)
    path = _write_csv(
        tmp_path / "neg.csv", {"arrival_s": [0], "template": ["a"], "duration_s": [-1]}
    )
    with pytest.raises(TraceError, match=r"row 2: column duration_s: negative"):
        read_trace(path)
    with pytest.raises(TraceError, match="unknown trace format"):
        read_trace(_write_csv(tmp_path / "trace.tsv", {"arrival_s": [0]}))


def test_parquet_without_pyarrow_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(TraceError, match=r"t\.parquet: reading Parquet needs pyarrow"):
        read_trace(path)


def test_invalid_options_and_empty_inputs() -> None:
    with pytest.raises(TraceError, match="threads"):
        ReplayOptions(threads=0)
    with pytest.raises(TraceError, match="time_scale"):
        replay_trace(
            [TraceRecord(0.0, "a", 1.0)], LIBRARY, np.random.default_rng(0),
            estimate_error_sigma=0.0, time_scale=-1.0,
        )  # fmt: skip
    with pytest.raises(TraceError, match="no templates"):
        replay_trace(
            [TraceRecord(0.0, "a", 1.0)], {}, np.random.default_rng(0), estimate_error_sigma=0
        )
    cached = TraceRecord(0.0, "a", 1.0, was_cached=True)
    with pytest.raises(TraceError, match="none left"):
        replay_trace([cached], LIBRARY, np.random.default_rng(0), estimate_error_sigma=0.0)


# --- replay by template ---------------------------------------------------------------------


def _write(kind: str, path: Path, columns: dict[str, list]) -> Path:
    return (_write_csv if kind == "csv" else _write_parquet)(path.with_suffix(f".{kind}"), columns)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_replay_by_template_runs_each_named_template_exactly(kind: str, tmp_path: Path) -> None:
    # File order: q1 sf 1, then q6 sf 10 and q1 sf 1 arriving together (a tie).
    path = _write(
        kind,
        tmp_path / "named",
        {
            "arrival_s": [100.0, 101.5, 101.5],
            "template": ["tpch-q1", "tpch-q6", "tpch-q1"],
            "scale_factor": [1.0, 10.0, 1.0],
            "query_class": ["dashboard", "", ""],
        },
    )
    records = read_trace(path)
    assert all(r.by_template for r in records)
    first_row = 2 if kind == "csv" else 1  # a CSV's line numbers; Parquet counts rows from 1
    assert [r.source for r in records] == [f"{path}: row {first_row + i}" for i in range(3)]
    library = load_library()
    # Scale-factor bounds and the cost knobs are for cost-mapped records; they change nothing.
    options = ReplayOptions(max_scale_factor=5.0, threads=3, work_per_mb_s=1.0)
    queries = replay_trace(
        records, library, np.random.default_rng(7), estimate_error_sigma=0.3, options=options
    )
    assert [(q.template, q.scale_factor) for q in queries] == [
        ("tpch-q1", 1.0), ("tpch-q6", 10.0), ("tpch-q1", 1.0)
    ]  # fmt: skip
    assert [q.arrival_s for q in queries] == [0.0, 1.5, 1.5]
    assert [q.query_class for q in queries] == ["dashboard", "adhoc", "adhoc"]
    for query in queries:  # the calibrated work, pipeline by pipeline, with no multiplier
        template = library[query.template]
        sf = query.scale_factor
        assert [p.work_s for p in query.pipelines] == [
            p.work_s_sf1 * sf**p.work_exponent for p in template.pipelines
        ]
        assert query.work_s == pytest.approx(template.work_s(sf))
        validate_query(query)
    # ... and the same queries, estimate errors included, as instantiating them in file order.
    rng = np.random.default_rng(7)
    expected = tuple(
        library[name].instantiate(
            query_id=i, arrival_s=arrival, scale_factor=sf, query_class=cls,
            estimate_error_sigma=0.3, rng=rng,
        )
        for i, (name, arrival, sf, cls) in enumerate(
            [("tpch-q1", 0.0, 1.0, "dashboard"), ("tpch-q6", 1.5, 10.0, "adhoc"),
             ("tpch-q1", 1.5, 1.0, "adhoc")]
        )
    )  # fmt: skip
    # each carries its row and name in the log, so results join back to it
    assert [q.origin for q in queries] == [
        f"row {first_row + i}: {name}" for i, name in enumerate(["tpch-q1", "tpch-q6", "tpch-q1"])
    ]
    assert queries == tuple(
        replace(q, origin=r.origin) for q, r in zip(expected, queries, strict=True)
    )


def test_arrival_ties_keep_the_file_order(tmp_path: Path) -> None:
    # Unsorted, with runs of ties: sorting must move the late rows and keep each run in order.
    arrivals = [5.0, 1.0, 5.0, 1.0, 3.0, 1.0, 5.0, 3.0]
    names = [f"tpch-q{len(arrivals) - i}" for i in range(len(arrivals))]  # not sorted by name
    columns = {"arrival_s": arrivals, "template": names, "scale_factor": [1.0] * len(arrivals)}
    in_order = sorted(zip(arrivals, names, strict=True), key=lambda pair: pair[0])
    for kind in ("csv", "parquet"):
        path = _write(kind, tmp_path / "ties", columns)
        assert [r.fingerprint for r in read_trace(path)] == [n for _, n in in_order]
        # Parquet's first-N cut sorts in Arrow; that sort must be stable too.
        cut = read_trace(path, max_records=5)
        assert [r.fingerprint for r in cut] == [n for _, n in in_order[:5]]
    # replay_trace sorts what it is given, just as stably.
    shuffled = [TraceRecord(a, n, scale_factor=1.0) for a, n in zip(arrivals, names, strict=True)]
    queries = replay_trace(
        shuffled, load_library(), np.random.default_rng(0), estimate_error_sigma=0.0
    )
    assert [q.template for q in queries] == [n for _, n in in_order]


def test_unknown_template_names_file_row_column_and_closest_name(tmp_path: Path) -> None:
    library = load_library()

    def error_for(name: str) -> str:
        path = _write_csv(
            tmp_path / "log.csv",
            {"arrival_s": [0, 1], "template": ["tpch-q1", name], "scale_factor": [1, 1]},
        )
        with pytest.raises(TraceError) as caught:
            replay_trace(
                read_trace(path), library, np.random.default_rng(0), estimate_error_sigma=0
            )
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: row 3: column template: unknown template {name!r}; ")
        return message.split("; ", 1)[1]

    assert error_for("tpch-q1x") == "did you mean 'tpch-q1'?"
    assert error_for("TPCH-Q6") == "did you mean 'tpch-q6'?"  # a case slip still finds it
    assert error_for("zzzz") == f"no similar name among the library's {len(library)} templates"
    # Records built in code have no file: the error names their position instead.
    records = [
        TraceRecord(0.0, "tpch-q1", scale_factor=1.0),
        TraceRecord(1.0, "q6", scale_factor=1),
    ]
    with pytest.raises(TraceError, match=r"^replay: records\[1\]: column template: unknown .*'q6'"):
        check_template_names(records, library)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0", "must be > 0, got '0'"), ("-2.5", "must be > 0, got '-2.5'"),
     ("inf", "not finite: 'inf'"), ("nan", "not finite: 'nan'"), ("", "empty"),
     ("big", "not a number: 'big'")],
)  # fmt: skip
def test_bad_scale_factor_names_file_row_and_column(
    value: str, problem: str, tmp_path: Path
) -> None:
    path = _write_csv(
        tmp_path / "sf.csv",
        {"arrival_s": [0, 1], "template": ["tpch-q1", "tpch-q6"], "scale_factor": [1, value]},
    )
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert str(caught.value) == f"{path}: row 3: column scale_factor: {problem}"


def test_a_cost_column_still_maps_by_shape_and_cost(tmp_path: Path) -> None:
    # scale_factor is ignored when the trace says what each record cost.
    path = _write_csv(
        tmp_path / "costed.csv",
        {
            "arrival_s": [0.0, 1.0, 2.0],
            "template": ["tpch-q1", "not-a-template", "tpch-q6"],
            "duration_s": [2.0, 1.0, 0.5],
            "scale_factor": [0, "junk", 1],  # not read: no error
        },
    )
    records = read_trace(path)
    assert not any(r.by_template for r in records)
    assert all(r.scale_factor is None for r in records)
    queries = replay_trace(
        records, load_library(), np.random.default_rng(0), estimate_error_sigma=0.0, threads=2
    )
    assert [q.work_s for q in queries] == pytest.approx([4.0, 2.0, 1.0])
    assert queries[0].template == "tpch-q1" and queries[2].template == "tpch-q6"
    assert queries[1].template in load_library()  # an unknown name maps by shape, as before
    assert queries[0].scale_factor > 1.0


def test_replay_by_template_needs_the_template_column(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "fp.csv", {"arrival_s": [0], "fingerprint": ["x"], "scale_factor": [1]}
    )
    with pytest.raises(TraceError, match=r"fp\.csv: column template: missing \(a trace with"):
        read_trace(path)


def test_a_log_is_read_as_it_streams_keeping_only_what_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first N arrivals are kept in a bounded heap while the file is read (a 6-million-row
    CSV ran out of memory before the cut); without a cut, a log over MAX_TRACE_RECORDS is
    refused naming the knob, not read until memory runs out."""
    import lsched.workloads.trace as trace

    arrivals = [float((7 * i) % 23) for i in range(40)]  # unsorted, with ties
    names = [f"tpch-q{1 + i % 22}" for i in range(40)]
    path = _write("csv", tmp_path / "log", {"arrival_s": arrivals, "template": names,
                                             "scale_factor": [1.0] * 40})  # fmt: skip
    whole = read_trace(path)
    for cut in (1, 7, 39, 40, 100):
        assert read_trace(path, max_records=cut) == whole[:cut]
    monkeypatch.setattr(trace, "MAX_TRACE_RECORDS", 39)
    with pytest.raises(TraceError, match=r"more than 39 records .* set the trace's max_records"):
        read_trace(path)
    assert len(read_trace(path, max_records=39)) == 39


def test_the_first_arrivals_cost_the_memory_of_those_kept(tmp_path: Path) -> None:
    """Reading with max_records keeps a bounded heap: its peak memory is a small fraction of
    reading the whole log (the reader built every row first before)."""
    import tracemalloc

    n = 20_000
    rows = "".join(f"{(7 * i) % n},tpch-q{1 + i % 22},1\n" for i in range(n))
    path = tmp_path / "log.csv"
    path.write_text("arrival_s,template,scale_factor\n" + rows)

    def peak(**options: int) -> int:
        tracemalloc.start()
        read_trace(path, **options)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    assert peak(max_records=10) < 0.1 * peak()


def test_a_bad_row_leaves_no_file_open(tmp_path: Path) -> None:
    """The rows stream from the file: an error mid-way must close it, not keep it open for as
    long as the error is referenced."""
    import os

    path = tmp_path / "bad.csv"
    path.write_text("arrival_s,template,scale_factor\n1,tpch-q1,1\nx,tpch-q2,1\n3,tpch-q3,1\n")
    with pytest.raises(TraceError, match="row 3") as raised:
        read_trace(path)
    assert raised.value is not None

    def open_paths() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        return found

    if Path("/proc/self/fd").is_dir():
        assert str(path) not in open_paths()
