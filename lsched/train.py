"""Training the LSched policy: REINFORCE with Decima's input-dependent baseline.

First, optionally, a warm start: the policy clones a teacher heuristic (`imitate`, by default
the `tuned` agent) on training workloads, so policy gradient refines a good schedule instead of
discovering one from random play — the 2-core budget allows only ~100 iterations. Or `init`
loads a trained policy instead (fine-tuning it, e.g. the shipped one on a user's workload).
Then one iteration, read top to bottom:
1. For each of `workloads_per_iteration` groups, draw a training workload (a seed from the
   scenario's training range, never an evaluation seed) and an episode of K queries, K growing
   with the curriculum: it ends at the K-th arrival, or once all K finish when they arrive at
   once (`episode_end`).
2. Roll the current policy out `rollouts_per_workload` times on that workload, each with its own
   sampling draws (`rollout_group`, in a worker process). By default the rollouts also share
   the execution noise (every task's duration): common random numbers, so what differs between
   them is only the policy's own decisions (`shared_execution`).
3. Reward is minus the time queries spend in the system: a decision at time t earns the
   return-to-go −∫_t^T N(s) ds, N(s) the queries in system. Its baseline is the mean of the
   *other rollouts'* return-to-go at the same time t (the same arrivals and, by default, the
   same durations, so what differs is the schedule: Decima's input-dependent baseline).
   Advantages are normalised per group.
4. The worker turns (advantage, log π) into a gradient with an entropy bonus; the learner averages
   the groups' gradients, clips, and takes one Adam step.
Every `checkpoint_every` iterations an atomic checkpoint (weights, optimizer, RNG state) is written;
`resume=True` continues from it and ends with the same weights an uninterrupted run would: all
randomness of iteration i is derived from (seed, i), never from state carried between iterations.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import (
    INPUT_VERSION,
    LearnedScheduler,
    Recorder,
    Step,
    feature_sizes,
    limits_of,
)
from agents.learned.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    git_revision,
    load_checkpoint,
    read_document,
    save_checkpoint,
)
from agents.learned.factory import PRETRAINED, build_guide
from agents.learned.policy import WAIT_ACTION, Policy, PolicyConfig, collate
from lsched.backends import Backend, LocalBackend
from lsched.errors import LschedError
from lsched.io import atomic_write_text
from lsched.scenario import Scenario, load_scenario
from sim.engine import Simulation
from sim.interface import Scheduler


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting (CleanRL style): change one here, or on `lsched train --set`.

    The defaults are the recipe that trained the shipped policy (55 minutes on 2 cores).
    """

    seed: int = 0
    """Everything random in a run derives from (seed, iteration): same seed, same policy."""
    iterations: int = 400
    """Policy-gradient steps."""
    workloads_per_iteration: int = 4
    """Training workloads (groups) per step; scenarios are visited round-robin."""
    rollouts_per_workload: int = 4
    """Rollouts of each workload: the baseline's sample size."""
    shared_execution: bool = True
    """The rollouts of a group share the execution seed (task durations) as well as the
    workload, so the baseline conditions on the whole exogenous input (Mao et al., ICLR 2019)
    and an advantage measures the policy's decisions only. With a seed each, a behaviour-cloned,
    nearly deterministic policy gets advantages that are mostly duration noise: 40 iterations
    changed none of its greedy validation schedules."""
    workers: int = 0
    """Rollout processes; 0: one per CPU core. 1 runs in this process (no pool)."""
    learning_rate: float = 2e-4
    """Policy-gradient step size. With advantages on shared durations (`shared_execution`) the
    shipped run at 2e-4 improved validation from +0.57% (cloned) to -0.16% in 64 iterations and
    then drifted (+0.8% at 138): the run ships its best-validated iteration. With a duration
    seed per rollout, 5e-5 changed nothing and 3e-4 drifted from the first validation."""
    max_grad_norm: float = 1.0
    entropy_start: float = 0.001
    """Weight of the entropy bonus at iteration 0 ..."""
    entropy_end: float = 0.0001
    """... decayed geometrically to this at `entropy_decay_iterations`, then kept."""
    entropy_decay_iterations: int = 40
    curriculum_start_queries: int = 100
    """Episode horizon at iteration 0: the arrival time of this many queries ..."""
    curriculum_end_queries: int = 200
    """... growing linearly to this at `curriculum_iterations` (capped by the workload's size)."""
    curriculum_iterations: int = 30
    episode_end: str = "auto"
    """Where an episode of K queries ends: "arrival" at the K-th query's arrival (later
    arrivals left out), "finish" once the first K queries have all finished, "auto" "finish"
    when those K arrive at once (batch scenarios: the K-th arrival is t = 0, so the episode
    would end before its first decision, and tpch-batch trained on nothing) and "arrival"
    otherwise."""
    horizon_jitter: float = 0.3
    """Each group's K is drawn uniformly within ±this fraction of the curriculum's K, so the
    policy never learns one fixed episode end."""
    checkpoint_every: int = 5
    """Iterations between checkpoints (and always after the last)."""
    eval_every: int = 8
    """Iterations between greedy evaluations on validation seeds (0: never)."""
    eval_seeds: int = 2
    """Validation workloads per scenario, from the training range past every rollout seed."""
    eval_max_queries: int | None = 150
    """Evaluate on the first queries of each validation workload only (None: all of them)."""
    baselines: tuple[str, ...] = ("fifo", "sjf", "srpt", "fair", "cpf", "tuned")
    """Heuristics the progress report compares against (simulated once, on the same seeds)."""
    workload_features: bool = True
    """False zeroes the workload features (template history, arrival rate, time of day): the
    ablation that shows what they provide."""
    time_limit_s: float | None = 3300.0
    """Stop (with a checkpoint) after this much training wall time, whatever `iterations` says."""
    guide: str | None = "tuned"
    """Heuristic whose current proposal the policy sees as an input (residual learning: the
    policy learns where to deviate from it). Stored in the checkpoint; None: no guide."""
    imitate: str | None = "tuned"
    """Warm start: before policy gradient, clone this agent's decisions (behaviour cloning) on
    training workloads, so RL starts from a good heuristic instead of random play. None: off."""
    init: str | None = None
    """Warm start from this policy file instead of cloning `imitate` ("lsched": the shipped
    policy), to fine-tune a trained policy on your own workload. Its network sizes, guide and
    `workload_features` must match this run's settings. Use a smaller `learning_rate` on one
    scenario: fine-tuning on tpch-streaming alone at 2e-4 went from -1.5% to +6.1% against the
    best baseline within 4 iterations, while 5e-5 improved validation steadily."""
    imitation_workloads: int = 2
    """Teacher episodes per scenario for the warm start."""
    imitation_epochs: int = 4
    """Passes over the teacher's decisions."""
    imitation_learning_rate: float = 9e-4
    """Adam step size of behaviour cloning."""
    imitation_max_queries: int | None = 150
    """First queries of each teacher episode (None: all)."""
    limit_levels: int = 10
    """Parallelism levels of the limit head (agents.learned.policy.limit_for_level)."""
    hidden: int = 32
    embed: int = 16
    rounds: int = 6
    learn_batch_decisions: int = 512
    """Decisions per forward/backward chunk when a worker recomputes log-probabilities."""

    def entropy_weight(self, iteration: int) -> float:
        if self.entropy_decay_iterations <= 0:
            return self.entropy_end
        fraction = min(iteration / self.entropy_decay_iterations, 1.0)
        return self.entropy_start * (self.entropy_end / self.entropy_start) ** fraction

    def horizon_queries(self, iteration: int) -> float:
        if self.curriculum_iterations <= 0:
            return float(self.curriculum_end_queries)
        fraction = min(iteration / self.curriculum_iterations, 1.0)
        start, end = self.curriculum_start_queries, self.curriculum_end_queries
        return start + (end - start) * fraction


class TrainError(LschedError):
    """Training cannot start or resume as asked (bad settings, an unusable output folder)."""


ProgressCallback = Callable[[Mapping[str, Any]], None]
"""Called once per iteration with that iteration's metrics (the JSONL record)."""

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
"""The policy with the best validation score so far (when evaluation is on)."""
POLICY_FILE = "policy.pt"
"""The final weights without optimizer state: what `lsched:PATH` loads."""

SEED_STREAM_GROUP = 11
SEED_STREAM_SAMPLE = 12
SEED_STREAM_IMITATION = 13
"""SeedSequence keys of a run's per-iteration streams (workload choice, policy sampling)."""


# --------------------------------------------------------------------------- rollouts
@dataclass(frozen=True)
class RolloutTask:
    """One group's work: plain data, so a process pool or Ray can ship it."""

    weights: dict[str, torch.Tensor]
    policy: PolicyConfig
    scenario: str
    workload_seed: int
    execution_seeds: tuple[int, ...]
    sample_seeds: tuple[tuple[int, ...], ...]
    """SeedSequence entropy of each rollout's sampling Generator."""
    horizon_queries: int
    entropy_weight: float
    workload_features: bool = True
    learn_batch_decisions: int = 512
    guide: str | None = None
    episode_end: str = "auto"
    """TrainConfig.episode_end."""


EPISODE_ENDS = ("auto", "arrival", "finish")
"""How an episode of K queries ends (TrainConfig.episode_end)."""


def episode_drains(episode_end: str, first_arrivals_s: np.ndarray) -> bool:
    """Whether an episode over queries arriving at `first_arrivals_s` (the first K, sorted)
    runs until they all finish rather than ending at the K-th arrival: always for "finish",
    never for "arrival", and for "auto" when all K arrive at once (a batch), where the K-th
    arrival would end the episode before its first decision."""
    if episode_end == "auto":
        return len(first_arrivals_s) > 0 and first_arrivals_s[-1] <= first_arrivals_s[0]
    return episode_end == "finish"


@dataclass(frozen=True)
class RolloutResult:
    """What a group sends back: its gradient and a few figures."""

    gradient: list[np.ndarray]
    decisions: int
    horizon_s: float
    queries: int
    """Queries arrived by the horizon."""
    finished: float
    """Mean over rollouts of the queries finished by the horizon."""
    time_in_system_s: float
    """Mean over rollouts of ∫_0^T N(s) ds (minus the return)."""
    mean_latency_s: float
    """Mean over rollouts of the mean latency of queries finished by the horizon."""
    entropy: float
    wall_s: float


@cache
def _scenario(name: str) -> Scenario:
    return load_scenario(name)


def _guide(scenario: Scenario, name: str | None) -> Scheduler | None:
    """A fresh guide heuristic for `scenario` (tuning, if any, is shared within the process)."""
    if name is None:
        return None
    from lsched.runner import agent_context

    return build_guide(name, agent_context(scenario))


def rollout_group(task: RolloutTask) -> RolloutResult:
    """Roll out one workload several times and return the policy gradient of the group.

    A plain function of plain data (weights, scenario name, seeds): a worker process or a Ray
    task can run it. Deterministic: the same task gives the same gradient bit for bit.
    """
    started = time.perf_counter()
    torch.set_num_threads(1)
    scenario = _scenario(task.scenario)
    queries = scenario.queries(task.workload_seed)
    arrivals = np.sort(np.array([q.arrival_s for q in queries], dtype=float))
    count = min(task.horizon_queries, len(arrivals))
    horizon_s = float(arrivals[count - 1]) if count else 0.0
    drain = episode_drains(task.episode_end, arrivals[:count])
    if drain:  # the first K queries, run until every one of them has finished
        kept = sorted(queries, key=lambda q: (q.arrival_s, q.query_id))[:count]
        arrivals = arrivals[:count]
        horizon_s = math.inf
    else:  # queries that arrive after the horizon would never be seen: leave them out
        kept = [q for q in queries if q.arrival_s <= horizon_s]
    policy = Policy(task.policy)
    policy.load_state_dict(task.weights)
    policy.eval()

    records: list[Recorder] = []
    completions = []
    for execution_seed, sample_seed in zip(task.execution_seeds, task.sample_seeds, strict=True):
        recorder = Recorder()
        scheduler = LearnedScheduler(
            policy,
            limits_of(scenario.env),
            rng=np.random.default_rng(list(sample_seed)),
            recorder=recorder,
            workload_features=task.workload_features,
            guide=_guide(scenario, task.guide),
        )
        simulation = Simulation(
            kept,
            scenario.cluster,
            scenario.execution_rng(execution_seed),
            oracle=scenario.oracle,
            record_tasks=False,
        )
        scheduler.reset(scenario.cluster)
        observation = simulation.advance()
        while observation is not None and observation.now_s < horizon_s:
            simulation.apply(scheduler.decide(observation))
            observation = simulation.advance()
        completions.append(simulation.completed)
        records.append(recorder)
    if drain:  # the group's common end: every rollout has emptied the system by then
        horizon_s = max((c.finish_s for done in completions for c in done), default=0.0)
    curves: list[tuple[np.ndarray, np.ndarray]] = []
    latencies: list[float] = []
    finished: list[int] = []
    for completed in completions:
        done = [c for c in completed if c.finish_s <= horizon_s]
        finishes = np.array([c.finish_s for c in done], dtype=float)
        curves.append((arrivals[:count], finishes))
        latencies.append(float(np.mean([c.latency_s for c in done])) if done else 0.0)
        finished.append(len(done))

    totals = [time_in_system_s(horizon_s, a, f) for a, f in curves]
    advantages = []
    for index, recorder in enumerate(records):
        times = np.array(recorder.times_s, dtype=float)
        mine = return_to_go(times, horizon_s, *curves[index])
        others = [return_to_go(times, horizon_s, *c) for j, c in enumerate(curves) if j != index]
        baseline = np.mean(others, axis=0) if others else np.zeros_like(mine)
        advantages.append(mine - baseline)
    flat = np.concatenate(advantages) if advantages else np.zeros(0)
    scale = float(flat.std()) if flat.size > 1 else 0.0
    gradient, entropy = _policy_gradient(
        policy,
        records,
        [a / (scale + 1e-8) if scale > 0 else np.zeros_like(a) for a in advantages],
        task.entropy_weight,
        task.learn_batch_decisions,
    )
    return RolloutResult(
        gradient=gradient,
        decisions=int(flat.size),
        horizon_s=horizon_s,
        queries=count,
        finished=float(np.mean(finished)),
        time_in_system_s=float(np.mean(totals)),
        mean_latency_s=float(np.mean(latencies)),
        entropy=entropy,
        wall_s=time.perf_counter() - started,
    )


def _policy_gradient(
    policy: Policy,
    records: Sequence[Recorder],
    advantages: Sequence[np.ndarray],
    entropy_weight: float,
    chunk: int,
) -> tuple[list[np.ndarray], float]:
    """∇ of −mean(A·log π) − β·mean(entropy) over all decisions of the group, in chunks."""
    steps = [(r, k) for r in records for k in range(len(r.times_s))]
    weights = np.concatenate(advantages) if advantages else np.zeros(0)
    total = len(steps)
    policy.zero_grad(set_to_none=False)
    entropy_sum = 0.0
    if total:
        policy.train()
        with torch.enable_grad():
            for start in range(0, total, chunk):
                part = steps[start : start + chunk]
                batch, chosen, levels, graph_of = collate(
                    [r.observations[k] for r, k in part],
                    [r.actions[k] for r, k in part],
                )
                log_pi, entropy = policy.log_probs(batch, chosen, levels, graph_of)
                advantage = torch.as_tensor(weights[start : start + len(part)], dtype=torch.float32)
                loss = -(advantage * log_pi).sum() / total - entropy_weight * entropy.sum() / total
                loss.backward()
                entropy_sum += float(entropy.detach().sum())
        policy.eval()
    gradient = [
        (p.grad.detach().numpy().copy() if p.grad is not None else np.zeros(p.shape, np.float32))
        for p in policy.parameters()
    ]
    return gradient, entropy_sum / max(total, 1)


# --------------------------------------------------------------------------- rewards
def time_in_system_s(at_s: float, arrivals_s: np.ndarray, finishes_s: np.ndarray) -> float:
    """∫_0^t N(s) ds at t = `at_s`: query-seconds spent in the system up to then."""
    return float(integral_in_system(np.array([at_s]), arrivals_s, finishes_s)[0])


def integral_in_system(
    times_s: np.ndarray, arrivals_s: np.ndarray, finishes_s: np.ndarray
) -> np.ndarray:
    """F(t) = ∫_0^t N(s) ds for each t, N(s) = arrivals by s − finishes by s (sorted inputs
    not needed). Σ_a (t−a)⁺ − Σ_f (t−f)⁺ with prefix sums: O((T + Q) log Q)."""
    return _ramp_sum(times_s, arrivals_s) - _ramp_sum(times_s, finishes_s)


def _ramp_sum(times_s: np.ndarray, points_s: np.ndarray) -> np.ndarray:
    """Σ_p max(t − p, 0) for each t."""
    if points_s.size == 0:
        return np.zeros(len(times_s))
    ordered = np.sort(points_s)
    prefix = np.concatenate(([0.0], np.cumsum(ordered)))
    count = np.searchsorted(ordered, times_s, side="right")
    return count * times_s - prefix[count]


def return_to_go(
    times_s: np.ndarray, horizon_s: float, arrivals_s: np.ndarray, finishes_s: np.ndarray
) -> np.ndarray:
    """−∫_t^T N(s) ds for each decision time t: the reward still to come until the horizon."""
    at_end = time_in_system_s(horizon_s, arrivals_s, finishes_s)
    return -(at_end - integral_in_system(np.asarray(times_s, float), arrivals_s, finishes_s))


# --------------------------------------------------------------------------- warm start
@dataclass(frozen=True)
class ImitationTask:
    scenario: str
    teacher: str
    seed: int
    max_queries: int | None
    workload_features: bool = True
    limit_levels: int = 10
    guide: str | None = None


def teacher_episode(task: ImitationTask) -> tuple[list[Step], list[tuple[int, int]]]:
    """The teacher's decisions on one workload, as (policy input, action) pairs."""
    from lsched.runner import build_agent

    torch.set_num_threads(1)
    scenario = _scenario(task.scenario)
    teacher = build_agent(scenario, task.teacher)
    queries = sorted(scenario.queries(task.seed), key=lambda q: (q.arrival_s, q.query_id))
    if task.max_queries is not None:
        queries = queries[: task.max_queries]
    # The student only encodes (its policy is never asked), so any weights do.
    sizes = feature_sizes()
    student = LearnedScheduler(
        Policy(
            PolicyConfig(
                sizes.pipeline,
                sizes.query,
                sizes.global_,
                limit_levels=task.limit_levels,
            )
        ),
        limits_of(scenario.env),
        workload_features=task.workload_features,
        guide=teacher if task.guide == task.teacher else _guide(scenario, task.guide),
    )
    simulation = Simulation(
        queries,
        scenario.cluster,
        scenario.execution_rng(task.seed),
        oracle=scenario.oracle,
        record_tasks=False,
    )
    if student.guide is not teacher:
        teacher.reset(scenario.cluster)
    student.reset(scenario.cluster)
    steps: list[Step] = []
    actions: list[tuple[int, int]] = []
    observation = simulation.advance()
    while observation is not None:
        step, rows, cols = student.observe(observation)
        # A teacher that is also the guide has just decided on this observation: reuse that.
        decision = (
            student.guide_decision if student.guide is teacher else teacher.decide(observation)
        )
        action = student.action_of(decision, rows, cols)
        if action is not None and _copyable(step, action):
            steps.append(step)
            actions.append(action)
        simulation.apply(decision)
        observation = simulation.advance()
    return steps, actions


def _copyable(step: Step, action: tuple[int, int]) -> bool:
    """Whether the student could have taken the teacher's action (else it teaches nothing)."""
    pipeline, level = action
    if pipeline == WAIT_ACTION:
        return step.wait_ok and bool(step.candidate.any())
    return bool(step.candidate[pipeline]) and level >= step.min_level[pipeline]


def _imitate(
    config: TrainConfig,
    names: Sequence[str],
    policy: Policy,
    pool: Backend,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    """Behaviour cloning of the teacher: maximise log π(teacher's pipeline, level)."""
    assert config.imitate is not None
    started = time.perf_counter()
    tasks = [
        ImitationTask(
            name,
            config.imitate,
            _scenario(name).train_seed_offset + 200 + k,
            config.imitation_max_queries,
            config.workload_features,
            config.limit_levels,
            config.guide,
        )
        for name in names
        for k in range(config.imitation_workloads)
    ]
    episodes = pool.map(teacher_episode, tasks)
    steps = [s for episode, _ in episodes for s in episode]
    actions = [a for _, episode in episodes for a in episode]
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.imitation_learning_rate)
    batch_size = 256
    policy.train()
    losses = []
    for epoch in range(config.imitation_epochs):
        order = np.random.default_rng([config.seed, epoch, SEED_STREAM_IMITATION]).permutation(
            len(steps)
        )
        total = 0.0
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            batch, chosen, levels, graph_of = collate(
                [steps[k] for k in part], [actions[k] for k in part]
            )
            log_pi, _ = policy.log_probs(batch, chosen, levels, graph_of)
            loss = -log_pi.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            total += float(loss.detach()) * len(part)
        losses.append(total / max(len(steps), 1))
        if progress is not None:
            progress({"imitation_epoch": epoch + 1, "loss": losses[-1], "decisions": len(steps)})
    policy.eval()
    return {
        "teacher": config.imitate,
        "decisions": len(steps),
        "loss": losses,
        "wall_s": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class EvalTask:
    weights: dict[str, torch.Tensor] | None
    """Policy weights, or None to run the heuristic `agent` instead."""
    policy: PolicyConfig | None
    agent: str
    scenario: str
    seed: int
    max_queries: int | None
    workload_features: bool = True
    guide: str | None = None


def evaluate_one(task: EvalTask) -> float:
    """Mean latency of one (agent, scenario, training-range seed) run, to the end of the queries."""
    from lsched.runner import build_agent
    from sim.engine import simulate

    torch.set_num_threads(1)
    scenario = _scenario(task.scenario)
    queries = sorted(scenario.queries(task.seed), key=lambda q: (q.arrival_s, q.query_id))
    if task.max_queries is not None:
        queries = queries[: task.max_queries]
    if task.weights is not None and task.policy is not None:
        policy = Policy(task.policy)
        policy.load_state_dict(task.weights)
        policy.eval()
        scheduler: Any = LearnedScheduler(
            policy,
            limits_of(scenario.env),
            workload_features=task.workload_features,
            guide=_guide(scenario, task.guide),
        )
    else:
        scheduler = build_agent(scenario, task.agent)
    result = simulate(
        queries,
        scenario.cluster,
        scheduler,
        scenario.execution_rng(task.seed),
        oracle=scenario.oracle,
        record_tasks=False,
    )
    return result.mean_latency_s


# --------------------------------------------------------------------------- the loop
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
    _check_config(config)
    loaded = [_scenario(name) for name in scenarios]
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

    torch.manual_seed(config.seed)
    policy = Policy(policy_config)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    start_iteration = 0
    wall_before_s = 0.0
    baselines: dict[str, dict[str, float]] = {}
    if resume and checkpoint_path.exists():
        state = _resume(checkpoint_path, config, names, policy_config, policy, optimizer)
        start_iteration = state["iteration"]
        wall_before_s = float(state["wall_s"])
        baselines = state["baselines"]
        _truncate_metrics(metrics_path, start_iteration)
    else:
        if config.init is not None:
            _warm_start(config, policy_config, policy)
        if metrics_path.exists():
            metrics_path.unlink()  # a fresh run (or a resume killed before its first checkpoint)
    out.mkdir(parents=True, exist_ok=True)  # only once the run can start: nothing half-made

    best = {"score": math.inf, "iteration": -1}
    if resume and checkpoint_path.exists():
        best = dict(read_document(checkpoint_path)["training"].get("best") or best)

    def save(iteration: int, wall_s: float) -> None:
        info = _info(policy_config, limits, names, iteration, config, wall_s, baselines)
        training = {
            "iteration": iteration,
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": _config_document(config),
            "wall_s": wall_s,
            "baselines": baselines,
            "best": dict(best),
        }
        save_checkpoint(checkpoint_path, policy, info, training)

    def evaluate(record: dict[str, Any], iteration: int, wall_s: float) -> None:
        """Greedy validation; the best policy so far (mean latency / best baseline's, averaged
        over scenarios) is kept as best.pt, the file the run finally ships."""
        record["eval"] = report = _evaluate(config, loaded, policy, policy_config, pool, baselines)
        ratios = [entry["vs_best"] for entry in report.values() if "vs_best" in entry]
        score = float(np.mean(ratios)) if ratios else math.inf
        record["eval_score"] = score
        if score < best["score"]:
            best.update(score=score, iteration=iteration)
            info = _info(policy_config, limits, names, iteration, config, wall_s, baselines)
            save_checkpoint(out / BEST_FILE, policy, info)

    pool = backend if backend is not None else LocalBackend(config.workers)
    board = _Board(out)
    try:
        started = time.perf_counter()
        if not baselines and config.eval_every > 0:
            baselines = _baseline_latencies(config, loaded, pool)
        if start_iteration == 0 and (config.init is not None or config.imitate is not None):
            record: dict[str, Any] = {"iteration": 0}
            if config.init is not None:
                record["init"] = config.init
            else:
                record["imitation"] = _imitate(config, names, policy, pool, progress)
            wall_s = time.perf_counter() - started
            if config.eval_every > 0:
                evaluate(record, 0, wall_s)
            record["wall_s"] = round(time.perf_counter() - started, 3)
            _append_metrics(metrics_path, record)
            board.write(record)
            if progress is not None:
                progress(record)
            save(0, time.perf_counter() - started)
        iteration = start_iteration
        while iteration < config.iterations:
            tasks = _iteration_tasks(config, names, loaded, policy, policy_config, iteration)
            results = pool.map(rollout_group, tasks)
            _apply_gradients(policy, optimizer, results, config.max_grad_norm)
            iteration += 1
            wall_s = wall_before_s + time.perf_counter() - started
            over_time = config.time_limit_s is not None and wall_s >= config.time_limit_s
            last = iteration == config.iterations or over_time
            record = _metrics(config, iteration, results, wall_s)
            if config.eval_every > 0 and (iteration % config.eval_every == 0 or last):
                evaluate(record, iteration, wall_s)
            _append_metrics(metrics_path, record)
            board.write(record)
            if progress is not None:
                progress(record)
            if iteration % config.checkpoint_every == 0 or last:
                save(iteration, wall_before_s + time.perf_counter() - started)
            if over_time:
                break
    finally:
        board.close()
        if backend is None:
            pool.close()
    document = read_document(checkpoint_path)
    chosen = out / BEST_FILE if (out / BEST_FILE).exists() else checkpoint_path
    final, chosen_info, _ = load_checkpoint(chosen, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    info = _info(
        policy_config,
        limits,
        names,
        chosen_info.iterations,
        config,
        float(document["training"]["wall_s"]),
        baselines,
    )
    return save_checkpoint(out / POLICY_FILE, final, info)


def _check_policy_config(path: Path, saved: PolicyConfig, run: PolicyConfig) -> None:
    """A file's weights fit this run's network only if every size matches; name those that don't."""
    theirs, ours = saved.to_dict(), run.to_dict()
    differ = [
        f"{key} {theirs[key]} (this run: {ours[key]})" for key in ours if theirs[key] != ours[key]
    ]
    if differ:
        raise CheckpointError(f"{path}: policy_config: {', '.join(differ)}; --set them to match")


def _warm_start(config: TrainConfig, policy_config: PolicyConfig, policy: Policy) -> None:
    """Load `config.init`'s weights into `policy`, refusing a file this run could not continue."""
    assert config.init is not None
    path = PRETRAINED if config.init == "lsched" else Path(config.init)
    saved, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    _check_policy_config(path, info.policy_config, policy_config)
    for key in ("guide", "workload_features"):
        value = getattr(info, key)
        if value != getattr(config, key):
            raise CheckpointError(
                f"{path}: {key}: trained with {value!r}, this run has "
                f"{getattr(config, key)!r}; --set {key} to match"
            )
    policy.load_state_dict(saved.state_dict())


def _check_config(config: TrainConfig) -> None:
    checks = {
        "iterations": config.iterations >= 1,
        "workloads_per_iteration": config.workloads_per_iteration >= 1,
        "rollouts_per_workload": config.rollouts_per_workload >= 2,
        "workers": config.workers >= 0,
        "learning_rate": config.learning_rate > 0,
        "imitation_learning_rate": config.imitation_learning_rate > 0,
        "checkpoint_every": config.checkpoint_every >= 1,
        "curriculum_start_queries": config.curriculum_start_queries >= 1,
        "curriculum_end_queries": config.curriculum_end_queries >= config.curriculum_start_queries,
        "entropy_start": config.entropy_start > 0,
        "entropy_end": config.entropy_end > 0,
        "horizon_jitter": 0 <= config.horizon_jitter < 1,
        "episode_end": config.episode_end in EPISODE_ENDS,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise TrainError(f"train settings: invalid value of {', '.join(bad)}")
    if config.guide is not None:
        from agents.registry import AGENTS

        if config.guide not in AGENTS or config.guide.startswith("lsched"):
            heuristics = ", ".join(sorted(n for n in AGENTS if not n.startswith("lsched")))
            raise TrainError(
                f"train settings: guide {config.guide!r} is not a heuristic agent "
                f"(choose one of {heuristics}, or null)"
            )


def _iteration_tasks(
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
        # Training seeds: [offset + 1000, ...), leaving offset..offset+999 to tuning and eval.
        workload_seed = scenario.train_seed_offset + 1000 + int(rng.integers(0, 10**9))
        low = max(1, int(mean_k * (1 - config.horizon_jitter)))
        high = max(low, int(mean_k * (1 + config.horizon_jitter)))
        horizon = int(rng.integers(low, high + 1))
        rollouts = config.rollouts_per_workload
        execution = tuple(
            scenario.train_seed_offset + 1000 + int(s) for s in rng.integers(0, 10**9, rollouts)
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
                workload_features=config.workload_features,
                learn_batch_decisions=config.learn_batch_decisions,
                guide=config.guide,
                episode_end=config.episode_end,
            )
        )
    return tasks


def _apply_gradients(
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


def _metrics(
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


def _validation_seeds(scenario: Scenario, count: int) -> list[int]:
    """Training-range seeds no rollout draws (rollouts use offset+1000 and above)."""
    return [scenario.train_seed_offset + 500 + k for k in range(count)]


def _baseline_latencies(
    config: TrainConfig, loaded: Sequence[Scenario], pool: Backend
) -> dict[str, dict[str, float]]:
    tasks = [
        EvalTask(None, None, agent, s.source, seed, config.eval_max_queries)
        for s in loaded
        for agent in config.baselines
        for seed in _validation_seeds(s, config.eval_seeds)
    ]
    values = pool.map(evaluate_one, tasks)
    table: dict[str, dict[str, list[float]]] = {}
    for task, value in zip(tasks, values, strict=True):
        name = _scenario(task.scenario).name
        table.setdefault(name, {}).setdefault(task.agent, []).append(value)
    return {s: {a: float(np.mean(v)) for a, v in agents.items()} for s, agents in table.items()}


def _evaluate(
    config: TrainConfig,
    loaded: Sequence[Scenario],
    policy: Policy,
    policy_config: PolicyConfig,
    pool: Backend,
    baselines: Mapping[str, Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """Greedy mean latency per scenario next to the best baseline's (lower is better)."""
    weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    tasks = [
        EvalTask(
            weights,
            policy_config,
            "lsched",
            s.source,
            seed,
            config.eval_max_queries,
            config.workload_features,
            config.guide,
        )
        for s in loaded
        for seed in _validation_seeds(s, config.eval_seeds)
    ]
    values = pool.map(evaluate_one, tasks)
    report: dict[str, dict[str, float]] = {}
    for s in loaded:
        mine = [v for t, v in zip(tasks, values, strict=True) if t.scenario == s.source]
        entry = {"mean_latency_s": float(np.mean(mine))}
        known = baselines.get(s.name, {})
        if known:
            best_agent = min(known, key=known.__getitem__)
            entry["best_baseline_s"] = known[best_agent]
            entry["vs_best"] = entry["mean_latency_s"] / known[best_agent] - 1.0
        report[s.name] = entry
    return report


def _info(
    policy_config: PolicyConfig,
    limits: Any,
    names: Sequence[str],
    iteration: int,
    config: TrainConfig,
    wall_s: float,
    baselines: Mapping[str, Any],
) -> CheckpointInfo:
    return CheckpointInfo(
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        policy_config=policy_config,
        observation_limits=limits.to_dict(),
        scenarios=tuple(names),
        iterations=iteration,
        git_revision=git_revision(),
        extra={
            "train_config": _config_document(config),
            "train_wall_s": wall_s,
            "workload_features": config.workload_features,
            "guide": config.guide,
            "input_version": INPUT_VERSION,
        },
    )


def _config_document(config: TrainConfig) -> dict[str, Any]:
    document = asdict(config)
    document["baselines"] = list(config.baselines)
    return document


_RESUMABLE_DIFFERENCES = frozenset({"iterations", "workers", "time_limit_s", "eval_every"})
"""Settings a resumed run may change without changing what an iteration computes."""


def _resume(
    path: Path,
    config: TrainConfig,
    names: Sequence[str],
    policy_config: PolicyConfig,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    saved, info, document = load_checkpoint(path, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    training = document.get("training")
    if not isinstance(training, dict):
        raise CheckpointError(f"{path}: training: no optimizer state (a final policy, not a run)")
    _check_policy_config(path, info.policy_config, policy_config)
    if tuple(info.scenarios) != tuple(names):
        raise CheckpointError(
            f"{path}: scenarios: trained on {', '.join(info.scenarios)}, asked {', '.join(names)}"
        )
    now = _config_document(config)
    changed = sorted(
        key
        for key, value in training["config"].items()
        if now.get(key) != value and key not in _RESUMABLE_DIFFERENCES
    )
    if changed:
        raise CheckpointError(f"{path}: config: resumed with different {', '.join(changed)}")
    policy.load_state_dict(saved.state_dict())
    optimizer.load_state_dict(training["optimizer"])
    torch.set_rng_state(training["torch_rng"])
    return {
        "iteration": int(training["iteration"]),
        "wall_s": float(training["wall_s"]),
        "baselines": training.get("baselines") or {},
    }


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop lines past the checkpoint: they will be recomputed, identically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by the kill: everything after it is gone anyway
        if record.get("iteration", 0) <= iteration:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def _append_metrics(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class _Board:
    """TensorBoard scalars next to metrics.jsonl, only when tensorboard is installed."""

    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the optional tensorboard package
            self._writer = None
        else:
            self._writer = SummaryWriter(str(out / "tensorboard"))

    def write(self, record: Mapping[str, Any]) -> None:
        if self._writer is None:
            return
        step = int(record["iteration"])
        for key, value in record.items():
            if isinstance(value, int | float) and key != "iteration":
                self._writer.add_scalar(f"train/{key}", value, step)
        for scenario, entry in (record.get("eval") or {}).items():
            for key, value in entry.items():
                self._writer.add_scalar(f"eval/{scenario}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


__all__ = [
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "POLICY_FILE",
    "RolloutResult",
    "RolloutTask",
    "TrainConfig",
    "TrainError",
    "integral_in_system",
    "return_to_go",
    "rollout_group",
    "train",
]


def config_from_settings(items: Sequence[str], base: TrainConfig | None = None) -> TrainConfig:
    """A TrainConfig from `FIELD=VALUE` strings (VALUE as JSON, else a plain string).

    What `--set` on the command line feeds; unknown fields and bad values raise TrainError.
    """
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in TrainConfig.__dataclass_fields__:
            known = ", ".join(TrainConfig.__dataclass_fields__)
            raise TrainError(f"train setting {item!r}: expected FIELD=VALUE with FIELD in {known}")
        try:
            settings[key] = json.loads(text)
        except json.JSONDecodeError:
            settings[key] = text
    if isinstance(settings.get("baselines"), list):
        settings["baselines"] = tuple(settings["baselines"])
    try:
        config = replace(base or TrainConfig(), **settings)
    except TypeError as error:
        raise TrainError(f"train settings: {error}") from None
    _check_config(config)
    return config


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m lsched.train OUT SCENARIO... [--set FIELD=VALUE]... [--resume]`.

    A stop-gap entry until `lsched train` wraps `train()`; FIELD is any TrainConfig field,
    VALUE parsed as JSON (falling back to a string).
    """
    import argparse
    import signal
    import sys

    # A kill (SIGTERM) unwinds like an exception, so the worker pool is terminated too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(prog="python -m lsched.train", description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("scenarios", nargs="+")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    config = config_from_settings(args.set)

    def show(record: Mapping[str, Any]) -> None:
        print(json.dumps(record, allow_nan=False), flush=True)

    print(train(config, args.scenarios, args.out, args.resume, show))


if __name__ == "__main__":
    main()
