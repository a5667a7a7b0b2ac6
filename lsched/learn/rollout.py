"""One group of rollouts: a workload rolled out several times under the current policy, its
rewards (minus the time queries spend in the system) and the policy gradient it gives.

`rollout_group` is a plain function of plain data (weights, scenario name, seeds), so a worker
process or a Ray task can run it; the same task gives the same gradient bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from agents.learned.agent import LearnedScheduler, PolicyOptions, Recorder, limits_of
from agents.learned.factory import build_guide
from agents.learned.policy import Policy, PolicyConfig, collate
from lsched.scenario import Scenario, load_scenario
from sim.engine import Simulation
from sim.interface import Scheduler


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
    options: PolicyOptions = field(default_factory=PolicyOptions)
    learn_batch_decisions: int = 512
    guide: str | None = None
    episode_end: str = "auto"
    """TrainConfig.episode_end."""


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
def scenario_named(name: str) -> Scenario:
    return load_scenario(name)


def guide_for(scenario: Scenario, name: str | None) -> Scheduler | None:
    """A fresh guide heuristic for `scenario` (tuning, if any, is shared within the process)."""
    if name is None:
        return None
    from lsched.runner import agent_context

    return build_guide(name, agent_context(scenario))


def learned_scheduler(
    scenario: Scenario,
    policy: Policy,
    *,
    options: PolicyOptions,
    guide: str | Scheduler | None,
    rng: np.random.Generator | None = None,
    recorder: Recorder | None = None,
) -> LearnedScheduler:
    """The learned scheduler as `lsched run` builds it for `scenario` (its limits, its
    scalability prior, a fresh guide), for rollouts, teacher encodings and validation."""
    from lsched.runner import agent_context

    return LearnedScheduler(
        policy,
        limits_of(scenario.env),
        rng=rng,
        recorder=recorder,
        options=options,
        scalability=agent_context(scenario).scalability,
        guide=guide_for(scenario, guide) if isinstance(guide, str) else guide,
    )


def rollout_group(task: RolloutTask) -> RolloutResult:
    """Roll out one workload several times and return the policy gradient of the group.

    A plain function of plain data (weights, scenario name, seeds): a worker process or a Ray
    task can run it. Deterministic: the same task gives the same gradient bit for bit.
    """
    started = time.perf_counter()
    torch.set_num_threads(1)
    scenario = scenario_named(task.scenario)
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
        scheduler = learned_scheduler(
            scenario,
            policy,
            rng=np.random.default_rng(list(sample_seed)),
            recorder=recorder,
            options=task.options,
            guide=task.guide,
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
    gradient, entropy = policy_gradient(
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


def policy_gradient(
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
