"""The `workload:` section and workload generation: validation, determinism, mixing, cuts."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from lsched.workloads.arrivals import Batch, NightlyEtl, Periodic, Poisson, Window
from lsched.workloads.generate import (
    check_templates,
    generate_workload,
    workload_stats,
)
from lsched.workloads.spec import (
    ScaleFactorChoice,
    StreamSpec,
    TemplateChoice,
    WorkloadError,
    WorkloadModel,
    WorkloadSpec,
    format_loc,
)
from lsched.workloads.templates import PipelineTemplate, QueryTemplate
from sim.model import validate_query


def template(name: str, works: tuple[float, ...], exponent: float = 1.0) -> QueryTemplate:
    """A chain of pipelines with the given work at scale factor 1."""
    pipelines = tuple(
        PipelineTemplate(
            index=i,
            parents=(i - 1,) if i else (),
            operator="result" if i == len(works) - 1 else "hash_build",
            work_s_sf1=w,
            work_exponent=exponent,
            tasks_sf1=4.0,
            memory_gb_sf1=0.1,
        )
        for i, w in enumerate(works)
    )
    return QueryTemplate(name=name, suite=name.split("-")[0], pipelines=pipelines)


LIBRARY = {
    t.name: t
    for t in (
        template("tpch-q1", (1.0, 2.0)),
        template("tpch-q2", (0.5, 0.5, 0.5)),
        template("tpch-q10", (3.0,)),
        template("ssb-q1.1", (0.2, 0.3)),
        template("ssb-q1.2", (0.4,), exponent=1.2),
    )
}

EXAMPLE = """
workload:
  queries: 200
  duration_s: 3600
  estimate_error: 0.5
  template_files: [extra/mine.json]
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.2}
      mix: [{templates: "tpch-*", weight: 0.8}, {templates: "ssb-*", weight: 0.2}]
      scale_factors: [{value: 10, weight: 0.7}, {value: 100, weight: 0.3}]
    - name: dashboards
      class: dashboard
      arrivals: {process: periodic, period_s: 300, jitter_s: 10}
      templates: [tpch-q1, tpch-q10]
      priority: 2.0
      deadline_s: 30
      estimate_error: 0.1
    - name: nightly
      class: etl
      arrivals: {process: etl, time_of_day: "02:30", spread_s: 600}
      templates: "ssb-*"
      start_s: 60
      end_s: 3000
"""


def model(data: dict) -> WorkloadModel:
    return WorkloadModel.model_validate(data)


def poisson_stream(name: str = "s", rate: float = 1.0, **extra) -> dict:
    return {"name": name, "arrivals": {"process": "poisson", "rate_per_s": rate}, **extra}


# ---------------------------------------------------------------- the YAML section


def test_example_section_reads_into_a_spec() -> None:
    data = yaml.safe_load(EXAMPLE)["workload"]
    spec = model(data).to_spec(base_dir=Path("/scenarios"))
    adhoc, dashboards, nightly = spec.streams
    assert (spec.queries, spec.duration_s) == (200, 3600.0)
    assert spec.template_files == (Path("/scenarios/extra/mine.json"),)
    assert adhoc.query_class == "adhoc" and adhoc.estimate_error == 0.5
    assert adhoc.arrivals == Poisson(0.2)
    assert adhoc.mix == (TemplateChoice(("tpch-*",), 0.8), TemplateChoice(("ssb-*",), 0.2))
    assert adhoc.scale_factors == (ScaleFactorChoice(10.0, 0.7), ScaleFactorChoice(100.0, 0.3))
    assert dashboards.query_class == "dashboard" and dashboards.templates == ("tpch-q1", "tpch-q10")
    assert (dashboards.priority, dashboards.deadline_s, dashboards.estimate_error) == (2, 30, 0.1)
    assert dashboards.arrivals == Periodic(period_s=300.0, jitter_s=10.0)
    assert nightly.arrivals == Window(
        NightlyEtl(time_of_day_s=9000.0, spread_s=600.0), start_s=60.0, end_s=3000.0
    )


def test_shorthands_for_mix_and_scale_factors() -> None:
    spec = model(
        {"queries": 5, "streams": [poisson_stream(mix="tpch-*", scale_factors=[1, 10])]}
    ).to_spec()
    (stream,) = spec.streams
    assert stream.mix == (TemplateChoice(("tpch-*",), 1.0),)
    assert stream.scale_factors == (ScaleFactorChoice(1.0), ScaleFactorChoice(10.0))
    assert model({"queries": 5, "streams": [poisson_stream(mix=["a", "b"], scale_factors=3)]})


def errors_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model(data)
    return [(format_loc(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("stream", "path", "message"),
    [
        (poisson_stream(rate=-1.0, mix="x"), "streams[0].arrivals.rate_per_s", "greater than 0"),
        (poisson_stream(rate=math.inf, mix="x"), "streams[0].arrivals.rate_per_s", "finite"),
        (poisson_stream(mix="x", colour="red"), "streams[0].colour", "Extra inputs"),
        (
            {"name": "s", "arrivals": {"process": "poisson", "rate": 1}, "mix": "x"},
            "streams[0].arrivals.rate",
            "Extra inputs",
        ),
        ({"name": "s", "arrivals": {"process": "gamma"}, "mix": "x"}, "streams[0].arrivals", "tag"),
        (poisson_stream(), "streams[0].mix", "exactly one of mix"),
        (poisson_stream(mix="x", templates=["y"]), "streams[0].mix", "exactly one of mix"),
        (
            {
                "name": "s",
                "arrivals": {"process": "bursty", "rate_on_per_s": 1, "mean_on_s": 0},
                "mix": "x",
            },
            "streams[0].arrivals.mean_on_s",
            "greater than 0",
        ),
        (
            {
                "name": "s",
                "arrivals": {"process": "diurnal", "base_rate_per_s": 2, "peak_rate_per_s": 1},
                "mix": "x",
            },
            "streams[0].arrivals.peak_rate_per_s",
            "base_rate_per_s",
        ),
        (
            {"name": "s", "arrivals": {"process": "etl", "time_of_day": "25:00"}, "templates": "x"},
            "streams[0].arrivals.time_of_day",
            "not a time of day",
        ),
        (
            {"name": "s", "arrivals": {"process": "etl", "time_of_day": 7200}, "mix": "x"},
            "streams[0].arrivals.count",
            "required",
        ),
        (
            poisson_stream(mix="x", scale_factors=[{"value": 0}]),
            "streams[0].scale_factors[0].value",
            "greater than or equal to 0.0001",
        ),
        (poisson_stream(mix="x", start_s=10, end_s=5), "streams[0].end_s", "start_s"),
        (
            poisson_stream(mix=[{"templates": "x", "weight": -1}]),
            "streams[0].mix[0].weight",
            "greater",
        ),
    ],
)
def test_invalid_streams_name_the_field(stream: dict, path: str, message: str) -> None:
    problems = errors_of({"queries": 10, "streams": [stream]})
    assert any(p == path and message in m for p, m in problems), problems


def test_workload_level_problems_name_the_field() -> None:
    assert errors_of({"streams": [poisson_stream(mix="x")]}) == [
        ("queries", "set queries, duration_s or both (streams never stop on their own)")
    ]
    duplicate = errors_of({"queries": 3, "streams": [poisson_stream(mix="x")] * 2})
    assert duplicate[0][0] == "streams[1].name" and "duplicate" in duplicate[0][1]
    batch = {"name": "b", "arrivals": {"process": "batch"}, "mix": "x"}
    assert errors_of({"duration_s": 5, "streams": [batch]})[0][0] == "streams[0].arrivals.count"
    assert errors_of({"queries": 3, "streams": []})[0][0] == "streams"
    assert errors_of({"queries": -3, "streams": [batch]})[0][0] == "queries"
    assert errors_of({"queries": 3, "streams": [batch], "extra": 1})[0][0] == "extra"


def test_format_loc_drops_only_the_process_tag() -> None:
    assert format_loc(("workload", "streams", 2, "arrivals", "periodic", "jitter_s")) == (
        "workload.streams[2].arrivals.jitter_s"
    )
    assert format_loc(("streams", 0, "mix", 1, "templates", 0)) == "streams[0].mix[1].templates[0]"


# ---------------------------------------------------------------- generation


def spec_of(*streams: StreamSpec, queries: int | None = None, duration_s: float | None = None):
    return WorkloadSpec(streams=streams, queries=queries, duration_s=duration_s)


def adhoc(**extra) -> StreamSpec:
    fields = {"name": "adhoc", "query_class": "adhoc", "arrivals": Poisson(0.5)}
    fields["mix"] = (TemplateChoice(("tpch-*",)),)
    return StreamSpec(**(fields | extra))


def test_same_seed_same_queries_and_another_seed_differs() -> None:
    spec = model(yaml.safe_load(EXAMPLE)["workload"]).to_spec()
    first = generate_workload(spec, LIBRARY, np.random.default_rng(7))
    assert first == generate_workload(spec, LIBRARY, np.random.default_rng(7))
    assert first != generate_workload(spec, LIBRARY, np.random.default_rng(8))
    assert len(first) > 10


def test_queries_are_numbered_in_arrival_order_and_valid() -> None:
    spec = model(yaml.safe_load(EXAMPLE)["workload"]).to_spec()
    queries = generate_workload(spec, LIBRARY, np.random.default_rng(1))
    assert [q.query_id for q in queries] == list(range(len(queries)))
    arrivals = [q.arrival_s for q in queries]
    assert arrivals == sorted(arrivals) and arrivals[-1] < 3600.0
    for query in queries:
        validate_query(query)


def test_cut_at_queries_and_at_duration() -> None:
    by_count = generate_workload(spec_of(adhoc(), queries=50), LIBRARY, np.random.default_rng(2))
    assert len(by_count) == 50
    by_time = generate_workload(
        spec_of(adhoc(), duration_s=200.0), LIBRARY, np.random.default_rng(2)
    )
    assert all(q.arrival_s < 200.0 for q in by_time)
    assert abs(len(by_time) - 100) < 5 * math.sqrt(100)
    both = generate_workload(
        spec_of(adhoc(), queries=10, duration_s=1e6), LIBRARY, np.random.default_rng(2)
    )
    assert len(both) == 10


def test_streams_merge_in_time_order_with_their_own_settings() -> None:
    dashboard = StreamSpec(
        name="dash",
        query_class="dashboard",
        arrivals=Periodic(period_s=60.0, jitter_s=2.0),
        templates=("tpch-q1", "ssb-q1.2"),
        priority=3.0,
        deadline_s=10.0,
        estimate_error=0.0,
    )
    spec = spec_of(adhoc(), dashboard, duration_s=600.0)
    queries = generate_workload(spec, LIBRARY, np.random.default_rng(3))
    arrivals = [q.arrival_s for q in queries]
    assert arrivals == sorted(arrivals)
    dash = [q for q in queries if q.query_class == "dashboard"]
    assert len(dash) == 20  # 10 firings × 2 panels
    for k in range(10):
        firing = [q.template for q in dash if k * 60 <= q.arrival_s < k * 60 + 2]
        assert sorted(firing) == ["ssb-q1.2", "tpch-q1"]
    assert all(q.priority == 3.0 and q.deadline_s == 10.0 for q in dash)
    assert all(p.est_work_s == p.work_s for q in dash for p in q.pipelines)
    others = [q for q in queries if q.query_class == "adhoc"]
    assert others and all(q.priority == 1.0 and q.deadline_s is None for q in others)
    assert any(p.est_work_s != p.work_s for q in others for p in q.pipelines)


def test_mix_and_scale_factor_weights_are_respected() -> None:
    stream = adhoc(
        mix=(TemplateChoice(("tpch-*",), 3.0), TemplateChoice(("ssb-*",), 1.0)),
        scale_factors=(ScaleFactorChoice(1.0, 1.0), ScaleFactorChoice(10.0, 4.0)),
    )
    n = 4000
    queries = generate_workload(spec_of(stream, queries=n), LIBRARY, np.random.default_rng(4))
    tpch = sum(q.template.startswith("tpch") for q in queries)
    assert abs(tpch - 0.75 * n) < 5 * math.sqrt(n * 0.75 * 0.25)
    templates = Counter(q.template for q in queries if q.template.startswith("tpch"))
    assert set(templates) == {"tpch-q1", "tpch-q2", "tpch-q10"}
    for count in templates.values():  # uniform within a share
        assert abs(count - tpch / 3) < 5 * math.sqrt(tpch * (1 / 3) * (2 / 3))
    big = sum(q.scale_factor == 10.0 for q in queries)
    assert abs(big - 0.8 * n) < 5 * math.sqrt(n * 0.8 * 0.2)


def test_work_follows_template_scale_factor_and_multiplier() -> None:
    stream = adhoc(
        mix=(TemplateChoice(("ssb-q1.2",)),),
        scale_factors=(ScaleFactorChoice(10.0),),
        work_multiplier=2.0,
    )
    (query,) = generate_workload(spec_of(stream, queries=1), LIBRARY, np.random.default_rng(5))
    assert query.work_s == pytest.approx(2.0 * 0.4 * 10.0**1.2)
    assert query.pipelines[0].num_tasks == 40


def test_batch_with_fixed_templates_sends_each_once() -> None:
    stream = StreamSpec(name="bench", query_class="bench", arrivals=Batch(), templates=("tpch-*",))
    queries = generate_workload(spec_of(stream, queries=100), LIBRARY, np.random.default_rng(6))
    assert [q.template for q in queries] == ["tpch-q1", "tpch-q2", "tpch-q10"]
    assert all(q.arrival_s == 0.0 for q in queries)


def test_fixed_lists_keep_repeats_and_etl_runs_them_in_order() -> None:
    etl = StreamSpec(
        name="etl",
        query_class="etl",
        arrivals=NightlyEtl(time_of_day_s=3600.0, spread_s=900.0),
        templates=("tpch-q10", "ssb-q1.1", "tpch-q10"),
    )
    queries = generate_workload(spec_of(etl, queries=6), LIBRARY, np.random.default_rng(7))
    assert [q.template for q in queries] == ["tpch-q10", "ssb-q1.1", "tpch-q10"] * 2
    assert [q.arrival_s // 86_400 for q in queries] == [0, 0, 0, 1, 1, 1]


def test_a_pattern_matching_nothing_names_the_field() -> None:
    spec = spec_of(adhoc(), adhoc(name="b", mix=(TemplateChoice(("ssb-*", "job-*")),)), queries=5)
    with pytest.raises(WorkloadError, match=r"^streams\[1\]\.mix\[0\]\.templates\[1\]: .*'job-\*'"):
        check_templates(spec, LIBRARY)
    with pytest.raises(WorkloadError, match=r"^streams\[1\]\.mix"):
        generate_workload(spec, LIBRARY, np.random.default_rng(0))


def test_a_workload_with_nothing_in_time_is_empty() -> None:
    late = adhoc(arrivals=Window(Poisson(1.0), start_s=500.0))
    assert (
        generate_workload(spec_of(late, duration_s=100.0), LIBRARY, np.random.default_rng(0)) == ()
    )


def test_two_thousand_queries_generate_quickly() -> None:
    spec = model(yaml.safe_load(EXAMPLE)["workload"] | {"queries": 2000, "duration_s": None})
    spec = spec.to_spec()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    queries = generate_workload(spec, LIBRARY, rng)
    elapsed = time.perf_counter() - start
    assert len(queries) == 2000
    assert elapsed < 0.5, f"{elapsed:.3f} s"


def test_workload_stats() -> None:
    queries = generate_workload(spec_of(adhoc(), queries=100), LIBRARY, np.random.default_rng(9))
    stats = workload_stats(queries)
    assert stats.queries == 100 and stats.per_class == (("adhoc", 100),)
    assert stats.total_work_s == pytest.approx(sum(q.work_s for q in queries))
    assert abs(stats.mean_rate_per_s - 0.5) < 5 * 0.5 / math.sqrt(100)
    assert stats.offered_load(4) == pytest.approx(stats.total_work_s / (stats.span_s * 4))
    assert workload_stats(()).queries == 0


def test_generates_from_the_real_library() -> None:
    templates = pytest.importorskip("lsched.workloads.templates")
    try:
        library = templates.load_library()
    except templates.TemplateError as error:  # bundled files not calibrated yet
        pytest.skip(str(error))
    spec = model(
        {
            "queries": 300,
            "streams": [
                poisson_stream("a", mix=["tpch-*", "ssb-*", "tpcds-*"], scale_factors=[1, 10]),
                {
                    "name": "d",
                    "arrivals": {"process": "periodic", "period_s": 60},
                    "templates": ["tpch-q1", "tpch-q6"],
                },
            ],
        }
    ).to_spec()
    queries = generate_workload(spec, library, np.random.default_rng(0))
    assert len(queries) == 300
    assert {q.template.split("-")[0] for q in queries} >= {"tpch", "ssb"}
    for query in queries:
        validate_query(query)
