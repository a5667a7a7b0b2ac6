"""Bundled templates load and validate; instantiate scales and perturbs as documented;
broken files are rejected with messages that name the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lsched.workloads.templates import (
    BUNDLED_SUITES,
    OPERATORS,
    PipelineTemplate,
    QueryTemplate,
    TemplateError,
    bundled_template_set,
    load_library,
    load_template_file,
    natural_key,
    select_templates,
    template_set_to_dict,
    write_template_file,
)
from sim.model import validate_query

EXPECTED_NAMES = {
    "tpch": [f"tpch-q{n}" for n in range(1, 23)],
    "ssb": [f"ssb-q{f}.{n}" for f, k in ((1, 3), (2, 3), (3, 4), (4, 3)) for n in range(1, k + 1)],
}


@pytest.mark.parametrize("suite", BUNDLED_SUITES)
def test_bundled_suite_loads_with_provenance(suite: str) -> None:
    template_set = bundled_template_set(suite)
    assert template_set.suite == suite
    assert template_set.engine == "duckdb"
    assert template_set.engine_version
    assert template_set.threads >= 1
    assert len(template_set.scale_factors) >= 2
    names = list(template_set.templates)
    if suite in EXPECTED_NAMES:
        assert names == EXPECTED_NAMES[suite]
    else:
        assert len(names) >= 30
        assert all(name.startswith("tpcds-q") for name in names)
        assert names == sorted(names, key=natural_key)
    for template in template_set.templates.values():
        assert template.suite == suite
        assert len(template.latency_s) == len(template_set.scale_factors)


@pytest.mark.parametrize("suite", BUNDLED_SUITES)
def test_bundled_templates_are_valid_dags_ending_in_result(suite: str) -> None:
    rng = np.random.default_rng(0)
    for name, template in bundled_template_set(suite).templates.items():
        pipelines = template.pipelines
        assert pipelines[-1].operator == "result", name
        assert sum(p.operator == "result" for p in pipelines) == 1, name
        consumed = {parent for p in pipelines for parent in p.parents}
        assert consumed == set(range(len(pipelines) - 1)), name
        assert all(p.operator in OPERATORS for p in pipelines)
        assert template.shape.scans >= 1, name
        for scale_factor in (0.1, 1.0, 10.0):
            query = template.instantiate(0, 0.0, scale_factor, "adhoc", 0.5, rng)
            validate_query(query)


def test_bundled_plans_have_plausible_size() -> None:
    """1 + joins + aggregates + sorts pipelines: TPC-H Q1 is scan→aggregate→sort→result,
    Q6 a single aggregate; the join-heavy queries have the most pipelines."""
    tpch = bundled_template_set("tpch").templates
    assert [p.operator for p in tpch["tpch-q1"].pipelines] == ["aggregate", "sort", "result"]
    assert [p.operator for p in tpch["tpch-q6"].pipelines] == ["aggregate", "result"]
    assert tpch["tpch-q3"].shape.joins == 2
    assert max(len(t.pipelines) for t in tpch.values()) >= 10


def test_bundled_set_is_cached_and_unknown_suite_rejected() -> None:
    assert bundled_template_set("tpch") is bundled_template_set("tpch")
    with pytest.raises(TemplateError, match="unknown suite 'job'"):
        bundled_template_set("job")


def test_library_holds_every_bundled_template() -> None:
    library = load_library()
    total = sum(len(bundled_template_set(s).templates) for s in BUNDLED_SUITES)
    assert len(library) == total
    assert library["ssb-q4.3"].suite == "ssb"


def _tiny_set(name: str = "mine-q1", **pipeline_changes: object) -> dict:
    pipelines = [
        {"parents": [], "operator": "hash_build", "work_s_sf1": 0.5, "work_exponent": 1.0,
         "tasks_sf1": 4.0, "memory_gb_sf1": 0.1, "memory_exponent": 1.0, "table_scans": 1},
        {"parents": [0], "operator": "result", "work_s_sf1": 2.0, "work_exponent": 1.2,
         "tasks_sf1": 40.0, "memory_gb_sf1": 0.0, "memory_exponent": 1.0, "table_scans": 1},
    ]  # fmt: skip
    pipelines[1].update(pipeline_changes)
    return {
        "suite": "mine",
        "engine": "duckdb",
        "engine_version": "1.5.5",
        "scale_factors": [0.1, 1.0],
        "threads": 2,
        "templates": {name: {"pipelines": pipelines}},
    }


def _write(tmp_path: Path, data: dict, name: str = "mine.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_user_file_joins_the_library(tmp_path: Path) -> None:
    library = load_library([_write(tmp_path, _tiny_set())])
    assert library["mine-q1"].work_s_sf1 == pytest.approx(2.5)
    assert "tpch-q1" in library


def test_a_users_template_replaces_the_bundled_one_and_two_of_theirs_clash(
    tmp_path: Path,
) -> None:
    """`lsched calibrate tpch --out mine.json` measures the user's own tpch-q3: listing the
    file runs it in place of the bundled one (it was refused as a duplicate, so the README's
    way to use one's own calibration failed); two of the user's files naming it is an error."""
    path = _write(tmp_path, _tiny_set(name="tpch-q3"))
    library = load_library([path])
    assert library["tpch-q3"].work_s_sf1 == pytest.approx(2.5)
    assert library["tpch-q3"].work_s_sf1 != load_library()["tpch-q3"].work_s_sf1
    again = _write(tmp_path, _tiny_set(name="tpch-q3"), name="again.json")
    with pytest.raises(TemplateError, match=r"again\.json: templates\.tpch-q3: duplicate"):
        load_library([path, again])


def test_select_templates_by_pattern_in_natural_order() -> None:
    library = load_library()
    tpch = select_templates(library, ["tpch-*"])
    assert [t.name for t in tpch] == EXPECTED_NAMES["tpch"]
    chosen = select_templates(library, ["ssb-q1.?", "tpch-q6", "ssb-q1.1"])
    assert [t.name for t in chosen] == ["ssb-q1.1", "ssb-q1.2", "ssb-q1.3", "tpch-q6"]
    with pytest.raises(TemplateError, match=r"pattern 'job-\*': matches no template"):
        select_templates(library, ["tpch-q1", "job-*"])


def _template(exponents: tuple[float, ...] = (1.0, 0.5), n: int = 2) -> QueryTemplate:
    pipelines = tuple(
        PipelineTemplate(
            index=i,
            parents=(i - 1,) if i else (),
            operator="result" if i == n - 1 else "aggregate",
            work_s_sf1=1.0 + i,
            work_exponent=exponents[i % len(exponents)],
            tasks_sf1=10.0,
            memory_gb_sf1=0.5,
            memory_exponent=0.8,
        )
        for i in range(n)
    )
    return QueryTemplate(name="t", suite="x", pipelines=pipelines)


def test_instantiate_scales_work_tasks_and_memory_with_scale_factor() -> None:
    template = _template()
    rng = np.random.default_rng(1)
    query = template.instantiate(7, 3.0, 4.0, "etl", 0.0, rng, work_multiplier=2.0)
    assert query.query_id == 7 and query.arrival_s == 3.0 and query.query_class == "etl"
    assert [p.work_s for p in query.pipelines] == pytest.approx([2 * 1 * 4.0, 2 * 2 * 4.0**0.5])
    assert [p.est_work_s for p in query.pipelines] == [p.work_s for p in query.pipelines]
    assert [p.num_tasks for p in query.pipelines] == [40, 40]
    assert query.pipelines[0].memory_gb == pytest.approx(0.5 * 4.0**0.8)
    assert template.work_s(4.0) == pytest.approx(query.work_s / 2.0)
    small = template.instantiate(0, 0.0, 0.01, "etl", 0.0, rng)
    assert [p.num_tasks for p in small.pipelines] == [1, 1]


def test_estimate_error_is_lognormal_with_the_given_sigma() -> None:
    sigma = 0.6
    template = _template(n=4000)
    query = template.instantiate(0, 0.0, 1.0, "adhoc", sigma, np.random.default_rng(42))
    log_errors = np.log([p.est_work_s / p.work_s for p in query.pipelines])
    # Standard errors: mean sigma/sqrt(n) ~ 0.0095, std ~ sigma/sqrt(2n) ~ 0.0067.
    assert abs(log_errors.mean()) < 0.04
    assert log_errors.std() == pytest.approx(sigma, abs=0.03)
    ratio = np.array([p.est_work_s / p.work_s for p in query.pipelines])
    assert ratio.mean() == pytest.approx(math.exp(sigma**2 / 2), rel=0.05)


def test_instantiate_is_deterministic_for_a_seed() -> None:
    template = bundled_template_set("tpch").templates["tpch-q5"]
    a = template.instantiate(0, 0.0, 1.0, "adhoc", 0.5, np.random.default_rng(3))
    b = template.instantiate(0, 0.0, 1.0, "adhoc", 0.5, np.random.default_rng(3))
    assert a == b


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    original = bundled_template_set("ssb")
    path = tmp_path / "out" / "ssb.json"
    write_template_file(original, path)
    again = load_template_file(path)
    assert template_set_to_dict(again) == template_set_to_dict(original)
    assert again.templates == original.templates
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"parents": [1]}, "pipelines[1].parents", "must point to an earlier pipeline"),
        ({"parents": [0, 0]}, "pipelines[1].parents", "listed twice"),
        ({"work_s_sf1": 0}, "pipelines[1].work_s_sf1", "must be > 0"),
        ({"work_s_sf1": "fast"}, "pipelines[1].work_s_sf1", "must be a number"),
        ({"tasks_sf1": -1}, "pipelines[1].tasks_sf1", "must be > 0"),
        ({"memory_gb_sf1": -0.5}, "pipelines[1].memory_gb_sf1", "must be >= 0"),
        ({"operator": "shuffle"}, "pipelines[1].operator", "unknown operator 'shuffle'"),
        ({"work_exponnt": 1.0}, "pipelines[1].work_exponnt", "unknown field"),
        ({"table_scans": 1.5}, "pipelines[1].table_scans", "must be an integer"),
        ({"index": 3}, "pipelines[1].index", "must equal its position 1"),
    ],
)
def test_broken_pipeline_names_file_template_and_field(
    tmp_path: Path, change: dict, field: str, problem: str
) -> None:
    path = _write(tmp_path, _tiny_set(**change))
    with pytest.raises(TemplateError) as info:
        load_template_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: templates.mine-q1.{field}: ")
    assert problem in message


def test_missing_pipeline_field_is_named(tmp_path: Path) -> None:
    data = _tiny_set()
    del data["templates"]["mine-q1"]["pipelines"][0]["tasks_sf1"]
    with pytest.raises(
        TemplateError, match=r"templates\.mine-q1\.pipelines\[0\]\.tasks_sf1: missing"
    ):
        load_template_file(_write(tmp_path, data))


def test_pipeline_feeding_nothing_is_rejected(tmp_path: Path) -> None:
    data = _tiny_set(parents=[])
    with pytest.raises(TemplateError, match=r"pipelines\[0\]: feeds no later pipeline"):
        load_template_file(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("top", "value", "problem"),
    [
        ("threads", 0, "threads: must be >= 1"),
        ("scale_factors", [], "scale_factors: must be a non-empty list"),
        ("scale_factors", [1.0, -0.1], r"scale_factors\[1\]: must be > 0"),
        ("templates", {}, "templates: must be a non-empty object"),
        ("engine", "", "engine: must be a non-empty string"),
        ("format", 3, "format: unsupported format 3"),
    ],
)
def test_broken_header_names_the_field(
    tmp_path: Path, top: str, value: object, problem: str
) -> None:
    data = _tiny_set()
    data[top] = value
    with pytest.raises(TemplateError, match=problem):
        load_template_file(_write(tmp_path, data))


def test_unreadable_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"absent\.json: No such file"):
        load_template_file(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"suite": "x",\n "engine": }', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"bad\.json: line 2: invalid JSON"):
        load_template_file(bad)
    dup = tmp_path / "dup.json"
    dup.write_text('{"suite": "x", "suite": "y"}', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"dup\.json: suite: duplicate key"):
        load_template_file(dup)
