"""Trace replay: Redset and generic traces (CSV and Parquet) replay with their arrival gaps,
their measured cost as work, and a stable template per fingerprint."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lsched.workloads.templates import PipelineTemplate, QueryTemplate, load_library
from lsched.workloads.trace import (
    ReplayOptions,
    TraceError,
    TraceRecord,
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
