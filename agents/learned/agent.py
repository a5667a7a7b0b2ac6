"""The learned scheduler: `agents.features.encode` → policy → a `Decision`.

The observation is encoded by the same `encode` the Gymnasium environment uses, then flattened
into a `PolicyBatch` (only the rows of queries in the system, only real pipelines; plan edges
are cached per set of queries, since plans never change). The policy picks among pipelines that
can still take a thread — schedulable and holding fewer threads than the largest limit level —
and among the limit levels above the chosen pipeline's current threads, so every decision binds
at least one thread — or it waits (leaves the free threads idle until the next event), which is
offered only while some task runs. Greedy at evaluation; sampling (with the caller's Generator)
in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from agents.features import (
    GLOBAL_FEATURES,
    OPERATORS,
    PIPELINE_FEATURES,
    QUERY_FEATURES,
    FeatureConfig,
    FeatureState,
    encode,
)
from agents.learned.policy import WAIT_ACTION, Policy, PolicyBatch, limit_for_level
from sim.interface import WAIT, Decision, Observation, Scheduler
from sim.model import ClusterConfig

INPUT_VERSION = 2
"""Version of the policy's own input transform below (log scaling, operator one-hot, guide)."""

GUIDE_FEATURES = ("guide_pick", "guide_level")
"""Two pipeline columns after the operator one-hot: 1.0 on the pipeline the guide heuristic
would schedule now, and that decision's limit level / (levels − 1); zero elsewhere and without
a guide."""
GUIDE_GLOBAL_FEATURES = ("guide_waits",)
"""One global column after features.py's: 1.0 when the guide would leave the free threads idle
(WAIT) now."""

WORKLOAD_QUERY_FEATURES = (
    "template_recent_arrivals",
    "template_completed",
    "template_mean_latency",
    "age_over_template_latency",
)
WORKLOAD_GLOBAL_FEATURES = ("arrival_rate", "time_of_day_sin", "time_of_day_cos")
"""What the workload-feature ablation zeroes: everything learned from the query history."""

_LOG_PIPELINE = ("est_remaining_work", "est_work", "tasks_left", "tasks_running", "num_tasks")
_LOG_QUERY = (
    "age",
    "est_remaining_work",
    "est_work",
    "scale_factor",
    "template_recent_arrivals",
    "template_completed",
    "template_mean_latency",
    "age_over_template_latency",
)
_SIGNED_LOG_QUERY = ("deadline_slack",)
_LOG_GLOBAL = ("arrival_rate",)
"""Unbounded features (work, counts, times span orders of magnitude) enter as log1p(x)."""


def _columns(names: tuple[str, ...], chosen: tuple[str, ...]) -> np.ndarray:
    return np.array([names.index(n) for n in chosen], dtype=np.int64)


_PL = _columns(PIPELINE_FEATURES, _LOG_PIPELINE)
_QL = _columns(QUERY_FEATURES, _LOG_QUERY)
_QS = _columns(QUERY_FEATURES, _SIGNED_LOG_QUERY)
_GL = _columns(GLOBAL_FEATURES, _LOG_GLOBAL)
_QW = _columns(QUERY_FEATURES, WORKLOAD_QUERY_FEATURES)
_GW = _columns(GLOBAL_FEATURES, WORKLOAD_GLOBAL_FEATURES)
_THREADS = PIPELINE_FEATURES.index("threads")


@dataclass(frozen=True, slots=True)
class FeatureSizes:
    pipeline: int
    query: int
    global_: int


def feature_sizes() -> FeatureSizes:
    """Input widths of the policy: features.py's columns, the operator one-hot, the guide."""
    return FeatureSizes(
        pipeline=len(PIPELINE_FEATURES) + len(OPERATORS) + len(GUIDE_FEATURES),
        query=len(QUERY_FEATURES),
        global_=len(GLOBAL_FEATURES) + len(GUIDE_GLOBAL_FEATURES),
    )


@dataclass(frozen=True, slots=True)
class ObservationLimits:
    """Padded sizes the agent encodes with (agents.features.Limits)."""

    max_queries: int = 1024
    """Generous on purpose: the policy's size does not depend on it, and an agent that meets
    more queries than it can encode cannot schedule at all."""
    max_pipelines_per_query: int = 64
    parallelism_levels: int = 8

    def to_dict(self) -> dict[str, int]:
        return {
            "max_queries": self.max_queries,
            "max_pipelines_per_query": self.max_pipelines_per_query,
            "parallelism_levels": self.parallelism_levels,
        }


def limits_of(env_limits: Any) -> ObservationLimits:
    """The agent's limits for a scenario's `env` section: at least as large, never smaller."""
    default = ObservationLimits()
    return ObservationLimits(
        max_queries=max(int(env_limits.max_queries or 0), default.max_queries),
        max_pipelines_per_query=max(
            int(env_limits.max_pipelines_per_query or 0), default.max_pipelines_per_query
        ),
        parallelism_levels=int(env_limits.parallelism_levels),
    )


class Step(NamedTuple):
    """One decision's policy input as numpy arrays (a `PolicyBatch` of one graph)."""

    pipeline_x: np.ndarray
    query_x: np.ndarray
    global_x: np.ndarray
    pipeline_query: np.ndarray
    edge_child: np.ndarray
    edge_parent: np.ndarray
    candidate: np.ndarray
    min_level: np.ndarray
    wait_ok: bool
    """Some task is running, so WAIT (leave the free threads idle) is a legal action."""

    def to_batch(self) -> PolicyBatch:
        return PolicyBatch(
            torch.from_numpy(self.pipeline_x),
            torch.from_numpy(self.query_x),
            torch.from_numpy(self.global_x).unsqueeze(0),
            torch.from_numpy(self.pipeline_query),
            torch.zeros(len(self.query_x), dtype=torch.int64),
            torch.from_numpy(self.edge_child),
            torch.from_numpy(self.edge_parent),
            torch.from_numpy(self.candidate),
            torch.from_numpy(self.min_level),
            torch.tensor([self.wait_ok]),
        )


class Recorder:
    """What a training rollout keeps per decision: the input, the action, the time."""

    def __init__(self) -> None:
        self.observations: list[Step] = []
        self.actions: list[tuple[int, int]] = []
        """(pipeline index into the step's pipelines, limit level); (WAIT_ACTION, 0): wait."""
        self.times_s: list[float] = []


class LearnedScheduler:
    """A `sim.interface.Scheduler` driven by a trained `Policy`.

    With a `guide` (a heuristic, normally the `tuned` agent) the policy also sees, as input
    features, what the guide would do now (GUIDE_FEATURES, GUIDE_GLOBAL_FEATURES): residual
    learning — behaviour cloning makes
    "follow the guide" the starting point and policy gradient learns where to deviate. The
    guide reads the same observation, so it adds no knowledge a database would not have.
    """

    def __init__(
        self,
        policy: Policy,
        limits: ObservationLimits | None = None,
        *,
        rng: np.random.Generator | None = None,
        recorder: Recorder | None = None,
        workload_features: bool = True,
        feature_config: FeatureConfig | None = None,
        guide: Scheduler | None = None,
    ) -> None:
        self.policy = policy.eval()
        self.guide = guide
        self.guide_decision: Decision = WAIT
        """What the guide proposed at the last `observe` (WAIT without a guide)."""
        self.limits = limits or ObservationLimits()
        self.levels = policy.config.limit_levels
        self.rng = rng
        """None: greedy. A Generator: sample actions (training rollouts)."""
        self.recorder = recorder
        self.workload_features = workload_features
        self._state = FeatureState(self.limits, feature_config)
        self._total = 1
        self._level_limits = np.ones(self.levels, np.int64)
        self._structure_ids: np.ndarray = np.zeros(0, np.int64)
        self._structure: tuple[np.ndarray, ...] = ()

    def reset(self, cluster: ClusterConfig) -> None:
        if self.guide is not None:
            self.guide.reset(cluster)
        self.guide_decision = WAIT
        self._state.reset()
        self._total = cluster.total_threads
        self._level_limits = np.array(
            [limit_for_level(k, self.levels, self._total) for k in range(self.levels)], np.int64
        )
        self._structure_ids = np.zeros(0, np.int64)

    def decide(self, obs: Observation) -> Decision:
        step, rows, cols = self.observe(obs)
        if not step.candidate.any():
            return WAIT
        uniforms = (
            None if self.rng is None else (float(self.rng.random()), float(self.rng.random()))
        )
        chosen, level = self.policy.act(step.to_batch(), uniforms)
        if self.recorder is not None:
            self.recorder.observations.append(step)
            self.recorder.actions.append((chosen, level))
            self.recorder.times_s.append(obs.now_s)
        if chosen == WAIT_ACTION:
            return WAIT
        query_id = int(self._state.query_ids[rows[chosen]])
        return Decision((query_id, int(cols[chosen])), int(self._level_limits[level]))

    def action_of(
        self, decision: Decision, rows: np.ndarray, cols: np.ndarray
    ) -> tuple[int, int] | None:
        """The (pipeline index, level) closest to another scheduler's decision: the smallest
        level whose limit reaches the decision's; (WAIT_ACTION, 0) for WAIT. None for an
        unknown pipeline."""
        if decision.pipeline is None:
            return (WAIT_ACTION, 0)
        query_id, index = decision.pipeline
        matches = np.flatnonzero(self._state.query_ids[: self._state.num_queries] == query_id)
        if not len(matches):
            return None
        nodes = np.flatnonzero((rows == matches[0]) & (cols == index))
        if not len(nodes):
            return None
        level = int(np.searchsorted(self._level_limits, decision.limit, side="left"))
        return int(nodes[0]), min(level, self.levels - 1)

    def observe(self, obs: Observation) -> tuple[Step, np.ndarray, np.ndarray]:
        """(policy input, row and column of each of its pipelines in the padded encoding)."""
        encoded = encode(obs, self.limits, self._state)
        count = self._state.num_queries
        ids = self._state.query_ids[:count]
        if not np.array_equal(ids, self._structure_ids):
            self._structure = _structure(encoded, count)
            self._structure_ids = ids.copy()
        rows, cols, pipeline_query, child, parent, operator_onehot = self._structure

        pipes = encoded["pipelines"][rows, cols]
        pipes[:, _PL] = np.log1p(pipes[:, _PL])
        guide = np.zeros((len(rows), len(GUIDE_FEATURES)), np.float32)
        guide_waits = 0.0
        if self.guide is not None:
            self.guide_decision = self.guide.decide(obs)
            proposed = self.action_of(self.guide_decision, rows, cols)
            if proposed is not None and proposed[0] == WAIT_ACTION:
                guide_waits = 1.0
            elif proposed is not None:
                guide[proposed[0]] = (1.0, proposed[1] / max(self.levels - 1, 1))
        pipeline_x = np.concatenate((pipes, operator_onehot, guide), axis=1)
        query_x = encoded["queries"][:count].copy()
        query_x[:, _QL] = np.log1p(np.maximum(query_x[:, _QL], 0.0))
        slack = query_x[:, _QS]
        query_x[:, _QS] = np.sign(slack) * np.log1p(np.abs(slack))
        global_x = np.append(encoded["global"], np.float32(guide_waits))
        global_x[_GL] = np.log1p(global_x[_GL])
        if not self.workload_features:
            query_x[:, _QW] = 0.0
            global_x[_GW] = 0.0

        threads = np.rint(encoded["pipelines"][rows, cols, _THREADS] * self._total).astype(np.int64)
        min_level = np.searchsorted(self._level_limits, threads, side="right")
        candidate = encoded["schedulable"][rows, cols] & (min_level < self.levels)
        cluster = obs.cluster
        wait_ok = obs.free_threads < cluster.threads_per_node * sum(obs.nodes_up)
        step = Step(
            pipeline_x.astype(np.float32, copy=False),
            query_x,
            global_x,
            pipeline_query,
            child,
            parent,
            candidate,
            min_level,
            bool(wait_ok),
        )
        return step, rows, cols


def _structure(encoded: dict[str, np.ndarray], count: int) -> tuple[np.ndarray, ...]:
    """Static per set of queries: pipeline positions, their queries, plan edges, operators."""
    mask = encoded["pipeline_mask"][:count]
    rows, cols = np.nonzero(mask)
    node = np.full(mask.shape, -1, np.int64)
    node[rows, cols] = np.arange(len(rows))
    query_rows, children, parents = np.nonzero(encoded["adjacency"][:count])
    child = node[query_rows, children]
    parent = node[query_rows, parents]
    onehot = np.zeros((len(rows), len(OPERATORS)), np.float32)
    onehot[np.arange(len(rows)), encoded["operator"][rows, cols]] = 1.0
    return rows, cols, rows.astype(np.int64), child, parent, onehot
