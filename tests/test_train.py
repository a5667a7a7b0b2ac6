"""Training: rewards, a few iterations end to end, and resume reproducing an uninterrupted run."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.context import AgentContext
from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import feature_sizes
from agents.learned.checkpoint import load_checkpoint
from agents.learned.factory import lsched_agent
from agents.learned.policy import Policy, PolicyConfig
from lsched.learn import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    RolloutTask,
    TrainConfig,
    TrainError,
    episode_drains,
    integral_in_system,
    iteration_tasks,
    return_to_go,
    rollout_group,
    train,
)
from lsched.scenario import bundled_scenarios, load_scenario
from sim import simulate

TINY = """\
name: tiny
cluster: {nodes: 1, threads_per_node: 4}
workload:
  queries: 24
  streams:
    - name: adhoc
      arrivals: {process: poisson, rate_per_s: 0.5}
      mix: "tpch-*"
      scale_factors: [{value: 0.1}]
agents: [fifo, fair]
"""

FAST = TrainConfig(
    iterations=4,
    workloads_per_iteration=2,
    rollouts_per_workload=2,
    workers=1,
    curriculum_start_queries=6,
    curriculum_end_queries=12,
    curriculum_iterations=4,
    checkpoint_every=2,
    eval_every=2,
    eval_max_queries=12,
    baselines=("fifo", "fair"),
    imitate="fair",
    guide="fair",
    imitation_workloads=1,
    imitation_epochs=2,
    imitation_max_queries=12,
    hidden=16,
    embed=8,
    rounds=2,
)


@pytest.fixture()
def tiny(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


def _small_policy_config() -> PolicyConfig:
    sizes = feature_sizes()
    return PolicyConfig(sizes.pipeline, sizes.query, sizes.global_, hidden=16, embed=8)


def test_time_in_system_integral_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    arrivals = np.sort(rng.uniform(0, 50, 30))
    finishes = arrivals + rng.uniform(0.5, 20, 30)
    times = np.linspace(0, 80, 41)
    grid = np.linspace(0, 80, 160_001)
    in_system = ((grid[:, None] >= arrivals) & (grid[:, None] < finishes)).sum(axis=1)
    cumulative = np.concatenate(([0.0], np.cumsum(in_system[:-1] * np.diff(grid))))
    expected = np.interp(times, grid, cumulative)
    assert np.allclose(integral_in_system(times, arrivals, finishes), expected, atol=0.05)
    # Over a whole episode the return is minus the summed latency.
    assert return_to_go(np.array([0.0]), 100.0, arrivals, finishes)[0] == pytest.approx(
        -(finishes - arrivals).sum()
    )


def test_rollout_group_is_deterministic_and_gives_a_gradient(tiny: str) -> None:
    config = _small_policy_config()
    torch.manual_seed(0)
    weights = Policy(config).state_dict()
    scenario = load_scenario(tiny)
    task = RolloutTask(
        weights=weights,
        policy=config,
        scenario=tiny,
        workload_seed=scenario.train_seed_offset + 5000,
        execution_seeds=(scenario.train_seed_offset + 1, scenario.train_seed_offset + 2),
        sample_seeds=((0, 0, 0, 0), (0, 0, 0, 1)),
        horizon_queries=10,
        entropy_weight=0.01,
    )
    first, second = rollout_group(task), rollout_group(task)
    assert first.decisions > 0 and first.queries == 10
    assert any(np.abs(g).sum() > 0 for g in first.gradient)
    for a, b in zip(first.gradient, second.gradient, strict=True):
        assert np.array_equal(a, b)


def test_rollouts_that_decide_alike_on_shared_durations_get_no_advantage(tiny: str) -> None:
    """Common random numbers: on the same durations, rollouts with the same sampling draws make
    identical schedules and get no gradient (the entropy bonus is off); different draws do."""
    config = _small_policy_config()
    torch.manual_seed(0)
    weights = Policy(config).state_dict()
    offset = load_scenario(tiny).train_seed_offset

    def gradient(samples: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
        task = RolloutTask(
            weights=weights,
            policy=config,
            scenario=tiny,
            workload_seed=offset + 5000,
            execution_seeds=(offset + 1, offset + 1),
            sample_seeds=samples,
            horizon_queries=10,
            entropy_weight=0.0,
        )
        return rollout_group(task).gradient

    assert all(not g.any() for g in gradient(((0, 0, 0, 0), (0, 0, 0, 0))))
    assert any(g.any() for g in gradient(((0, 0, 0, 0), (0, 0, 0, 1))))


def test_iterations_share_execution_seeds_within_a_group_unless_asked_not_to(tiny: str) -> None:
    policy_config = _small_policy_config()
    policy = Policy(policy_config)
    loaded = [load_scenario(tiny)]

    def seeds(config: TrainConfig) -> list[tuple[int, ...]]:
        tasks = iteration_tasks(config, [tiny], loaded, policy, policy_config, 3)
        return [t.execution_seeds for t in tasks]

    shared = seeds(FAST)
    assert all(len(set(group)) == 1 for group in shared)
    assert len({group[0] for group in shared}) == len(shared)
    apart = seeds(replace(FAST, shared_execution=False))
    assert all(len(set(group)) == len(group) for group in apart)
    assert [group[0] for group in apart] == [group[0] for group in shared]


def test_a_few_iterations_write_metrics_checkpoint_and_a_loadable_policy(
    tiny: str, tmp_path: Path
) -> None:
    seen: list[dict] = []
    out = tmp_path / "run"
    policy_path = train(FAST, [tiny], out, progress=seen.append)
    records = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1, 2, 3, 4]
    assert "imitation" in records[0] and "eval" in records[2] and "eval" in records[4]
    assert records[4]["eval"]["tiny"]["best_baseline_s"] > 0
    assert all(r["decisions"] > 0 for r in records[1:])
    assert any("imitation_epoch" in r for r in seen)

    # The run ships its best validated policy (the first best, on ties).
    best = min((r for r in records if "eval_score" in r), key=lambda r: r["eval_score"])
    policy, info, document = load_checkpoint(policy_path, FEATURE_SCHEMA_VERSION)
    assert info.iterations == best["iteration"] and info.scenarios == (tiny,)
    assert info.extra["train_config"]["iterations"] == 4
    assert "training" not in document  # the shipped form: weights and metadata only
    assert "training" in torch.load(out / CHECKPOINT_FILE, weights_only=True)
    context = AgentContext(load_scenario(tiny).cluster, None, (), None, np.random.default_rng(0))
    scheduler = lsched_agent(context, checkpoint=policy_path)
    scenario = load_scenario(tiny)
    result = simulate(scenario.queries(0), scenario.cluster, scheduler, scenario.execution_rng(0))
    assert len(result.queries) == 24
    del policy


class _Killed(Exception):
    pass


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny: str, tmp_path: Path) -> None:
    config = replace(FAST, imitate=None, eval_every=0)
    straight = tmp_path / "straight"
    train(config, [tiny], straight)

    interrupted = tmp_path / "interrupted"

    def kill_at_three(record: dict) -> None:
        if record.get("iteration") == 3:  # its metrics line is written, its checkpoint not
            raise _Killed

    with pytest.raises(_Killed):
        train(config, [tiny], interrupted, progress=kill_at_three)
    assert load_checkpoint(interrupted / CHECKPOINT_FILE)[1].iterations == 2
    train(config, [tiny], interrupted, resume=True)

    a = load_checkpoint(straight / CHECKPOINT_FILE)[0].state_dict()
    b = load_checkpoint(interrupted / CHECKPOINT_FILE)[0].state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name

    def lines(folder: Path) -> list[dict]:
        records = [json.loads(x) for x in (folder / METRICS_FILE).read_text().splitlines()]
        for record in records:
            record.pop("wall_s")
            record.pop("rollout_wall_s")
        return records

    assert lines(straight) == lines(interrupted)


def test_resume_refuses_changed_settings(tiny: str, tmp_path: Path) -> None:
    from agents.learned.checkpoint import CheckpointError

    config = replace(FAST, imitate=None, eval_every=0, iterations=2)
    train(config, [tiny], tmp_path / "run")
    with pytest.raises(CheckpointError, match="learning_rate"):
        train(replace(config, learning_rate=0.5, iterations=3), [tiny], tmp_path / "run", True)


def test_a_fresh_run_never_overwrites_a_folder_and_a_resume_may_start_one(
    tiny: str, tmp_path: Path
) -> None:
    """An earlier training's files are half an hour's work: without --resume a folder holding
    them is refused before one is deleted, and a folder holding anyone else's files always is.
    With --resume a folder without a checkpoint (new, or a run killed before its first one,
    which may have left best.pt or tensorboard/) starts afresh, clearing what that run left."""
    config = replace(FAST, imitate=None, eval_every=0, iterations=1)
    run = tmp_path / "run"
    train(config, [tiny], run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(TrainError, match=r"holds a training run .*--resume continues it"):
        train(config, [tiny], run)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    (run / "learning-curve.png").write_bytes(b"drawn mid-run by lsched plot")
    train(config, [tiny], run, resume=True)  # the curve is the run's own: the resume goes on
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for resume in (False, True):
        with pytest.raises(TrainError, match=r"does not write \(e\.g\. 'notes\.txt'\)"):
            train(config, [tiny], foreign, resume=resume)
    assert (foreign / "notes.txt").read_text() == "mine"

    killed = tmp_path / "killed"  # killed before its first checkpoint
    (killed / "tensorboard").mkdir(parents=True)
    (killed / "best.pt").write_bytes(b"stale")
    train(config, [tiny], killed, resume=True)
    assert (killed / CHECKPOINT_FILE).exists()
    assert not (killed / "best.pt").exists()  # the stale one cleared; no validation, none new
    train(config, [tiny], tmp_path / "new", resume=True)
    assert (tmp_path / "new" / CHECKPOINT_FILE).exists()


def test_init_fine_tunes_a_trained_policy_instead_of_cloning(tiny: str, tmp_path: Path) -> None:
    first = train(replace(FAST, iterations=2), [tiny], tmp_path / "first")
    config = replace(FAST, iterations=2, init=str(first), imitate="fifo")
    out = tmp_path / "tuned-further"
    seen: list[dict] = []
    train(config, [tiny], out, progress=seen.append)
    records = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]
    assert records[0]["init"] == str(first) and "imitation" not in records[0]
    assert not any("imitation_epoch" in r for r in seen)  # the teacher `fifo` never ran
    # Iteration 0 is the loaded policy itself: it validates exactly as the first run's final one.
    first_records = [json.loads(x) for x in (tmp_path / "first" / METRICS_FILE).open()]
    shipped = load_checkpoint(first)[1].iterations
    first_score = next(r["eval_score"] for r in first_records if r["iteration"] == shipped)
    assert records[0]["eval_score"] == first_score


def test_zero_iterations_choose_the_deviation_margin_of_a_trained_policy(
    tiny: str, tmp_path: Path
) -> None:
    """`iterations=0` with `init` ships the same weights; `margin_grid` measures every margin
    on `margin_seeds` validation workloads and ships the one with the best worst scenario."""
    first = train(replace(FAST, iterations=2), [tiny], tmp_path / "first")
    other = tmp_path / "other.yaml"  # a scenario the policy never trained on
    other.write_text(TINY.replace("name: tiny", "name: other").replace("0.5}", "2.0}"))
    config = replace(
        FAST,
        iterations=0,
        init=str(first),
        margin_grid=(1e6, 0.0),
        margin_seeds=2,
        margin_max_queries=12,
        margin_scenarios=(str(other), tiny),
    )
    out = tmp_path / "gated"
    path = train(config, [tiny], out)
    records = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]
    report = records[-1]["margin"]
    assert [r["iteration"] for r in records] == [0, 0] and report["seeds"] == 2
    worst = {float(m): row["worst"] for m, row in report["margins"].items()}
    assert set(worst) == {0.0, 1e6}
    for row in report["margins"].values():  # judged on both, each at its interval's upper end
        assert set(row["vs_best"]) == {"tiny", "other"}
        assert all(row["upper"][n] >= row["vs_best"][n] for n in row["vs_best"])
        assert row["worst"] == max(row["upper"].values())
    assert report["chosen"] == min(worst, key=lambda m: (worst[m], m))
    policy, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION)
    assert info.deviation_margin == report["chosen"] and info.extra["margin"] == report
    trained, _, _ = load_checkpoint(first, FEATURE_SCHEMA_VERSION)
    assert all(
        torch.equal(a, b)
        for a, b in zip(policy.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    with pytest.raises(Exception, match="iterations"):
        train(replace(FAST, iterations=0, init=None, imitate=None), [tiny], tmp_path / "none")


def test_a_margin_must_win_beyond_its_noise() -> None:
    """The margin rule scores a scenario by the upper end of its ratio's interval: a margin that
    is ahead on average but scattered around the baseline loses to one that sits on it, and
    z = 0 gives back the comparison of ratios alone."""
    from lsched.learn.margin import _best, _row, paired_ratio

    best = [10.0, 10.0, 10.0, 10.0]
    scattered = paired_ratio([9.0, 11.2, 9.0, 10.6], best)  # −0.5% on average, ±4.6%
    steady = paired_ratio([10.0, 10.0, 10.0, 10.01], best)  # +0.025%, ±0.025%
    assert scattered[0] < steady[0] and scattered[1] > 10 * steady[1]
    for z, winner in ((0.0, "scattered"), (1.645, "steady")):
        rows = {
            name: _row({"s": score}, z)
            for name, score in (("scattered", scattered), ("steady", steady))
        }
        assert min(rows, key=lambda name: rows[name]["worst"]) == winner
    assert paired_ratio([12.0], [10.0]) == pytest.approx((0.2, 0.0))
    # where every margin makes the guide's decisions (ratio 0) the worst ties: the mean decides
    ahead = paired_ratio([9.5, 9.6, 9.5, 9.4], best)
    rows = {
        str(m): _row({"guide": (0.0, 0.0), "s": score}, 1.645)
        for m, score in ((1.0, paired_ratio(best, best)), (2.0, ahead))
    }
    assert rows["1.0"]["worst"] == rows["2.0"]["worst"] == 0.0
    assert _best([1.0, 2.0], rows) == 2.0
    assert _best([1.0, 2.0], {"1.0": rows["2.0"], "2.0": rows["2.0"]}) == 1.0  # then the smaller


def test_the_query_level_form_gets_its_own_margin_chosen_at_query_level(
    tiny: str, tmp_path: Path
) -> None:
    """`query_margin_grid` runs the file's query-level form (what `lsched real` runs) at each
    margin against the baselines' query-level forms, and records the choice, which the agent
    then gates with at query level; the pipeline-level margin stays."""
    from lsched.learn.evaluation import validation_seeds
    from lsched.runner import agent_context, simulate_one
    from lsched.scenario import AgentChoice

    first = train(replace(FAST, iterations=1), [tiny], tmp_path / "first")
    config = replace(
        FAST,
        iterations=0,
        init=str(first),
        margin_seeds=1,
        query_margin_grid=(1e6, 0.0),
        query_margin_scenarios=(tiny,),
    )
    out = tmp_path / "query"
    path = train(config, [tiny], out)
    records = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]
    report = records[-1]["query_margin"]
    worst = {float(m): row["worst"] for m, row in report["margins"].items()}
    assert set(worst) == {0.0, 1e6} and report["baselines"] == ["fifo", "fair"]
    assert report["chosen"] == min(worst, key=lambda m: (worst[m], m))
    # a huge margin is the guide's (fair's) query-level form itself, measured apart
    scenario = load_scenario(tiny)
    seeds = validation_seeds(scenario, config, 1)
    assert report["seeds"] == {scenario.name: seeds}
    latency = {
        name: simulate_one(scenario, AgentChoice(name, {"decisions": "query"}), seeds[0])
        for name in ("fifo", "fair")
    }
    best = min(r.mean_latency_s for r in latency.values())
    assert worst[1e6] == pytest.approx(latency["fair"].mean_latency_s / best - 1.0)
    _, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION)
    assert info.query_deviation_margin == report["chosen"] and info.deviation_margin == 0.0
    context = agent_context(scenario)
    form = lsched_agent(context, checkpoint=path, decisions="query")
    assert form.policy.scheduler.options.deviation_margin == report["chosen"]
    assert lsched_agent(context, checkpoint=path).options.deviation_margin == 0.0


@pytest.mark.parametrize(
    ("change", "field"),
    [({"hidden": 32}, "policy_config: hidden 16 (this run: 32)"), ({"guide": "fifo"}, "guide")],
)
def test_init_refuses_a_policy_this_run_could_not_continue(
    tiny: str, tmp_path: Path, change: dict, field: str
) -> None:
    from agents.learned.checkpoint import CheckpointError

    first = train(replace(FAST, iterations=1, eval_every=0), [tiny], tmp_path / "first")
    config = replace(FAST, iterations=1, init=str(first), **change)
    with pytest.raises(CheckpointError, match=re.escape(field)):
        train(config, [tiny], tmp_path / "second")
    assert not (tmp_path / "second").exists()  # refused before anything was written
    with pytest.raises(CheckpointError, match=re.escape("no-such.pt")):
        train(replace(FAST, init=str(tmp_path / "no-such.pt")), [tiny], tmp_path / "third")


def test_settings_parse_from_the_command_line_form() -> None:
    from lsched.learn import TrainError, config_from_settings

    config = config_from_settings(["iterations=7", "imitate=fair", 'baselines=["fifo"]'])
    assert (config.iterations, config.imitate, config.baselines) == (7, "fair", ("fifo",))
    with pytest.raises(TrainError, match="unknown field 'iteration'; did you mean 'iterations'"):
        config_from_settings(["iteration=7"])
    with pytest.raises(TrainError, match="'iteration': expected FIELD=VALUE; did you mean"):
        config_from_settings(["iteration"])
    with pytest.raises(TrainError, match=r"expected FIELD=VALUE, e\.g\. learning_rate="):
        config_from_settings(["learning_rate"])  # a known field, its value missing
    with pytest.raises(TrainError, match=r"rollouts_per_workload must be >= 2 .*\(got 1\)"):
        config_from_settings(["rollouts_per_workload=1"])
    with pytest.raises(TrainError, match=r"learning_rate must be > 0 \(got -1.0\)"):
        config_from_settings(["learning_rate=-1"])
    assert config_from_settings(["guide=null"]).guide is None
    assert config_from_settings(["guide=srpt"]).guide == "srpt"
    for bad in ("lsched", "no-such"):
        with pytest.raises(TrainError, match=f"guide '{bad}' is not a heuristic agent"):
            config_from_settings([f"guide={bad}"])


def test_schedules_decay_entropy_and_grow_the_episode() -> None:
    config = TrainConfig(
        entropy_start=0.01,
        entropy_end=0.001,
        entropy_decay_iterations=10,
        curriculum_start_queries=20,
        curriculum_end_queries=120,
        curriculum_iterations=10,
    )
    assert config.entropy_weight(0) == pytest.approx(0.01)
    assert config.entropy_weight(5) == pytest.approx(0.01 * 0.1**0.5)
    assert config.entropy_weight(50) == pytest.approx(0.001)
    assert [config.horizon_queries(i) for i in (0, 5, 10, 99)] == [20, 70, 120, 120]


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_every_bundled_scenarios_rollouts_make_decisions(name: str) -> None:
    """An episode at the shortest horizon the default curriculum draws makes decisions and
    finishes queries on every bundled scenario (tpch-batch's used to end at t = 0, empty)."""
    defaults = TrainConfig()
    shortest = max(1, int(defaults.curriculum_start_queries * (1 - defaults.horizon_jitter)))
    config = _small_policy_config()
    torch.manual_seed(0)
    offset = load_scenario(name).train_seed_offset
    task = RolloutTask(
        weights=Policy(config).state_dict(),
        policy=config,
        scenario=name,
        workload_seed=offset + 1000,
        execution_seeds=(offset + 1000,) * 2,
        sample_seeds=((0, 0, 0, 0), (0, 0, 0, 1)),
        horizon_queries=shortest,
        entropy_weight=defaults.entropy_start,
        episode_end=defaults.episode_end,
    )
    result = rollout_group(task)
    assert result.decisions > 0
    assert result.finished > 0


def test_a_batch_episode_runs_its_first_k_queries_to_the_end() -> None:
    arrivals_at_once = np.zeros(5)
    assert episode_drains("auto", arrivals_at_once)
    assert not episode_drains("auto", np.array([0.0, 1.0, 2.0]))
    assert not episode_drains("arrival", arrivals_at_once)
    assert episode_drains("finish", np.array([0.0, 1.0]))
    config = _small_policy_config()
    torch.manual_seed(0)
    offset = load_scenario("tpch-batch").train_seed_offset
    task = RolloutTask(
        weights=Policy(config).state_dict(),
        policy=config,
        scenario="tpch-batch",
        workload_seed=offset + 1000,
        execution_seeds=(offset + 1000,) * 2,
        sample_seeds=((0, 0, 0, 0), (0, 0, 0, 1)),
        horizon_queries=8,
        entropy_weight=0.0,
    )
    result = rollout_group(task)
    assert result.queries == 8 and result.finished == 8  # all of them, and no others
    assert result.horizon_s > 0


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("iterations=abc", "iterations must be an integer"),
        ("workers=true", "workers must be an integer"),
        ("learning_rate=-1", "learning_rate"),
        ("time_limit_s=Infinity", "time_limit_s must be a number or null"),
        ("hidden=100000", "hidden"),
        ("episode_end=sometimes", "episode_end"),
        ('baselines=["fifo", "nope"]', "baselines: unknown agent 'nope'"),
        ("imitate=nope", "imitate: unknown agent 'nope'"),
        ("baselines=fifo", "baselines must be a list of strings"),
        ("rollout_seed_offset=10", "rollout_seed_offset"),
        ("margin_grid=[0.5, -1]", "margin_grid"),
        ("margin_confidence_z=-1", "margin_confidence_z"),
        ('margin_scenarios=["no-such-scenario"]', "margin_scenarios: no-such-scenario"),
        ('query_margin_scenarios=["nope.yaml"]', "query_margin_scenarios: nope.yaml"),
        ("deviation_margin=-0.5", "deviation_margin"),
    ],
)
def test_a_bad_setting_is_one_line_exit_2_and_nothing_written(
    tiny: str, tmp_path: Path, setting: str, named: str
) -> None:
    from typer.testing import CliRunner

    from lsched.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", tiny, "--out", str(out), "--set", setting])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: train settings") and named in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not out.exists()


def test_every_setting_is_a_documented_field() -> None:
    """No hidden constants: each TrainConfig field has a docstring."""
    import ast
    import inspect
    from itertools import pairwise

    import lsched.learn.config as config_module

    tree = ast.parse(inspect.getsource(config_module.TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        node.target.id
        for node, after in pairwise(body)
        if isinstance(node, ast.AnnAssign)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
    }
    assert set(TrainConfig.__dataclass_fields__) == documented


def test_the_summary_warns_where_the_shipped_policy_is_above_the_best_baseline(
    tmp_path: Path,
) -> None:
    """`lsched train` ends with the validation of what it ships; a policy above the best
    baseline somewhere says so and points at the margin rule (a user's fine-tuned policy was
    13.6% worse than `tuned` and the run said only where it wrote the file)."""
    from lsched.learn.summary import training_summary

    metrics = tmp_path / "metrics.jsonl"
    evals = [(1, {"a": 0.02, "b": -0.01}), (2, {"a": 0.136, "b": 0.01})]
    metrics.write_text(
        "".join(
            json.dumps(
                {
                    "iteration": i,
                    "eval": {k: {"vs_best": v} for k, v in ratios.items()},
                    "eval_score": sum(ratios.values()) / 2,
                }
            )
            + "\n"
            for i, ratios in evals
        )
    )
    head, warning = training_summary(metrics)
    assert head.endswith("(iteration 1, the best validated): a +2.00%, b -1.00%")
    assert warning.startswith("warning: above the best baseline on a; --set 'margin_grid=")
    text = metrics.read_text()
    for key in ("16.0", "16"):  # a margin from the command line, or from a config in code
        row = {"vs_best": {"a": 0.0, "b": -0.003}}
        chosen = {"chosen": 16.0, "seeds": 4, "margins": {"8.0": {}, key: row}}
        metrics.write_text(text + json.dumps({"iteration": 2, "margin": chosen}) + "\n")
        assert training_summary(metrics) == [
            "validation against the best baseline (deviation margin 16, chosen on 4 validation "
            "workloads): a +0.00%, b -0.30%"
        ]
