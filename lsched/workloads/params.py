"""Query parameters drawn per the benchmarks' substitution rules.

A template's instances differ as real ones do only if each instance gets its own constants: one
Q6 reads a year of lineitem with one discount band, the next another year and band. Calibration
measures the defaults; `draw_sql` gives a query instance the parameters the benchmark itself would
have drawn for it.

Where the rules come from:

- TPC-H: the TPC-H Standard Specification, Clause 2.4 ("Substitution Parameters" of each query
  Q1..Q22), as the reference generator qgen implements them, with qgen's dists.dss value lists
  (nations and their regions, market segments, part-type and container syllables, the P_NAME
  colours, ship modes). The base text is DuckDB's own `tpch_queries()`, which carries the
  specification's validation-query defaults (e.g. Q1's '1998-09-02' = 1998-12-01 minus 90 days);
  a draw replaces those default literals.
- SSB: the Star Schema Benchmark (O'Neil, O'Neil, Chen, Revilak, 2009), whose paper gives each of
  the 13 queries with one set of constants and its filter factor. The base text is
  `calibrate.SSB_QUERIES`; a draw picks other constants of the same shape (one year, one month,
  one week, a 3-value discount band, a 10-value quantity band, one category, 8 consecutive
  brands, one brand, one region, one nation, two cities of a nation, a 6-year or 2-year range,
  two manufacturers) so that each query keeps the selectivity class the paper gives it.

Every substitution names the exact literal it replaces and how often it must occur in the base
text; a base text in which a literal is missing (say a DuckDB upgrade reworded a query) raises
`ParameterError` instead of silently running the defaults. All literals of one query are replaced
in a single pass, so a drawn value that happens to equal another default is never replaced twice.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from lsched.errors import LschedError

SUITES_WITH_PARAMETERS = ("tpch", "ssb")

T = TypeVar("T")


class ParameterError(LschedError):
    """No substitution rules for a template, or its base SQL lacks a literal the rules replace."""


@dataclass(frozen=True, slots=True)
class Nation:
    """A TPC-H nation (dists.dss `nations`) with the region it belongs to."""

    name: str
    region: str


# --- qgen's dists.dss value lists -----------------------------------------------------------

REGIONS = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
NATIONS = (
    Nation("ALGERIA", "AFRICA"),
    Nation("ARGENTINA", "AMERICA"),
    Nation("BRAZIL", "AMERICA"),
    Nation("CANADA", "AMERICA"),
    Nation("EGYPT", "MIDDLE EAST"),
    Nation("ETHIOPIA", "AFRICA"),
    Nation("FRANCE", "EUROPE"),
    Nation("GERMANY", "EUROPE"),
    Nation("INDIA", "ASIA"),
    Nation("INDONESIA", "ASIA"),
    Nation("IRAN", "MIDDLE EAST"),
    Nation("IRAQ", "MIDDLE EAST"),
    Nation("JAPAN", "ASIA"),
    Nation("JORDAN", "MIDDLE EAST"),
    Nation("KENYA", "AFRICA"),
    Nation("MOROCCO", "AFRICA"),
    Nation("MOZAMBIQUE", "AFRICA"),
    Nation("PERU", "AMERICA"),
    Nation("CHINA", "ASIA"),
    Nation("ROMANIA", "EUROPE"),
    Nation("SAUDI ARABIA", "MIDDLE EAST"),
    Nation("VIETNAM", "ASIA"),
    Nation("RUSSIA", "EUROPE"),
    Nation("UNITED KINGDOM", "EUROPE"),
    Nation("UNITED STATES", "AMERICA"),
)
"""In N_NATIONKEY order: a customer's phone country code is its nation key + 10 (Clause 4.2.2.9)."""
SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD")
TYPE_SYLLABLES_1 = ("STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO")
TYPE_SYLLABLES_2 = ("ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED")
TYPE_SYLLABLES_3 = ("TIN", "NICKEL", "BRASS", "STEEL", "COPPER")
CONTAINER_SYLLABLES_1 = ("SM", "LG", "MED", "JUMBO", "WRAP")
CONTAINER_SYLLABLES_2 = ("CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM")
COLORS = (
    "almond", "antique", "aquamarine", "azure", "beige", "bisque", "black", "blanched", "blue",
    "blush", "brown", "burlywood", "burnished", "chartreuse", "chiffon", "chocolate", "coral",
    "cornflower", "cornsilk", "cream", "cyan", "dark", "deep", "dim", "dodger", "drab",
    "firebrick", "floral", "forest", "frosted", "gainsboro", "ghost", "goldenrod", "green",
    "grey", "honeydew", "hot", "indian", "ivory", "khaki", "lace", "lavender", "lawn", "lemon",
    "light", "lime", "linen", "magenta", "maroon", "medium", "metallic", "midnight", "mint",
    "misty", "moccasin", "navajo", "navy", "olive", "orange", "orchid", "pale", "papaya",
    "peach", "peru", "pink", "plum", "powder", "puff", "purple", "red", "rose", "rosy", "royal",
    "saddle", "salmon", "sandy", "seashell", "sienna", "sky", "slate", "smoke", "snow",
    "spring", "steel", "tan", "thistle", "tomato", "turquoise", "violet", "wheat", "white",
    "yellow",
)  # fmt: skip
"""The 92 words P_NAME is made of (dists.dss `colors`)."""
SHIP_MODES = ("REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB")
Q13_WORDS_1 = ("special", "pending", "unusual", "express")
Q13_WORDS_2 = ("packages", "requests", "accounts", "deposits")
BRAND_DIGITS = (1, 5)
"""Brand#MN (and SSB's category MFGR#MN): M and N each in [1, 5]."""
COUNTRY_CODES = (10, 34)
"""C_PHONE's country codes: nation key + 10 (Clause 4.2.2.9)."""

# --- TPC-H ranges (Clause 2.4) --------------------------------------------------------------

Q1_END_DATE = dt.date(1998, 12, 1)
Q1_DELTA_DAYS = (60, 120)
Q3_DATE_RANGE = (dt.date(1995, 3, 1), dt.date(1995, 3, 31))
YEARS = (1993, 1997)
"""The years whose January 1 Q5, Q6, Q12, Q14 and Q20 draw."""
Q4_MONTHS = ((1993, 1), (1997, 10))
"""First and last month of Q4's and Q15's DATE (3-month windows that end by 1998-01)."""
Q10_MONTHS = ((1993, 2), (1995, 1))
Q6_DISCOUNT_CENTS = (2, 9)
Q6_QUANTITY = (24, 25)
Q11_FRACTION_AT_SF1 = 0.0001
Q16_SIZES = (1, 50)
Q16_SIZE_COUNT = 8
Q18_QUANTITY = (312, 315)
Q19_QUANTITIES = ((1, 10), (10, 20), (20, 30))
Q22_CODE_COUNT = 7
PART_SIZES = (1, 50)

# --- SSB ranges -----------------------------------------------------------------------------

SSB_YEARS = (1992, 1997)
"""The full years of SSB's lineorder dates (1998 holds only January to August's orders)."""
SSB_WEEKS = (1, 52)
"""d_weeknuminyear's full weeks (week 53 holds one or two days)."""
SSB_DISCOUNT_LOW = (1, 8)
"""Flight 1's discount band is d..d+2 of lo_discount's 0..10, as the paper's 1-3, 4-6, 5-7."""
SSB_DISCOUNT_WIDTH = 2
SSB_QUANTITY_LOW = (1, 41)
"""Q1.2/Q1.3's quantity band is q..q+9 of lo_quantity's 1..50, as the paper's 26-35."""
SSB_QUANTITY_WIDTH = 9
SSB_QUANTITY_BELOW = (24, 25)
"""Q1.1's `lo_quantity < q`: SSB's flight 1 is TPC-H Q6, whose QUANTITY is in [24, 25]."""
SSB_BRANDS_PER_CATEGORY = 40
SSB_BRAND_RUN = 8
"""Q2.2's brand range: 8 consecutive brands of one category, as the paper's MFGR#2221..2228."""
SSB_CITIES_PER_NATION = 10
SSB_CITY_PREFIX = 9
SSB_YEAR_SPAN = 6
"""Q3.1..Q3.3 read 6 of the 7 years, as the paper's 1992..1997."""
SSB_MONTH_ABBREVIATIONS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
SSB_MFGRS = (1, 5)


# --- substitution machinery -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Substitution:
    """Replace `old`, which must occur exactly `count` times in the base SQL, with `new`.

    A space in `old` matches any run of whitespace, so a re-indented base text still matches;
    anything else (a changed default, a reworded predicate) does not.
    """

    old: str
    new: str
    count: int = 1


Rule = Callable[[np.random.Generator, float], Sequence[Substitution]]


def _pattern(old: str) -> str:
    return r"\s+".join(re.escape(word) for word in old.split())


def _apply(template: str, base_sql: str, substitutions: Sequence[Substitution]) -> str:
    """All substitutions in one pass over `base_sql`, each checked against its count."""
    olds = [s.old for s in substitutions]
    if len(set(olds)) != len(olds):
        raise ParameterError(f"{template}: two substitution rules replace the same literal")
    groups = {f"s{i}": s for i, s in enumerate(substitutions)}
    # Longest literal first, so that one that contains another wins where both match.
    order = sorted(groups, key=lambda g: -len(groups[g].old))
    regex = re.compile("|".join(f"(?P<{g}>{_pattern(groups[g].old)})" for g in order))
    found = dict.fromkeys(groups, 0)
    for match in regex.finditer(base_sql):
        found[str(match.lastgroup)] += 1
    for group, substitution in groups.items():
        if found[group] != substitution.count:
            raise ParameterError(
                f"{template}: expected the default literal {substitution.old!r} "
                f"{substitution.count} time(s) in the base SQL, found it {found[group]} time(s); "
                "the base query text changed, so lsched/workloads/params.py must follow it"
            )
    return regex.sub(lambda match: groups[str(match.lastgroup)].new, base_sql)


def _uniform(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """An integer uniform in [low, high], both ends included (the spec's "randomly selected
    within [low .. high]")."""
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def _pick(rng: np.random.Generator, values: Sequence[T]) -> T:
    return values[int(rng.integers(len(values)))]


def _distinct(rng: np.random.Generator, values: Sequence[T], k: int) -> list[T]:
    return [values[int(i)] for i in rng.choice(len(values), size=k, replace=False)]


def _month(rng: np.random.Generator, first: tuple[int, int], last: tuple[int, int]) -> dt.date:
    """The first day of a month uniform between `first` and `last` (year, month), inclusive."""
    start = first[0] * 12 + first[1] - 1
    index = _uniform(rng, (start, last[0] * 12 + last[1] - 1))
    return dt.date(index // 12, index % 12 + 1, 1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, day.day)


def _year_start(rng: np.random.Generator) -> dt.date:
    return dt.date(_uniform(rng, YEARS), 1, 1)


def _date(day: dt.date) -> str:
    return f"'{day.isoformat()}'"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _brand(rng: np.random.Generator) -> str:
    return f"Brand#{_uniform(rng, BRAND_DIGITS)}{_uniform(rng, BRAND_DIGITS)}"


def _type(rng: np.random.Generator) -> str:
    syllables = (TYPE_SYLLABLES_1, TYPE_SYLLABLES_2, TYPE_SYLLABLES_3)
    return " ".join(_pick(rng, s) for s in syllables)


def _nation(rng: np.random.Generator) -> Nation:
    return _pick(rng, NATIONS)


# --- TPC-H rules (Clause 2.4.N.3 of each query N) -------------------------------------------


def _tpch_q1(rng: np.random.Generator, sf: float) -> list[Substitution]:
    delta = _uniform(rng, Q1_DELTA_DAYS)
    return [Substitution("'1998-09-02'", _date(Q1_END_DATE - dt.timedelta(days=delta)))]


def _tpch_q2(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [
        Substitution("p_size = 15", f"p_size = {_uniform(rng, PART_SIZES)}"),
        Substitution("'%BRASS'", _quoted("%" + _pick(rng, TYPE_SYLLABLES_3))),
        Substitution("'EUROPE'", _quoted(_pick(rng, REGIONS)), count=2),
    ]


def _tpch_q3(rng: np.random.Generator, sf: float) -> list[Substitution]:
    first, last = Q3_DATE_RANGE
    day = first + dt.timedelta(days=_uniform(rng, (0, (last - first).days)))
    return [
        Substitution("'BUILDING'", _quoted(_pick(rng, SEGMENTS))),
        Substitution("'1995-03-15'", _date(day), count=2),
    ]


def _three_months(rng: np.random.Generator, first: str, after: str) -> list[Substitution]:
    """Q4 and Q15: [DATE, DATE + 3 months) with DATE the first of a month in Q4_MONTHS."""
    start = _month(rng, *Q4_MONTHS)
    return [
        Substitution(first, _date(start)),
        Substitution(after, _date(_add_months(start, 3))),
    ]


def _tpch_q4(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return _three_months(rng, "'1993-07-01'", "'1993-10-01'")


def _one_year(rng: np.random.Generator) -> list[Substitution]:
    """Q5, Q6, Q12, Q20: [DATE, DATE + 1 year) with DATE January 1 of a year in YEARS."""
    start = _year_start(rng)
    return [
        Substitution("'1994-01-01'", _date(start)),
        Substitution("'1995-01-01'", _date(start.replace(year=start.year + 1))),
    ]


def _tpch_q5(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [Substitution("'ASIA'", _quoted(_pick(rng, REGIONS))), *_one_year(rng)]


def _tpch_q6(rng: np.random.Generator, sf: float) -> list[Substitution]:
    dates = _one_year(rng)
    cents = _uniform(rng, Q6_DISCOUNT_CENTS)
    quantity = _uniform(rng, Q6_QUANTITY)
    return [
        *dates,
        Substitution(
            "l_discount BETWEEN 0.05 AND 0.07",
            f"l_discount BETWEEN {(cents - 1) / 100:.2f} AND {(cents + 1) / 100:.2f}",
        ),
        Substitution("l_quantity < 24", f"l_quantity < {quantity}"),
    ]


def _tpch_q7(rng: np.random.Generator, sf: float) -> list[Substitution]:
    first, second = _distinct(rng, NATIONS, 2)
    return [
        Substitution("'FRANCE'", _quoted(first.name), count=2),
        Substitution("'GERMANY'", _quoted(second.name), count=2),
    ]


def _tpch_q8(rng: np.random.Generator, sf: float) -> list[Substitution]:
    nation = _nation(rng)
    return [
        Substitution("'BRAZIL'", _quoted(nation.name)),
        Substitution("'AMERICA'", _quoted(nation.region)),
        Substitution("'ECONOMY ANODIZED STEEL'", _quoted(_type(rng))),
    ]


def _tpch_q9(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [Substitution("'%green%'", _quoted(f"%{_pick(rng, COLORS)}%"))]


def _tpch_q10(rng: np.random.Generator, sf: float) -> list[Substitution]:
    start = _month(rng, *Q10_MONTHS)
    return [
        Substitution("'1993-10-01'", _date(start)),
        Substitution("'1994-01-01'", _date(_add_months(start, 3))),
    ]


def _fraction(sf: float) -> str:
    """Q11's FRACTION = 0.0001 / SF as a decimal literal (never in exponent notation, and with
    at least the 10 places DuckDB's text has)."""
    text = np.format_float_positional(Q11_FRACTION_AT_SF1 / sf, trim="-")
    places = len(text.partition(".")[2])
    return f"{Q11_FRACTION_AT_SF1 / sf:.{max(places, 10)}f}"


def _tpch_q11(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [
        Substitution("'GERMANY'", _quoted(_nation(rng).name), count=2),
        Substitution("* 0.0001000000", f"* {_fraction(sf)}"),
    ]


def _tpch_q12(rng: np.random.Generator, sf: float) -> list[Substitution]:
    first, second = _distinct(rng, SHIP_MODES, 2)
    return [
        Substitution("('MAIL', 'SHIP')", f"({_quoted(first)}, {_quoted(second)})"),
        *_one_year(rng),
    ]


def _tpch_q13(rng: np.random.Generator, sf: float) -> list[Substitution]:
    words = f"%{_pick(rng, Q13_WORDS_1)}%{_pick(rng, Q13_WORDS_2)}%"
    return [Substitution("'%special%requests%'", _quoted(words))]


def _tpch_q14(rng: np.random.Generator, sf: float) -> list[Substitution]:
    start = dt.date(_uniform(rng, YEARS), _uniform(rng, (1, 12)), 1)
    return [
        Substitution("'1995-09-01'", _date(start)),
        Substitution("'1995-10-01'", _date(_add_months(start, 1))),
    ]


def _tpch_q15(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return _three_months(rng, "'1996-01-01'", "'1996-04-01'")


def _tpch_q16(rng: np.random.Generator, sf: float) -> list[Substitution]:
    brand = _brand(rng)
    prefix = f"{_pick(rng, TYPE_SYLLABLES_1)} {_pick(rng, TYPE_SYLLABLES_2)}"
    sizes = _distinct(rng, range(Q16_SIZES[0], Q16_SIZES[1] + 1), Q16_SIZE_COUNT)
    return [
        Substitution("'Brand#45'", _quoted(brand)),
        Substitution("'MEDIUM POLISHED%'", _quoted(prefix + "%")),
        Substitution(
            "p_size IN (49, 14, 23, 45, 19, 3, 36, 9)",
            f"p_size IN ({', '.join(str(s) for s in sizes)})",
        ),
    ]


def _tpch_q17(rng: np.random.Generator, sf: float) -> list[Substitution]:
    container = f"{_pick(rng, CONTAINER_SYLLABLES_1)} {_pick(rng, CONTAINER_SYLLABLES_2)}"
    return [
        Substitution("'Brand#23'", _quoted(_brand(rng))),
        Substitution("'MED BOX'", _quoted(container)),
    ]


def _tpch_q18(rng: np.random.Generator, sf: float) -> list[Substitution]:
    quantity = _uniform(rng, Q18_QUANTITY)
    return [Substitution("sum(l_quantity) > 300", f"sum(l_quantity) > {quantity}")]


def _tpch_q19(rng: np.random.Generator, sf: float) -> list[Substitution]:
    substitutions = []
    for default_brand, low, bounds in zip(
        ("'Brand#12'", "'Brand#23'", "'Brand#34'"), (1, 10, 20), Q19_QUANTITIES, strict=True
    ):
        quantity = _uniform(rng, bounds)
        substitutions += [
            Substitution(default_brand, _quoted(_brand(rng))),
            Substitution(
                f"l_quantity >= {low} AND l_quantity <= {low} + 10",
                f"l_quantity >= {quantity} AND l_quantity <= {quantity} + 10",
            ),
        ]
    return substitutions


def _tpch_q20(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [
        Substitution("'forest%'", _quoted(_pick(rng, COLORS) + "%")),
        *_one_year(rng),
        Substitution("'CANADA'", _quoted(_nation(rng).name)),
    ]


def _tpch_q21(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [Substitution("'SAUDI ARABIA'", _quoted(_nation(rng).name))]


def _tpch_q22(rng: np.random.Generator, sf: float) -> list[Substitution]:
    codes = _distinct(rng, range(COUNTRY_CODES[0], COUNTRY_CODES[1] + 1), Q22_CODE_COUNT)
    return [
        Substitution(
            "('13', '31', '23', '29', '30', '18', '17')",
            "(" + ", ".join(f"'{c}'" for c in codes) + ")",
            count=2,
        )
    ]


# --- SSB rules ------------------------------------------------------------------------------


def _ssb_discount(rng: np.random.Generator, default: str) -> Substitution:
    low = _uniform(rng, SSB_DISCOUNT_LOW)
    return Substitution(
        f"lo_discount BETWEEN {default}",
        f"lo_discount BETWEEN {low} AND {low + SSB_DISCOUNT_WIDTH}",
    )


def _ssb_quantity_band(rng: np.random.Generator) -> Substitution:
    low = _uniform(rng, SSB_QUANTITY_LOW)
    return Substitution(
        "lo_quantity BETWEEN 26 AND 35",
        f"lo_quantity BETWEEN {low} AND {low + SSB_QUANTITY_WIDTH}",
    )


def _ssb_q1_1(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [
        Substitution("d_year = 1993", f"d_year = {_uniform(rng, SSB_YEARS)}"),
        _ssb_discount(rng, "1 AND 3"),
        Substitution("lo_quantity < 25", f"lo_quantity < {_uniform(rng, SSB_QUANTITY_BELOW)}"),
    ]


def _ssb_q1_2(rng: np.random.Generator, sf: float) -> list[Substitution]:
    month = _month(rng, (SSB_YEARS[0], 1), (SSB_YEARS[1], 12))
    return [
        Substitution(
            "d_yearmonthnum = 199401", f"d_yearmonthnum = {month.year * 100 + month.month}"
        ),
        _ssb_discount(rng, "4 AND 6"),
        _ssb_quantity_band(rng),
    ]


def _ssb_q1_3(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [
        Substitution("d_weeknuminyear = 6", f"d_weeknuminyear = {_uniform(rng, SSB_WEEKS)}"),
        Substitution("d_year = 1994", f"d_year = {_uniform(rng, SSB_YEARS)}"),
        _ssb_discount(rng, "5 AND 7"),
        _ssb_quantity_band(rng),
    ]


def _ssb_category(rng: np.random.Generator) -> str:
    return f"MFGR#{_uniform(rng, BRAND_DIGITS)}{_uniform(rng, BRAND_DIGITS)}"


def _ssb_q2_1(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [
        Substitution("p_category = 'MFGR#12'", f"p_category = {_quoted(_ssb_category(rng))}"),
        Substitution("s_region = 'AMERICA'", f"s_region = {_quoted(_pick(rng, REGIONS))}"),
    ]


def _ssb_q2_2(rng: np.random.Generator, sf: float) -> list[Substitution]:
    # p_brand1 is the category and an unpadded brand number 1..40, compared as text: a run of 8
    # inside one decade (x0..x7, x1..x8, x2..x9 for x in 1..3) is exactly 8 brands, while one
    # that crosses a decade or starts below 10 would also take in a one-digit brand.
    category = _ssb_category(rng)
    decade = _uniform(rng, (1, SSB_BRANDS_PER_CATEGORY // 10 - 1))
    first = 10 * decade + _uniform(rng, (0, 10 - SSB_BRAND_RUN))
    last = first + SSB_BRAND_RUN - 1
    return [
        Substitution(
            "p_brand1 BETWEEN 'MFGR#2221' AND 'MFGR#2228'",
            f"p_brand1 BETWEEN '{category}{first}' AND '{category}{last}'",
        ),
        Substitution("s_region = 'ASIA'", f"s_region = {_quoted(_pick(rng, REGIONS))}"),
    ]


def _ssb_q2_3(rng: np.random.Generator, sf: float) -> list[Substitution]:
    brand = f"{_ssb_category(rng)}{_uniform(rng, (1, SSB_BRANDS_PER_CATEGORY))}"
    return [
        Substitution("p_brand1 = 'MFGR#2239'", f"p_brand1 = {_quoted(brand)}"),
        Substitution("s_region = 'EUROPE'", f"s_region = {_quoted(_pick(rng, REGIONS))}"),
    ]


def _ssb_years(rng: np.random.Generator) -> Substitution:
    first = _uniform(rng, (SSB_YEARS[0], SSB_YEARS[1] + 2 - SSB_YEAR_SPAN))
    return Substitution(
        "d_year >= 1992 AND d_year <= 1997",
        f"d_year >= {first} AND d_year <= {first + SSB_YEAR_SPAN - 1}",
    )


def ssb_city(nation: str, digit: int) -> str:
    """SSB's city name: the nation's first 9 characters, space-padded, and a digit 0..9 (as
    calibrate.SSB_SCHEMA_SQL builds c_city and s_city)."""
    return nation[:SSB_CITY_PREFIX].ljust(SSB_CITY_PREFIX) + str(digit)


def _ssb_q3_1(rng: np.random.Generator, sf: float) -> list[Substitution]:
    region = _quoted(_pick(rng, REGIONS))
    return [
        Substitution("c_region = 'ASIA'", f"c_region = {region}"),
        Substitution("s_region = 'ASIA'", f"s_region = {region}"),
        _ssb_years(rng),
    ]


def _ssb_q3_2(rng: np.random.Generator, sf: float) -> list[Substitution]:
    nation = _quoted(_nation(rng).name)
    return [
        Substitution("c_nation = 'UNITED STATES'", f"c_nation = {nation}"),
        Substitution("s_nation = 'UNITED STATES'", f"s_nation = {nation}"),
        _ssb_years(rng),
    ]


def _ssb_cities(rng: np.random.Generator) -> list[Substitution]:
    """Q3.3/Q3.4: two cities of one nation, for customer and supplier alike."""
    nation = _nation(rng).name
    first, second = _distinct(rng, range(SSB_CITIES_PER_NATION), 2)
    return [
        Substitution("'UNITED KI1'", _quoted(ssb_city(nation, first)), count=2),
        Substitution("'UNITED KI5'", _quoted(ssb_city(nation, second)), count=2),
    ]


def _ssb_q3_3(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [*_ssb_cities(rng), _ssb_years(rng)]


def _ssb_q3_4(rng: np.random.Generator, sf: float) -> list[Substitution]:
    cities = _ssb_cities(rng)
    month = _pick(rng, SSB_MONTH_ABBREVIATIONS)
    return [
        *cities,
        Substitution(
            "d_yearmonth = 'Dec1997'", f"d_yearmonth = '{month}{_uniform(rng, SSB_YEARS)}'"
        ),
    ]


def _ssb_mfgrs(rng: np.random.Generator) -> Substitution:
    first, second = _distinct(rng, range(SSB_MFGRS[0], SSB_MFGRS[1] + 1), 2)
    return Substitution(
        "(p_mfgr = 'MFGR#1' OR p_mfgr = 'MFGR#2')",
        f"(p_mfgr = 'MFGR#{first}' OR p_mfgr = 'MFGR#{second}')",
    )


def _ssb_two_years(rng: np.random.Generator) -> Substitution:
    first = _uniform(rng, SSB_YEARS)
    return Substitution(
        "(d_year = 1997 OR d_year = 1998)", f"(d_year = {first} OR d_year = {first + 1})"
    )


def _ssb_q4_1(rng: np.random.Generator, sf: float) -> list[Substitution]:
    region = _quoted(_pick(rng, REGIONS))
    return [
        Substitution("c_region = 'AMERICA'", f"c_region = {region}"),
        Substitution("s_region = 'AMERICA'", f"s_region = {region}"),
        _ssb_mfgrs(rng),
    ]


def _ssb_q4_2(rng: np.random.Generator, sf: float) -> list[Substitution]:
    return [*_ssb_q4_1(rng, sf), _ssb_two_years(rng)]


def _ssb_q4_3(rng: np.random.Generator, sf: float) -> list[Substitution]:
    nation = _nation(rng)
    return [
        Substitution("c_region = 'AMERICA'", f"c_region = {_quoted(nation.region)}"),
        Substitution("s_nation = 'UNITED STATES'", f"s_nation = {_quoted(nation.name)}"),
        _ssb_two_years(rng),
        Substitution("p_category = 'MFGR#14'", f"p_category = {_quoted(_ssb_category(rng))}"),
    ]


RULES: dict[str, Rule] = {
    "tpch-q1": _tpch_q1,
    "tpch-q2": _tpch_q2,
    "tpch-q3": _tpch_q3,
    "tpch-q4": _tpch_q4,
    "tpch-q5": _tpch_q5,
    "tpch-q6": _tpch_q6,
    "tpch-q7": _tpch_q7,
    "tpch-q8": _tpch_q8,
    "tpch-q9": _tpch_q9,
    "tpch-q10": _tpch_q10,
    "tpch-q11": _tpch_q11,
    "tpch-q12": _tpch_q12,
    "tpch-q13": _tpch_q13,
    "tpch-q14": _tpch_q14,
    "tpch-q15": _tpch_q15,
    "tpch-q16": _tpch_q16,
    "tpch-q17": _tpch_q17,
    "tpch-q18": _tpch_q18,
    "tpch-q19": _tpch_q19,
    "tpch-q20": _tpch_q20,
    "tpch-q21": _tpch_q21,
    "tpch-q22": _tpch_q22,
    "ssb-q1.1": _ssb_q1_1,
    "ssb-q1.2": _ssb_q1_2,
    "ssb-q1.3": _ssb_q1_3,
    "ssb-q2.1": _ssb_q2_1,
    "ssb-q2.2": _ssb_q2_2,
    "ssb-q2.3": _ssb_q2_3,
    "ssb-q3.1": _ssb_q3_1,
    "ssb-q3.2": _ssb_q3_2,
    "ssb-q3.3": _ssb_q3_3,
    "ssb-q3.4": _ssb_q3_4,
    "ssb-q4.1": _ssb_q4_1,
    "ssb-q4.2": _ssb_q4_2,
    "ssb-q4.3": _ssb_q4_3,
}
"""Template name -> the rule that draws its substitutions (one rng stream per call)."""


def draw_sql(
    template: str, base_sql: str, rng: np.random.Generator, scale_factor: float = 1.0
) -> str:
    """`base_sql` (the template's default text) with its parameters drawn from `rng`.

    Deterministic for a given generator state: every draw goes through `rng`. `scale_factor`
    matters only where the rules depend on it (TPC-H Q11's FRACTION = 0.0001 / SF). Raises
    ParameterError for a template without rules, a non-positive scale factor, or a base text
    that lacks a default literal the rules replace.
    """
    rule = RULES.get(template)
    if rule is None:
        suites = ", ".join(SUITES_WITH_PARAMETERS)
        raise ParameterError(
            f"{template}: no parameter substitution rules (rules exist for the {suites} "
            "templates, e.g. 'tpch-q1', 'ssb-q1.1')"
        )
    if not (math.isfinite(scale_factor) and scale_factor > 0):
        raise ParameterError(
            f"{template}: scale_factor: must be a positive number, got {scale_factor!r}"
        )
    return _apply(template, base_sql, rule(rng, float(scale_factor)))
