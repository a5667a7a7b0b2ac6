"""The warm start: behaviour cloning of a teacher heuristic (by default `tuned`) on training
workloads, so policy gradient refines a good schedule instead of discovering one from random
play (the 2-core budget allows only ~100 iterations)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.learned.agent import PolicyOptions, Step, feature_sizes
from agents.learned.policy import WAIT_ACTION, Policy, PolicyConfig, collate
from lsched.backends import Backend
from lsched.learn.config import SEED_STREAM_IMITATION, ProgressCallback, TrainConfig
from lsched.learn.rollout import learned_scheduler, scenario_named
from sim.engine import Simulation


@dataclass(frozen=True)
class ImitationTask:
    scenario: str
    teacher: str
    seed: int
    max_queries: int | None
    options: PolicyOptions = field(default_factory=PolicyOptions)
    limit_levels: int = 10
    guide: str | None = None


def teacher_episode(task: ImitationTask) -> tuple[list[Step], list[tuple[int, int]]]:
    """The teacher's decisions on one workload, as (policy input, action) pairs."""
    from lsched.runner import build_agent

    torch.set_num_threads(1)
    scenario = scenario_named(task.scenario)
    teacher = build_agent(scenario, task.teacher)
    queries = sorted(scenario.queries(task.seed), key=lambda q: (q.arrival_s, q.query_id))
    if task.max_queries is not None:
        queries = queries[: task.max_queries]
    # The student only encodes (its policy is never asked), so any weights do.
    sizes = feature_sizes()
    student = learned_scheduler(
        scenario,
        Policy(PolicyConfig(sizes.pipeline, sizes.query, sizes.global_, task.limit_levels)),
        options=task.options,
        guide=teacher if task.guide == task.teacher else task.guide,
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
        if action is not None and copyable(step, action):
            steps.append(step)
            actions.append(action)
        simulation.apply(decision)
        observation = simulation.advance()
    return steps, actions


def copyable(step: Step, action: tuple[int, int]) -> bool:
    """Whether the student could have taken the teacher's action (else it teaches nothing)."""
    pipeline, level = action
    if pipeline == WAIT_ACTION:
        return step.wait_ok and bool(step.candidate.any())
    return bool(step.candidate[pipeline]) and level >= step.min_level[pipeline]


def imitate(
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
            scenario_named(name).train_seed_offset + config.imitation_seed_offset + k,
            config.imitation_max_queries,
            PolicyOptions.of(config),
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
    batch_size = config.imitation_batch_size
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
