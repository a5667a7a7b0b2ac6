"""The learned scheduler: `agents.features.encode` → policy → a `Decision`.

The observation is encoded by the same `encode` the Gymnasium environment uses, then flattened
into a `PolicyBatch` (only the rows of queries in the system, only real pipelines; each query's
plan edges, operators and serial fractions are cached, since plans never change). The policy
picks among pipelines that can still take a thread — schedulable and holding fewer threads than
the largest limit level — and among the limit levels above the chosen pipeline's current
threads, so every decision binds at least one thread — or it waits (leaves the free threads
idle until the next event), which is offered only while some task runs. Greedy at evaluation;
sampling (with the caller's Generator) in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
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
from agents.predictor import RuntimePredictor
from agents.scalability import DEFAULT_SERIAL_FRACTION, ScalabilityPrior
from sim.interface import WAIT, Decision, Observation, Scheduler
from sim.model import ClusterConfig

INPUT_VERSION = 3
"""Version of the policy's own input transform below (log scaling, operator one-hot, guide,
scalability prior, query-log prediction)."""

PRIOR_PIPELINE_FEATURES = ("serial_fraction", "predicted_remaining_work")
"""Two pipeline columns after the operator one-hot: the serial fraction a database would
assume for the pipeline (its breaker type and data size, `agents.scalability`; × 10), and its
estimated remaining work corrected by the query log (`agents.predictor`; log1p)."""
PRIOR_QUERY_FEATURES = ("predicted_remaining_work", "log_estimate_correction")
"""Two query columns after features.py's: the corrected remaining work (log1p), and the log of
the correction itself — how wrong the optimizer has been on this template so far."""
SERIAL_FRACTION_SCALE = 10.0
"""Serial fractions (0.004-0.2 measured) encode as fraction × this, near [0, 2]."""

GUIDE_FEATURES = ("guide_pick", "guide_level")
"""Two pipeline columns after the operator one-hot: 1.0 on the pipeline the guide heuristic
would schedule now, and that decision's limit level / (levels − 1); zero elsewhere and without
a guide."""
FOLLOW_GUIDE = (-2, 0)
"""What `LearnedScheduler.act` returns to take the guide's own decision."""
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
_P_REMAINING = PIPELINE_FEATURES.index("est_remaining_work")
_Q_REMAINING = QUERY_FEATURES.index("est_remaining_work")


@dataclass(frozen=True, slots=True)
class FeatureSizes:
    pipeline: int
    query: int
    global_: int


def feature_sizes() -> FeatureSizes:
    """Input widths of the policy: features.py's columns, the operator one-hot, the guide."""
    return FeatureSizes(
        pipeline=len(PIPELINE_FEATURES)
        + len(OPERATORS)
        + len(GUIDE_FEATURES)
        + len(PRIOR_PIPELINE_FEATURES),
        query=len(QUERY_FEATURES) + len(PRIOR_QUERY_FEATURES),
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


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """How a policy reads the world and acts: fixed by its training run (`TrainConfig` holds
    the same fields), stored in its checkpoint, and carried whole to every scheduler built
    from it (rollouts, teacher encodings, validation, `lsched run`)."""

    workload_features: bool = True
    """False zeroes everything learned from the query history (template history, the query
    log's estimate correction, arrival rate, time of day): an ablation."""
    scalability_features: bool = True
    """False zeroes the scalability prior (serial fractions from operator types): an ablation."""
    wait_only_with_guide: bool = True
    """A guided policy may leave threads idle (WAIT) only when its guide would: deviations
    choose another pipeline or limit, never idleness the guide does not choose. Without it
    the policy trained on three scenarios waited where `tuned` scheduled (1,136 times in
    100 skewed-estimates queries) and ran 60x slower there. False: WAIT whenever a task
    runs."""
    deviation_margin: float = 0.0
    """Greedy and guided, the policy overrides its guide only when it prefers its own action
    by at least this much log-likelihood (`Policy.act_near`); otherwise the guide's decision
    is taken as the guide made it. 0: plain greedy (the guide is an input, nothing more);
    infinity: the guide itself. A training run picks it on validation seeds
    (`TrainConfig.margin_grid`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, source: Any) -> PolicyOptions:
        """The options as fields of `source` (a TrainConfig, a CheckpointInfo)."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})


class LearnedScheduler:
    """A `sim.interface.Scheduler` driven by a trained `Policy`.

    With a `guide` (a heuristic, normally the `tuned` agent) the policy also sees, as input
    features, what the guide would do now (GUIDE_FEATURES, GUIDE_GLOBAL_FEATURES): residual
    learning — behaviour cloning makes
    "follow the guide" the starting point and policy gradient learns where to deviate. The
    guide reads the same observation, so it adds no knowledge a database would not have.

    `scalability` is the operator-type prior a database fits on its own measurements (the
    runner's `AgentContext.scalability`), never the simulator's hidden serial fractions; the
    query-log correction is learned online from finished queries, as `predicted_srpt` does.
    `options` (PolicyOptions) holds the ablation switches, the wait rule and the deviation
    margin the policy was trained and validated with.
    """

    def __init__(
        self,
        policy: Policy,
        limits: ObservationLimits | None = None,
        *,
        rng: np.random.Generator | None = None,
        recorder: Recorder | None = None,
        options: PolicyOptions | None = None,
        feature_config: FeatureConfig | None = None,
        guide: Scheduler | None = None,
        scalability: ScalabilityPrior | None = None,
    ) -> None:
        self.policy = policy.eval()
        self.options = options = options or PolicyOptions()
        self.scalability = scalability
        self.predictor = RuntimePredictor()
        self._logged = 0
        self._serial: np.ndarray = np.zeros(0, np.float32)
        self._plans: dict[int, _Plan] = {}
        """Each query's plan as the policy input holds it: fixed per query."""
        self._correction: np.ndarray = np.zeros(0, np.float32)
        self.guide = guide
        self.guide_decision: Decision = WAIT
        """What the guide proposed at the last `observe` (WAIT without a guide)."""
        self.guide_action: tuple[int, int] | None = None
        """That proposal as a policy action of the last `observe` (None: unguided or unknown)."""
        self.limits = limits or ObservationLimits()
        self.levels = policy.config.limit_levels
        self.rng = rng
        """None: greedy. A Generator: sample actions (training rollouts)."""
        self.recorder = recorder
        self._state = FeatureState(self.limits, feature_config)
        self._total = 1
        self._level_limits = np.ones(self.levels, np.int64)
        self._structure_ids: np.ndarray = np.zeros(0, np.int64)
        self._structure: tuple[np.ndarray, ...] = ()
        self.greedy_decisions = 0
        """Greedy decisions since it was built (over every run): what `describe` reports."""
        self.guide_decisions = 0
        """Of those, the ones that were its guide's: gated by the margin, or the same decision
        (the same pipeline at a level granting the same threads)."""

    def reset(self, cluster: ClusterConfig) -> None:
        if self.guide is not None:
            self.guide.reset(cluster)
        self.guide_decision = WAIT
        self.guide_action = None
        self.predictor.clear()
        self._logged = 0
        self._plans = {}
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
        chosen, level = self.act(step, uniforms)
        if (chosen, level) == FOLLOW_GUIDE:
            return self.guide_decision
        if self.recorder is not None:
            self.recorder.observations.append(step)
            self.recorder.actions.append((chosen, level))
            self.recorder.times_s.append(obs.now_s)
        if chosen == WAIT_ACTION:
            return WAIT
        query_id = int(self.query_ids_of(rows)[chosen])
        return Decision((query_id, int(cols[chosen])), self.level_limit(level))

    def act(
        self,
        step: Step,
        uniforms: tuple[float, float] | None = None,
        *,
        pipeline_groups: np.ndarray | None = None,
        level_limits: np.ndarray | None = None,
    ) -> tuple[int, int]:
        """The policy's (pipeline index, level) for `step`, or FOLLOW_GUIDE where, greedy
        with a positive `deviation_margin`, it does not prefer its own decision enough.

        What counts as one decision (`Policy.act_near`): pipelines of a group
        (`pipeline_groups`; default each its own) at levels granting the same threads
        (`level_limits`; default the cluster's)."""
        batch = step.to_batch()
        if uniforms is not None:
            return self.policy.act(batch, uniforms)
        self.greedy_decisions += 1
        if self.options.deviation_margin > 0 and self.guide_action is not None:
            own = self.policy.act_near(
                batch,
                self.guide_action,
                self.options.deviation_margin,
                level_limits=self._level_limits if level_limits is None else level_limits,
                pipeline_groups=pipeline_groups,
            )
            if own is None:
                self.guide_decisions += 1
                return FOLLOW_GUIDE
            return own
        action = self.policy.act(batch)
        if self.guide_action is not None:
            limits = self._level_limits if level_limits is None else level_limits
            self.guide_decisions += _same_decision(
                action, self.guide_action, limits, pipeline_groups
            )
        return action

    def describe(self, guided: bool | None = None) -> str:
        """How far it follows its guide, in the decisions it has made since it was built (a
        forced start, where only one was legal, is not counted): a user reading a tie with
        `tuned` should see whether the policy decided anything of its own. `guided`: whether
        it has a guide (default: whether it asks one itself)."""
        if not (self.guide is not None if guided is None else guided):
            return "lsched: unguided"
        return (
            f"lsched: deviation margin {self.options.deviation_margin:g}; its guide's decision "
            f"in {self.guide_decisions:,} of its {self.greedy_decisions:,} decisions"
        )

    def query_ids_of(self, rows: np.ndarray) -> np.ndarray:
        """The query id of each pipeline's row (the `rows` that `observe` returns)."""
        return self._state.query_ids[rows]

    def level_limit(self, level: int) -> int:
        """Threads of limit level `level` on the cluster of the last `reset`."""
        return int(self._level_limits[level])

    def limits_by_level(self) -> np.ndarray:
        """Threads of every limit level on the cluster of the last `reset` (a copy)."""
        return self._level_limits.copy()

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

    def observe(
        self, obs: Observation, guide_decision: Decision | None = None
    ) -> tuple[Step, np.ndarray, np.ndarray]:
        """(policy input, row and column of each of its pipelines in the padded encoding).

        The guide's proposal is `guide_decision` when given (the query-level form passes its
        guide's), else the guide is asked here."""
        encoded = encode(obs, self.limits, self._state)
        count = self._state.num_queries
        ids = self._state.query_ids[:count]
        if not np.array_equal(ids, self._structure_ids):
            self._structure, self._serial = self._assemble(obs, encoded, ids)
            self._structure_ids = ids.copy()
            self._correction = self._corrections(obs, ids)
        elif len(obs.completed) != self._logged:
            self._correction = self._corrections(obs, ids)
        rows, cols, pipeline_query, child, parent, operator_onehot = self._structure
        correction = self._correction

        pipes = encoded["pipelines"][rows, cols]
        prior = np.empty((len(rows), len(PRIOR_PIPELINE_FEATURES)), np.float32)
        prior[:, 0] = self._serial
        prior[:, 1] = np.log1p(pipes[:, _P_REMAINING] * correction[pipeline_query])
        pipes[:, _PL] = np.log1p(pipes[:, _PL])
        guide = np.zeros((len(rows), len(GUIDE_FEATURES)), np.float32)
        guide_waits = 0.0
        guided = guide_decision is not None or self.guide is not None
        if guided:
            self.guide_decision = (
                guide_decision if guide_decision is not None else self.guide.decide(obs)
            )
            proposed = self.guide_action = self.action_of(self.guide_decision, rows, cols)
            if proposed is not None and proposed[0] == WAIT_ACTION:
                guide_waits = 1.0
            elif proposed is not None:
                guide[proposed[0]] = (1.0, proposed[1] / max(self.levels - 1, 1))
        pipeline_x = np.concatenate((pipes, operator_onehot, guide, prior), axis=1)
        raw_queries = encoded["queries"][:count]
        query_prior = np.empty((count, len(PRIOR_QUERY_FEATURES)), np.float32)
        query_prior[:, 0] = np.log1p(np.maximum(raw_queries[:, _Q_REMAINING], 0.0) * correction)
        query_prior[:, 1] = np.log(correction)
        query_x = np.concatenate((raw_queries, query_prior), axis=1)
        query_x[:, _QL] = np.log1p(np.maximum(query_x[:, _QL], 0.0))
        slack = query_x[:, _QS]
        query_x[:, _QS] = np.sign(slack) * np.log1p(np.abs(slack))
        global_x = np.append(encoded["global"], np.float32(guide_waits))
        global_x[_GL] = np.log1p(global_x[_GL])
        if not self.options.workload_features:
            query_x[:, _QW] = 0.0
            global_x[_GW] = 0.0

        threads = np.rint(encoded["pipelines"][rows, cols, _THREADS] * self._total).astype(np.int64)
        min_level = np.searchsorted(self._level_limits, threads, side="right")
        candidate = encoded["schedulable"][rows, cols] & (min_level < self.levels)
        cluster = obs.cluster
        wait_ok = obs.free_threads < cluster.threads_per_node * sum(obs.nodes_up)
        if self.options.wait_only_with_guide and guided:
            wait_ok = wait_ok and guide_waits == 1.0
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

    def _corrections(self, obs: Observation, ids: np.ndarray) -> np.ndarray:
        """Per query row: predicted CPU time over the optimizer's estimate, from the query log
        (1.0 without history, or with the workload features off)."""
        completed = obs.completed
        if not self.options.workload_features:
            self._logged = len(completed)
            return np.ones(len(ids), np.float32)
        for record in completed[self._logged :]:
            self.predictor.observe(record)
        self._logged = len(completed)
        correction = self.predictor.correction
        views = [obs.query(int(query_id)) for query_id in ids]
        return np.array([correction(v.template, v.scale_factor) for v in views], np.float32)

    def _assemble(
        self, obs: Observation, encoded: dict[str, np.ndarray], ids: np.ndarray
    ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """(`_structure`'s arrays, each pipeline row's serial fraction × scale) for the queries
        `ids`, from each query's cached plan: the set of queries changes at every arrival and
        finish (at query level, at every decision), a query's plan never."""
        plans = self._plans
        parts = []
        for row, query_id in enumerate(ids.tolist()):
            plan = plans.get(query_id)
            if plan is None:
                plan = plans[query_id] = self._plan(obs, encoded, row, query_id)
            parts.append(plan)
        return _structure(parts), np.concatenate([p.serial for p in parts] or [_NO_FLOATS])

    def _plan(
        self, obs: Observation, encoded: dict[str, np.ndarray], row: int, query_id: int
    ) -> _Plan:
        """One query's pipelines (in plan order), plan edges, operators and serial fractions."""
        cols = np.flatnonzero(encoded["pipeline_mask"][row])
        local = np.full(encoded["pipeline_mask"].shape[1], -1, np.int64)
        local[cols] = np.arange(len(cols))
        children, parents = np.nonzero(encoded["adjacency"][row])
        operators = encoded["operator"][row, cols]
        onehot = np.zeros((len(cols), len(OPERATORS)), np.float32)
        onehot[np.arange(len(cols)), operators] = 1.0
        prior = self.scalability
        if not self.options.scalability_features:
            serial = np.zeros(len(cols), np.float32)
        else:
            view = obs.query(query_id)
            serial = np.array(
                [
                    DEFAULT_SERIAL_FRACTION
                    if prior is None
                    else prior.serial_fraction(OPERATORS[op], view.scale_factor, view.query_class)
                    for op in operators
                ],
                np.float32,
            ) * np.float32(SERIAL_FRACTION_SCALE)
        return _Plan(cols, local[children], local[parents], onehot, serial)


def _same_decision(
    action: tuple[int, int],
    other: tuple[int, int],
    level_limits: Sequence[int],
    pipeline_groups: Sequence[int] | None,
) -> bool:
    """Whether two actions decide the same, as the margin's gate counts (`Policy.act_near`):
    both WAIT, or pipelines of one group (each its own without groups) granted equal threads."""
    (mine, my_level), (theirs, their_level) = action, other
    if WAIT_ACTION in (mine, theirs):
        return mine == theirs
    same = mine == theirs or (
        pipeline_groups is not None and pipeline_groups[mine] == pipeline_groups[theirs]
    )
    return same and level_limits[my_level] == level_limits[their_level]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the policy input holds of one query that never changes."""

    cols: np.ndarray
    """Positions of its pipelines in the padded encoding, in plan order."""
    child: np.ndarray
    parent: np.ndarray
    """Its plan edges, as indices into `cols`."""
    onehot: np.ndarray
    """Each pipeline's operator, one-hot."""
    serial: np.ndarray
    """Each pipeline's prior serial fraction × SERIAL_FRACTION_SCALE (0 when those features are
    off)."""


_NO_FLOATS = np.zeros(0, np.float32)
_NO_INTS = np.zeros(0, np.int64)


def _structure(plans: list[_Plan]) -> tuple[np.ndarray, ...]:
    """Per set of queries (their plans in row order): each pipeline's row, column and query,
    plan edges as pipeline indices, operators — the order `np.nonzero` gives the padded
    arrays: query by query, and within one in plan order."""
    if not plans:
        return (*(_NO_INTS,) * 5, np.zeros((0, len(OPERATORS)), np.float32))
    sizes = np.array([len(p.cols) for p in plans], np.int64)
    offsets = np.cumsum(sizes) - sizes
    rows = np.repeat(np.arange(len(plans), dtype=np.int64), sizes)
    cols = np.concatenate([p.cols for p in plans]).astype(np.int64, copy=False)
    child = np.concatenate([p.child + o for p, o in zip(plans, offsets.tolist(), strict=True)])
    parent = np.concatenate([p.parent + o for p, o in zip(plans, offsets.tolist(), strict=True)])
    onehot = np.concatenate([p.onehot for p in plans])
    return rows, cols, rows.copy(), child, parent, onehot
