"""The training loop, read top to bottom in `train`: warm start, then iterations of rollouts,
one Adam step on the groups' mean gradient, metrics, validation and checkpoints."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import INPUT_VERSION, PolicyOptions, feature_sizes, limits_of
from agents.learned.checkpoint import load_checkpoint, read_document, save_checkpoint
from agents.learned.factory import cached_policy
from agents.learned.policy import Policy, PolicyConfig
from lsched.backends import Backend, LocalBackend
from lsched.errors import ScenarioError
from lsched.io import LEARNING_CURVE_FILE
from lsched.learn.config import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    POLICY_FILE,
    SEED_STREAM_GROUP,
    SEED_STREAM_SAMPLE,
    ProgressCallback,
    TrainConfig,
    TrainError,
    check_config,
    config_document,
)
from lsched.learn.evaluation import Workloads, baseline_latencies, evaluate_policy
from lsched.learn.imitation import imitate
from lsched.learn.margin import choose_margin, choose_query_margin
from lsched.learn.rollout import RolloutResult, RolloutTask, rollout_group, scenario_named
from lsched.learn.state import (
    BOARD_FOLDER,
    Board,
    append_metrics,
    checkpoint_info,
    resume_state,
    truncate_metrics,
    warm_start,
)
from lsched.scenario import Scenario


def train(
    config: TrainConfig,
    scenarios: Sequence[str],
    out: Path,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    backend: Backend | None = None,
) -> Path:
    """Train a policy on `scenarios`, writing metrics, checkpoints and the final policy to `out`.

    Returns the path of the final policy file (`out/policy.pt`). With `resume`, continues from
    `out/checkpoint.pt` (same settings required) and reproduces an uninterrupted run. Rollouts run
    on `backend` (default: `config.workers` local processes); results do not depend on it.
    """
    if not scenarios:
        raise TrainError("train: need at least one scenario")
    check_config(config)
    loaded = [scenario_named(name) for name in scenarios]
    # the margins' scenarios load now: a bad name is an error before training, not after it
    margin_loaded = [*loaded]
    for extra in _margin_scenarios(config, "margin_scenarios"):
        if all(extra.name != s.name for s in margin_loaded):
            margin_loaded.append(extra)
    query_margin_loaded = _margin_scenarios(config, "query_margin_scenarios")
    names = tuple(scenarios)
    limits = replace(limits_of(loaded[0].env), parallelism_levels=config.limit_levels)
    sizes = feature_sizes()
    policy_config = PolicyConfig(
        pipeline_features=sizes.pipeline,
        query_features=sizes.query,
        global_features=sizes.global_,
        limit_levels=config.limit_levels,
        hidden=config.hidden,
        embed=config.embed,
        rounds=config.rounds,
    )
    out = Path(out)
    checkpoint_path = out / CHECKPOINT_FILE
    metrics_path = out / METRICS_FILE
    check_out_folder(out, resume)

    torch.manual_seed(config.seed)
    policy = Policy(policy_config)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    start_iteration = 0
    wall_before_s = 0.0
    baselines: dict[str, dict[str, float]] = {}
    if resume and checkpoint_path.exists():
        state = resume_state(checkpoint_path, config, names, policy_config, policy, optimizer)
        start_iteration = state["iteration"]
        wall_before_s = float(state["wall_s"])
        baselines = state["baselines"]
        truncate_metrics(metrics_path, start_iteration)
    else:
        if config.init is not None:
            warm_start(config, policy_config, policy)
        if out.is_dir():  # a resume of a run killed before its first checkpoint
            _clear_training(out)
    out.mkdir(parents=True, exist_ok=True)  # only once the run can start: nothing half-made

    best = {"score": math.inf, "iteration": -1}
    if resume and checkpoint_path.exists():
        best = dict(read_document(checkpoint_path)["training"].get("best") or best)

    def save(iteration: int, wall_s: float) -> None:
        info = checkpoint_info(policy_config, limits, names, iteration, config, wall_s, baselines)
        training = {
            "iteration": iteration,
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": config_document(config),
            "wall_s": wall_s,
            "baselines": baselines,
            "best": dict(best),
        }
        save_checkpoint(checkpoint_path, policy, info, training)

    def evaluate(record: dict[str, Any], iteration: int, wall_s: float) -> None:
        """Greedy validation; the best policy so far (mean latency / best baseline's, averaged
        over scenarios) is kept as best.pt, the file the run finally ships."""
        record["eval"] = report = evaluate_policy(
            config, loaded, policy, policy_config, pool, baselines, Workloads.validation(config)
        )
        ratios = [entry["vs_best"] for entry in report.values() if "vs_best" in entry]
        score = float(np.mean(ratios)) if ratios else math.inf
        record["eval_score"] = score
        if score < best["score"]:
            best.update(score=score, iteration=iteration)
            info = checkpoint_info(
                policy_config, limits, names, iteration, config, wall_s, baselines
            )
            save_checkpoint(out / BEST_FILE, policy, info)

    pool = backend if backend is not None else LocalBackend(config.workers)
    board = Board(out)
    try:
        started = time.perf_counter()
        if not baselines and config.eval_every > 0:
            baselines = baseline_latencies(config, loaded, pool, Workloads.validation(config))
        if start_iteration == 0 and (config.init is not None or config.imitate is not None):
            record: dict[str, Any] = {"iteration": 0}
            if config.init is not None:
                record["init"] = config.init
            else:
                record["imitation"] = imitate(config, names, policy, pool, progress)
            wall_s = time.perf_counter() - started
            if config.eval_every > 0:
                evaluate(record, 0, wall_s)
            record["wall_s"] = round(time.perf_counter() - started, 3)
            append_metrics(metrics_path, record)
            board.write(record)
            if progress is not None:
                progress(record)
            save(0, time.perf_counter() - started)
        iteration = start_iteration
        while iteration < config.iterations:
            tasks = iteration_tasks(config, names, loaded, policy, policy_config, iteration)
            results = pool.map(rollout_group, tasks)
            apply_gradients(policy, optimizer, results, config.max_grad_norm)
            iteration += 1
            wall_s = wall_before_s + time.perf_counter() - started
            over_time = config.time_limit_s is not None and wall_s >= config.time_limit_s
            last = iteration == config.iterations or over_time
            record = iteration_metrics(config, iteration, results, wall_s)
            if config.eval_every > 0 and (iteration % config.eval_every == 0 or last):
                evaluate(record, iteration, wall_s)
            append_metrics(metrics_path, record)
            board.write(record)
            if progress is not None:
                progress(record)
            if iteration % config.checkpoint_every == 0 or last:
                save(iteration, wall_before_s + time.perf_counter() - started)
            if over_time:
                break
        chosen = out / BEST_FILE if (out / BEST_FILE).exists() else checkpoint_path
        final, chosen_info, _ = load_checkpoint(chosen, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
        shipped, margin_wall_s, margin_report = config, 0.0, None
        if config.margin_grid:
            margin_started = time.perf_counter()
            margin, margin_report = choose_margin(config, margin_loaded, final, policy_config, pool)
            margin_wall_s = time.perf_counter() - margin_started
            shipped = replace(config, deviation_margin=margin)
            record = {"iteration": iteration, "margin": margin_report}
            record["wall_s"] = round(wall_before_s + time.perf_counter() - started, 3)
            append_metrics(metrics_path, record)
            if progress is not None:
                progress(record)
    finally:
        board.close()
        if backend is None:
            pool.close()
    document = read_document(checkpoint_path)
    info = checkpoint_info(
        policy_config,
        limits,
        names,
        chosen_info.iterations,
        shipped,
        float(document["training"]["wall_s"]) + margin_wall_s,
        baselines,
    )
    if margin_report is not None:
        info = replace(info, extra={**info.extra, "margin": margin_report})
    path = save_checkpoint(out / POLICY_FILE, final, info)
    if config.query_margin_grid and query_margin_loaded:
        margin_started = time.perf_counter()
        query_margin, query_report = choose_query_margin(config, path, query_margin_loaded)
        wall_s = float(info.extra["train_wall_s"]) + time.perf_counter() - margin_started
        record = {"iteration": iteration, "query_margin": query_report, "wall_s": round(wall_s, 3)}
        append_metrics(metrics_path, record)
        if progress is not None:
            progress(record)
        extra = {
            **info.extra,
            "query_deviation_margin": query_margin,
            "query_margin": query_report,
            "train_wall_s": wall_s,
        }
        path = save_checkpoint(out / POLICY_FILE, final, replace(info, extra=extra))
        cached_policy.cache_clear()  # the file at `path` changed: reload its info
    return path


TRAINING_OUTPUTS = (
    METRICS_FILE,
    CHECKPOINT_FILE,
    BEST_FILE,
    POLICY_FILE,
    BOARD_FOLDER,
    LEARNING_CURVE_FILE,
)
"""What a training run and `lsched plot` write into its folder (a run killed early may have
left any of them; a curve drawn mid-run must not stop the resume)."""


def check_out_folder(out: Path, resume: bool) -> None:
    """Refuse, before anything starts, an `out` holding files a training run does not write
    (never ours to delete or to mix with), and, without `resume`, an earlier training run (half
    an hour's work, which a fresh run would delete). With `resume` a folder holding no
    checkpoint — new, empty, or a run killed before its first checkpoint — starts afresh."""
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [name for name in held if name not in TRAINING_OUTPUTS]
    if foreign:
        raise TrainError(
            f"{out}: --out holds files a training run does not write (e.g. {foreign[0]!r}); "
            "name a new or empty folder, or a training run's own"
        )
    if held and not resume:
        raise TrainError(
            f"{out}: --out holds a training run ({', '.join(held)}); --resume continues it, "
            "or name a new or empty folder"
        )


def _clear_training(out: Path) -> None:
    """What a run killed before its first checkpoint left: a fresh start must not pick up its
    best.pt or add to its curves."""
    for name in TRAINING_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _margin_scenarios(config: TrainConfig, field: str) -> list[Scenario]:
    """The scenarios a margin setting names, loaded; a bad one is a TrainError naming it."""
    try:
        return [scenario_named(name) for name in getattr(config, field)]
    except ScenarioError as error:
        raise TrainError(f"train settings: {field}: {error}") from None


def iteration_tasks(
    config: TrainConfig,
    names: Sequence[str],
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    iteration: int,
) -> list[RolloutTask]:
    """The groups of iteration `iteration`: every draw comes from (seed, iteration)."""
    rng = np.random.default_rng([config.seed, iteration, SEED_STREAM_GROUP])
    weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    mean_k = config.horizon_queries(iteration)
    tasks = []
    for group in range(config.workloads_per_iteration):
        which = (iteration * config.workloads_per_iteration + group) % len(names)
        scenario = loaded[which]
        first = scenario.train_seed_offset + config.rollout_seed_offset
        workload_seed = first + int(rng.integers(0, config.rollout_seed_span))
        low = max(1, int(mean_k * (1 - config.horizon_jitter)))
        high = max(low, int(mean_k * (1 + config.horizon_jitter)))
        horizon = int(rng.integers(low, high + 1))
        rollouts = config.rollouts_per_workload
        execution = tuple(
            first + int(s) for s in rng.integers(0, config.rollout_seed_span, rollouts)
        )
        if config.shared_execution:
            execution = (execution[0],) * rollouts
        samples = tuple(
            (config.seed, iteration, group, r, SEED_STREAM_SAMPLE) for r in range(rollouts)
        )
        tasks.append(
            RolloutTask(
                weights=weights,
                policy=policy_config,
                scenario=names[which],
                workload_seed=workload_seed,
                execution_seeds=execution,
                sample_seeds=samples,
                horizon_queries=horizon,
                entropy_weight=config.entropy_weight(iteration),
                options=PolicyOptions.of(config),
                learn_batch_decisions=config.learn_batch_decisions,
                guide=config.guide,
                episode_end=config.episode_end,
            )
        )
    return tasks


def apply_gradients(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    results: Sequence[RolloutResult],
    max_grad_norm: float,
) -> None:
    for index, parameter in enumerate(policy.parameters()):
        stacked = np.mean([r.gradient[index] for r in results], axis=0)
        parameter.grad = torch.as_tensor(stacked, dtype=parameter.dtype).reshape(parameter.shape)
    torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def iteration_metrics(
    config: TrainConfig, iteration: int, results: Sequence[RolloutResult], wall_s: float
) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "wall_s": round(wall_s, 3),
        "entropy_weight": config.entropy_weight(iteration - 1),
        "horizon_queries": float(np.mean([r.queries for r in results])),
        "decisions": int(sum(r.decisions for r in results)),
        "entropy": float(np.mean([r.entropy for r in results])),
        "rollout_mean_latency_s": float(np.mean([r.mean_latency_s for r in results])),
        "rollout_time_in_system_per_query_s": float(
            np.mean([r.time_in_system_s / max(r.queries, 1) for r in results])
        ),
        "rollout_wall_s": float(sum(r.wall_s for r in results)),
    }
