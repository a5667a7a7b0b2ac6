"""Parameter substitution: every TPC-H and SSB template draws other constants, the SQL still runs
on DuckDB (TPC-H SF 0.01 and SSB built from it), a seed fixes the draw, values stay within the
specification's ranges, and the value lists match what DuckDB's dbgen generates. The DuckDB
checks skip without duckdb."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from lsched.workloads.calibrate import SSB_QUERIES, SSB_SCHEMA_SQL, _load_extension
from lsched.workloads.params import (
    COLORS,
    CONTAINER_SYLLABLES_1,
    CONTAINER_SYLLABLES_2,
    NATIONS,
    REGIONS,
    RULES,
    SEGMENTS,
    SHIP_MODES,
    SUITES_WITH_PARAMETERS,
    TYPE_SYLLABLES_1,
    TYPE_SYLLABLES_2,
    TYPE_SYLLABLES_3,
    ParameterError,
    draw_sql,
    ssb_city,
)

pytestmark = pytest.mark.xdist_group("duckdb")

needs_duckdb = pytest.mark.skipif(
    importlib.util.find_spec("duckdb") is None
    or importlib.util.find_spec("duckdb_extension_tpch") is None,
    reason="duckdb and duckdb-extension-tpch not installed (pip install 'lsched[calibrate]')",
)

SCALE_FACTOR = 0.01
SEEDS = (0, 1, 2, 3)
TPCH = [f"tpch-q{n}" for n in range(1, 23)]
SSB = [f"ssb-q{n}" for n in SSB_QUERIES]
SSB_BASE = {f"ssb-q{n}": sql for n, sql in SSB_QUERIES.items()}


def _connect() -> Any:
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    _load_extension(con, "tpch")
    con.execute(f"CALL dbgen(sf={SCALE_FACTOR})")
    return con


@pytest.fixture(scope="module")
def tpch() -> Iterator[Any]:
    con = _connect()
    yield con
    con.close()


@pytest.fixture(scope="module")
def ssb() -> Iterator[Any]:
    con = _connect()
    for statement in SSB_SCHEMA_SQL:
        con.execute(statement)
    yield con
    con.close()


@pytest.fixture(scope="module")
def tpch_base(tpch: Any) -> dict[str, str]:
    rows = tpch.execute("SELECT query_nr, query FROM tpch_queries()").fetchall()
    return {f"tpch-q{n}": sql for n, sql in rows}


def _draw(template: str, base: str, seed: int) -> str:
    return draw_sql(template, base, np.random.default_rng(seed), SCALE_FACTOR)


def _dates(sql: str) -> list[dt.date]:
    return [dt.date.fromisoformat(d) for d in re.findall(r"'(\d{4}-\d\d-\d\d)'", sql)]


def test_rules_cover_every_template_of_both_suites() -> None:
    assert SUITES_WITH_PARAMETERS == ("tpch", "ssb")
    assert set(RULES) == set(TPCH) | set(SSB)


@needs_duckdb
@pytest.mark.parametrize("template", TPCH)
def test_tpch_draws_differ_and_run(template: str, tpch: Any, tpch_base: dict[str, str]) -> None:
    base = tpch_base[template]
    drawn = [_draw(template, base, seed) for seed in SEEDS]
    assert any(sql != base for sql in drawn)
    for sql in drawn:
        tpch.execute(sql).fetchall()


@needs_duckdb
@pytest.mark.parametrize("template", SSB)
def test_ssb_draws_differ_and_run(template: str, ssb: Any) -> None:
    base = SSB_BASE[template]
    drawn = [_draw(template, base, seed) for seed in SEEDS]
    assert any(sql != base for sql in drawn)
    for sql in drawn:
        ssb.execute(sql).fetchall()


@needs_duckdb
def test_same_seed_same_sql_other_seeds_other_sql(tpch_base: dict[str, str]) -> None:
    for template, base in [*tpch_base.items(), *SSB_BASE.items()]:
        assert _draw(template, base, 7) == _draw(template, base, 7)
        assert len({_draw(template, base, seed) for seed in range(8)}) > 1, template


@needs_duckdb
def test_tpch_values_stay_within_the_specification(tpch_base: dict[str, str]) -> None:
    for seed in range(40):
        q1 = _draw("tpch-q1", tpch_base["tpch-q1"], seed)
        assert [dt.date(1998, 8, 3) <= d <= dt.date(1998, 10, 2) for d in _dates(q1)] == [True]

        q3 = _draw("tpch-q3", tpch_base["tpch-q3"], seed)
        day, again = _dates(q3)
        assert day == again and dt.date(1995, 3, 1) <= day <= dt.date(1995, 3, 31)
        assert re.search(r"c_mktsegment = '(\w+)'", q3)[1] in SEGMENTS

        q4 = _draw("tpch-q4", tpch_base["tpch-q4"], seed)
        start, end = _dates(q4)
        assert start.day == 1 and dt.date(1993, 1, 1) <= start <= dt.date(1997, 10, 1)
        assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == 3

        q6 = _draw("tpch-q6", tpch_base["tpch-q6"], seed)
        start, end = _dates(q6)
        assert start.year in range(1993, 1998) and (start.month, start.day) == (1, 1)
        assert end == start.replace(year=start.year + 1)
        low, high = map(float, re.search(r"BETWEEN (\S+)\s+AND (\S+)", q6).groups())
        assert 0.02 <= (low + high) / 2 <= 0.09 and high - low == pytest.approx(0.02)
        assert int(re.search(r"l_quantity < (\d+)", q6)[1]) in (24, 25)

        q7 = _draw("tpch-q7", tpch_base["tpch-q7"], seed)
        first, second = re.search(
            r"n1.n_name = '([A-Z ]+)'\s+AND n2.n_name = '([A-Z ]+)'", q7
        ).groups()
        assert first != second

        q8 = _draw("tpch-q8", tpch_base["tpch-q8"], seed)
        nation = re.search(r"WHEN nation = '([A-Z ]+)'", q8)[1]
        region = re.search(r"r_name = '([A-Z ]+)'", q8)[1]
        assert next(n.region for n in NATIONS if n.name == nation) == region

        q16 = _draw("tpch-q16", tpch_base["tpch-q16"], seed)
        sizes = [int(s) for s in re.search(r"p_size IN \(([\d, ]+)\)", q16)[1].split(",")]
        assert len(set(sizes)) == 8 and all(1 <= s <= 50 for s in sizes)
        assert re.search(r"p_brand <> 'Brand#[1-5][1-5]'", q16)

        q18 = _draw("tpch-q18", tpch_base["tpch-q18"], seed)
        assert 312 <= int(re.search(r"sum\(l_quantity\) > (\d+)", q18)[1]) <= 315

        q19 = _draw("tpch-q19", tpch_base["tpch-q19"], seed)
        lows = [int(q) for q in re.findall(r"l_quantity >= (\d+)", q19)]
        bounds = [(1, 10), (10, 20), (20, 30)]
        assert all(a <= lo <= b for lo, (a, b) in zip(lows, bounds, strict=True))

        q22 = _draw("tpch-q22", tpch_base["tpch-q22"], seed)
        lists = re.findall(r"IN \(([^)]*)\)", q22)
        codes = [int(c.strip(" '")) for c in lists[0].split(",")]
        assert lists[0] == lists[1] and len(set(codes)) == 7 and all(10 <= c <= 34 for c in codes)


@needs_duckdb
def test_q11_fraction_follows_the_scale_factor(tpch_base: dict[str, str]) -> None:
    base = tpch_base["tpch-q11"]
    rng = np.random.default_rng(0)
    assert "* 0.0100000000" in draw_sql("tpch-q11", base, rng, scale_factor=0.01)
    assert "* 0.0001000000" in draw_sql("tpch-q11", base, rng, scale_factor=1.0)
    assert "* 0.0000010000" in draw_sql("tpch-q11", base, rng, scale_factor=100.0)
    assert "e-" not in draw_sql("tpch-q11", base, rng, scale_factor=3.0)


@needs_duckdb
def test_value_lists_match_what_dbgen_generates(tpch: Any) -> None:
    rows = tpch.execute(
        "SELECT n_name, r_name FROM nation JOIN region ON n_regionkey = r_regionkey"
        " ORDER BY n_nationkey"
    ).fetchall()
    assert [(n.name, n.region) for n in NATIONS] == rows
    assert set(REGIONS) == {r for (r,) in tpch.execute("SELECT r_name FROM region").fetchall()}

    def distinct(sql: str) -> set[str]:
        return {value for (value,) in tpch.execute(sql).fetchall()}

    assert distinct("SELECT DISTINCT c_mktsegment FROM customer") == set(SEGMENTS)
    assert distinct("SELECT DISTINCT l_shipmode FROM lineitem") == set(SHIP_MODES)
    words = distinct("SELECT DISTINCT unnest(string_split(p_name, ' ')) FROM part")
    assert len(COLORS) == 92 and words == set(COLORS)
    types = distinct("SELECT DISTINCT p_type FROM part")
    assert types == {
        f"{a} {b} {c}" for a in TYPE_SYLLABLES_1 for b in TYPE_SYLLABLES_2 for c in TYPE_SYLLABLES_3
    }
    containers = distinct("SELECT DISTINCT p_container FROM part")
    assert containers == {f"{a} {b}" for a in CONTAINER_SYLLABLES_1 for b in CONTAINER_SYLLABLES_2}


@needs_duckdb
def test_ssb_values_keep_their_selectivity_class(ssb: Any) -> None:
    for seed in range(20):
        q22 = _draw("ssb-q2.2", SSB_BASE["ssb-q2.2"], seed)
        low, high = re.search(r"p_brand1 BETWEEN '(\S+)' AND '(\S+)'", q22).groups()
        # Compared as text, the range holds exactly 8 of the category's 40 brands (SF 0.01 has
        # too few parts to hold every brand, so the domain is spelled out here).
        category = low[: len("MFGR#") + 2]
        assert high.startswith(category)
        domain = [f"{category}{b}" for b in range(1, 41)]
        assert sum(low <= brand <= high for brand in domain) == 8, (low, high)

        q33 = _draw("ssb-q3.3", SSB_BASE["ssb-q3.3"], seed)
        cities = re.findall(r"c_city = '([^']+)'", q33)
        assert len(set(cities)) == 2 and re.findall(r"s_city = '([^']+)'", q33) == cities
        known = ssb.execute(
            "SELECT count(DISTINCT c_city) FROM customer WHERE c_city IN (?, ?)", cities
        )
        assert known.fetchone() == (2,)

        q11 = _draw("ssb-q1.1", SSB_BASE["ssb-q1.1"], seed)
        year = int(re.search(r"d_year = (\d+)", q11)[1])
        low_d, high_d = map(int, re.search(r"lo_discount BETWEEN (\d+) AND (\d+)", q11).groups())
        assert 1992 <= year <= 1997 and high_d - low_d == 2 and low_d >= 0 and high_d <= 10

        q12 = _draw("ssb-q1.2", SSB_BASE["ssb-q1.2"], seed)
        low_q, high_q = map(int, re.search(r"lo_quantity BETWEEN (\d+) AND (\d+)", q12).groups())
        assert high_q - low_q == 9 and low_q >= 1 and high_q <= 50

        q43 = _draw("ssb-q4.3", SSB_BASE["ssb-q4.3"], seed)
        region = re.search(r"c_region = '([A-Z ]+)'", q43)[1]
        nation = re.search(r"s_nation = '([A-Z ]+)'", q43)[1]
        assert next(n.region for n in NATIONS if n.name == nation) == region


def test_ssb_city_pads_the_nation_to_nine_characters() -> None:
    assert ssb_city("UNITED KINGDOM", 1) == "UNITED KI1"
    assert ssb_city("CHINA", 0) == "CHINA    0"


def test_unknown_template_raises_naming_it() -> None:
    rng = np.random.default_rng(0)
    for name in ("tpcds-q1", "tpch-q23", "ssb-q5.1"):
        with pytest.raises(ParameterError, match=re.escape(name)):
            draw_sql(name, "SELECT 1", rng)
    assert issubclass(ParameterError, ValueError)


def test_a_changed_base_text_fails_loudly() -> None:
    rng = np.random.default_rng(0)
    base = SSB_BASE["ssb-q1.1"]
    with pytest.raises(ParameterError, match=r"ssb-q1\.1: expected the default literal"):
        draw_sql("ssb-q1.1", base.replace("d_year = 1993", "d_year = 1994"), rng)
    with pytest.raises(ParameterError, match="'UNITED KI1'"):
        draw_sql("ssb-q3.3", SSB_BASE["ssb-q3.3"].replace("c_city = 'UNITED KI1'", "TRUE"), rng)
    with pytest.raises(ParameterError, match="'1998-09-02'"):
        draw_sql("tpch-q1", "SELECT 1 WHERE DATE '1998-09-03' > DATE '1998-01-01'", rng)
    with pytest.raises(ParameterError, match="scale_factor"):
        draw_sql("ssb-q1.1", base, rng, scale_factor=0.0)


def test_reindented_base_text_still_matches() -> None:
    base = SSB_BASE["ssb-q1.1"].replace(
        "lo_discount BETWEEN 1 AND 3", "lo_discount BETWEEN 1\n  AND 3"
    )
    assert "BETWEEN 1\n" not in draw_sql("ssb-q1.1", base, np.random.default_rng(0))
