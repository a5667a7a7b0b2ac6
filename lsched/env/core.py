"""`QuerySchedulingEnv`: the simulator as a Gymnasium environment, one step per decision.

A step is one scheduling decision: the action names a pipeline slot and a parallelism limit
(or WAIT); the simulator carries it out and runs until the next decision point. Observations
are the padded arrays of `agents.features.encode` (sizes from the scenario's `env:` section)
plus the flat `action_mask`, so any sim `Scheduler` can also be driven through the env with
`sim_observation` and `decision_to_action` and reproduce `sim.simulate` exactly.

Action: `MultiDiscrete([slots + 1, parallelism])`. Slot `q * max_pipelines_per_query + p` is
pipeline p of the q-th oldest query in the system; slot `slots` (the last) is WAIT. With the
default `parallelism="exact"` index i sets the limit i + 1 (1..total threads), so every
heuristic's limit is expressible; `parallelism="levels"` uses the scenario's
`env.parallelism_levels` limits, ceil(total · (i + 1) / levels). As in the simulator, a
decision whose limit does not exceed the threads the pipeline already holds binds nothing and
ends the round like WAIT; the mask cannot say so (its two parts are independent), so it only
marks legal slots (WAIT is illegal when it would leave the cluster idle for good) and allows
every parallelism index.

A workload that outgrows the padding raises ScenarioError naming the knob to raise
(`env.max_queries`, `env.max_pipelines_per_query`); nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import ceil
from pathlib import Path
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.features import (
    FEATURE_SCHEMA_VERSION,
    GLOBAL_FEATURES,
    OPERATORS,
    PIPELINE_FEATURES,
    QUERY_FEATURES,
    FeatureConfig,
    FeatureLimitError,
    FeatureState,
    class_vocabulary,
    encode,
)
from lsched.env.rewards import REWARDS, Reward
from lsched.errors import LschedError, ScenarioError
from lsched.scenario import load_scenario
from sim.engine import Simulation
from sim.interface import WAIT, CompletedQuery, Decision, Observation
from sim.model import ClusterConfig, QuerySpec
from sim.results import SimResult

VOCABULARY_SEED = 0
"""Workload seed whose query classes fix the `query_class` vocabulary of the observation."""
SEED_SPACE = 2**31
"""Unseeded resets draw the episode's workload seed from [train_seed_offset, + SEED_SPACE)."""

MASK_KEYS = ("pipeline_mask", "schedulable", "adjacency", "query_mask")
FEATURE_BOUND = 1e9
"""Bounds of the float feature boxes: features sit near [0, 1], this only keeps spaces finite."""


class ScenarioLike(Protocol):
    """What the env reads of a scenario (`lsched.scenario.Scenario` is one)."""

    name: str
    cluster: ClusterConfig
    oracle: bool

    @property
    def env(self) -> Any: ...

    def queries(self, seed: int) -> tuple[QuerySpec, ...]: ...

    def execution_rng(self, seed: int) -> np.random.Generator: ...


class InvalidActionError(LschedError):
    """An action that is not legal in the current state; the message says why."""


class QuerySchedulingEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Schedule a scenario's queries one decision at a time.

    Options: `scenario` (bundled name, file path or Scenario), `overrides` (dotted settings for
    `Scenario.with_overrides`), `reward` ("latency", "slowdown", "deadline"; see
    lsched.env.rewards) and `reward_scale` (None: the reward's default, 0.01 per query-second
    for latency and slowdown, 1 per miss for deadline), `invalid_action` ("raise", or
    "penalty": nothing happens and the step's reward is `-invalid_penalty`), `episode_time_s`
    / `episode_queries` (truncate at the first decision once simulated time or finished
    queries reach them), `parallelism` ("exact" or "levels") and `features` (normalisation
    scales; default: agents.features' with the scenario's query classes).

    `terminated` when every query has finished; `info` has the simulated time `sim_time_s`,
    the queries finished since the last step `completed` (CompletedQuery records), the
    `action_mask` and the `episode_seed`. Helpers for driving a sim Scheduler:
    `sim_observation`, `decision_to_action`, `action_to_decision`, `wait_slot`, `result()`.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(
        self,
        scenario: ScenarioLike | str | Path = "tpch-streaming",
        *,
        overrides: Mapping[str, Any] | None = None,
        reward: str = "latency",
        reward_scale: float | None = None,
        invalid_action: Literal["raise", "penalty"] = "raise",
        invalid_penalty: float = 1.0,
        episode_time_s: float | None = None,
        episode_queries: int | None = None,
        parallelism: Literal["exact", "levels"] = "exact",
        features: FeatureConfig | None = None,
    ) -> None:
        if isinstance(scenario, str | Path):
            scenario = load_scenario(scenario)
        if overrides:
            scenario = scenario.with_overrides(overrides)  # type: ignore[attr-defined]
        self.scenario = scenario
        self._source = str(getattr(scenario, "source", scenario.name))
        if reward not in REWARDS:
            raise LschedError(f"env option reward: unknown {reward!r}; known: {', '.join(REWARDS)}")
        if invalid_action not in ("raise", "penalty"):
            raise LschedError(
                f"env option invalid_action: must be 'raise' or 'penalty' (got {invalid_action!r})"
            )
        if parallelism not in ("exact", "levels"):
            raise LschedError(
                f"env option parallelism: must be 'exact' or 'levels' (got {parallelism!r})"
            )
        self.reward_name = reward
        self._reward: Reward = (
            REWARDS[reward]() if reward_scale is None else REWARDS[reward](reward_scale)
        )
        self.invalid_action = invalid_action
        self.invalid_penalty = float(invalid_penalty)
        self.episode_time_s = episode_time_s
        self.episode_queries = episode_queries

        self.cluster: ClusterConfig = scenario.cluster
        self.limits = scenario.env
        self.max_queries = int(self.limits.max_queries)
        self.max_pipelines = int(self.limits.max_pipelines_per_query)
        self.slots = self.max_queries * self.max_pipelines
        self.wait_slot = self.slots
        """Action slot meaning WAIT."""
        total = self.cluster.total_threads
        if parallelism == "exact":
            self.parallelism_limits = tuple(range(1, total + 1))
        else:
            levels = min(int(self.limits.parallelism_levels), total)
            self.parallelism_limits = tuple(ceil((i + 1) * total / levels) for i in range(levels))
        """Parallelism index -> the limit it sets."""
        self._limit_index = {limit: i for i, limit in enumerate(self.parallelism_limits)}

        if features is None:
            classes = class_vocabulary(q.query_class for q in scenario.queries(VOCABULARY_SEED))
            features = FeatureConfig(query_classes=classes)
        self.feature_config = features
        self.feature_schema_version = FEATURE_SCHEMA_VERSION
        self._features = FeatureState(self.limits, features)

        self.action_space = spaces.MultiDiscrete([self.slots + 1, len(self.parallelism_limits)])
        self.observation_space = _observation_space(
            self.max_queries, self.max_pipelines, len(features.query_classes), self.mask_size
        )
        self._sim: Simulation | None = None
        self._obs: dict[str, np.ndarray] = {}
        self._mask = np.zeros(self.mask_size, np.int8)
        self._workload_size = 0
        self._t_s = 0.0
        self._completed_seen = 0
        self._terminal = False
        self.episode_seed = -1

    @property
    def mask_size(self) -> int:
        """Length of the flat action mask: slot mask (incl. WAIT) then parallelism mask."""
        return self.slots + 1 + len(self.parallelism_limits)

    # ----------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A fresh episode: workload and execution noise of `seed` (same seed, same episode).

        Without a seed the workload seed is drawn from the env's generator in the scenario's
        training range, so training never replays an evaluation seed by accident.
        """
        super().reset(seed=seed)
        if seed is None:
            offset = int(getattr(self.scenario, "train_seed_offset", 0))
            seed = offset + int(self.np_random.integers(SEED_SPACE))
        self.episode_seed = int(seed)
        queries = self.scenario.queries(self.episode_seed)
        if not queries:
            raise ScenarioError(self._source, "workload", f"seed {seed} draws no queries")
        for query in queries:
            if len(query.pipelines) > self.max_pipelines:
                raise ScenarioError(
                    self._source,
                    "env.max_pipelines_per_query",
                    f"query {query.query_id} ({query.template}) of seed {seed} has "
                    f"{len(query.pipelines)} pipelines but the observation holds "
                    f"{self.max_pipelines}; raise env.max_pipelines_per_query",
                )
        self._sim = Simulation(
            queries,
            self.cluster,
            self.scenario.execution_rng(self.episode_seed),
            oracle=self.scenario.oracle,
        )
        self._workload_size = len(queries)
        self._features.reset()
        self._reward.reset(queries, self.cluster)
        self._t_s = 0.0
        self._completed_seen = 0
        self._terminal = False
        self._sim.advance()
        obs = self._observe(terminal=False)
        return obs, self._info(())

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        sim = self._sim
        if sim is None or self._terminal:
            raise gym.error.ResetNeeded("call reset() before step(): no episode is running")
        decision = self._decision(action)
        if decision is None:  # invalid, in penalty mode: nothing happens
            obs = self._obs = {key: array.copy() for key, array in self._obs.items()}
            self._mask = obs["action_mask"]
            info = self._info(())
            info["invalid_action"] = True
            return obs, -self.invalid_penalty, False, False, info
        sim.apply(decision)
        terminal = sim.advance() is None
        self._terminal = terminal
        obs = self._observe(terminal)
        t0_s, t1_s = self._t_s, sim.now_s
        completed = sim.completed
        new = tuple(completed[self._completed_seen :])
        self._completed_seen = len(completed)
        count = self._features.num_queries
        reward = self._reward(
            t0_s,
            t1_s,
            self._features.query_ids[:count],
            self._features.arrival_s[:count],
            new,
        )
        self._t_s = t1_s
        truncated = not terminal and (
            (self.episode_time_s is not None and t1_s >= self.episode_time_s)
            or (self.episode_queries is not None and len(completed) >= self.episode_queries)
        )
        return obs, reward, terminal, truncated, self._info(new)

    def action_masks(self) -> np.ndarray:
        """The flat mask MaskablePPO reads: legal slots (WAIT last), then parallelism indices."""
        return self._mask

    # ----------------------------------------------------------------- helpers
    @property
    def sim_observation(self) -> Observation:
        """The simulator's live observation, for driving any sim Scheduler through the env."""
        if self._sim is None:
            raise gym.error.ResetNeeded("call reset() first")
        return self._sim.observation

    @property
    def simulation(self) -> Simulation:
        if self._sim is None:
            raise gym.error.ResetNeeded("call reset() first")
        return self._sim

    def result(self) -> SimResult:
        """Metrics of the finished episode (as `sim.simulate` returns them)."""
        return self.simulation.result()

    def decision_to_action(self, decision: Decision) -> np.ndarray:
        """The action that carries out `decision` in the current state."""
        if decision.pipeline is None:
            return np.array([self.wait_slot, 0], dtype=np.int64)
        query_id, index = decision.pipeline
        try:
            row = self._features.row_ids.index(query_id)
        except ValueError:
            raise InvalidActionError(
                f"decision names query {query_id}, which is not in the system"
            ) from None
        level = self._limit_index.get(int(decision.limit))
        if level is None:
            raise InvalidActionError(
                f"parallelism limit {decision.limit!r} is not one of this env's limits "
                f"{self.parallelism_limits}"
            )
        return np.array([row * self.max_pipelines + index, level], dtype=np.int64)

    def action_to_decision(self, action: np.ndarray) -> Decision:
        """The Decision an action stands for; raises InvalidActionError if it is illegal now."""
        slot, level = self._parse(action)
        problem = self._problem(slot, level)
        if problem:
            raise InvalidActionError(problem)
        return self._to_decision(slot, level)

    # ----------------------------------------------------------------- internals
    def _decision(self, action: np.ndarray) -> Decision | None:
        slot, level = self._parse(action)
        problem = self._problem(slot, level)
        if problem:
            if self.invalid_action == "raise":
                raise InvalidActionError(problem)
            return None
        return self._to_decision(slot, level)

    def _parse(self, action: np.ndarray) -> tuple[int, int]:
        try:
            slot, level = (int(value) for value in np.asarray(action).reshape(-1))
        except (TypeError, ValueError):
            raise InvalidActionError(
                f"action {action!r} must be a pair (slot, parallelism index)"
            ) from None
        return slot, level

    def _problem(self, slot: int, level: int) -> str:
        """Why (slot, level) is illegal now, or "" when it is legal."""
        if not 0 <= slot <= self.wait_slot:
            return f"action slot {slot} is out of range 0..{self.wait_slot}"
        if not 0 <= level < len(self.parallelism_limits):
            top = len(self.parallelism_limits) - 1
            return f"parallelism index {level} is out of range 0..{top}"
        if self._mask[slot]:
            return ""
        if slot == self.wait_slot:
            return (
                "WAIT would leave the whole cluster idle with no arrivals to come: "
                "pick a schedulable pipeline"
            )
        row, index = divmod(slot, self.max_pipelines)
        count = self._features.num_queries
        if row >= count:
            return f"action slot {slot}: row {row} holds no query ({count} in the system)"
        query_id = self._features.row_ids[row]
        if not self._features.pipeline_mask[row, index]:
            return f"action slot {slot}: query {query_id} has no pipeline {index}"
        return (
            f"action slot {slot}: pipeline ({query_id}, {index}) is not schedulable "
            "(not ready, finished, or every task started)"
        )

    def _to_decision(self, slot: int, level: int) -> Decision:
        if slot == self.wait_slot:
            return WAIT
        row, index = divmod(slot, self.max_pipelines)
        return Decision((self._features.row_ids[row], index), self.parallelism_limits[level])

    def _observe(self, terminal: bool) -> dict[str, np.ndarray]:
        sim = self._sim
        assert sim is not None
        try:
            arrays = encode(sim.observation, self.limits, self._features)
        except FeatureLimitError as error:
            raise ScenarioError(self._source, error.knob, error.problem) from None
        obs = {
            "pipelines": arrays["pipelines"].copy(),
            "queries": arrays["queries"].copy(),
            "global": arrays["global"].copy(),
            "operator": arrays["operator"].copy(),
            "query_class": arrays["query_class"].copy(),
        }
        for key in MASK_KEYS:  # bool and int8 share a layout: a plain copy converts
            obs[key] = arrays[key].view(np.int8).copy()
        mask = np.ones(self.mask_size, np.int8)
        mask[: self.slots] = obs["schedulable"].reshape(-1)
        # WAIT is illegal only when it would leave the cluster idle for good.
        idle = sim.free_threads == self.cluster.total_threads
        mask[self.wait_slot] = terminal or not (idle and sim.arrivals_so_far == self._workload_size)
        obs["action_mask"] = mask
        self._mask = mask
        # Holding the last observation until the next is built also keeps its ~1 MB of arrays
        # from going back to the OS and faulting in again every step.
        self._obs = obs
        return obs

    def _info(self, completed: tuple[CompletedQuery, ...]) -> dict[str, Any]:
        sim = self._sim
        assert sim is not None
        return {
            "sim_time_s": sim.now_s,
            "completed": completed,
            "action_mask": self._mask,
            "episode_seed": self.episode_seed,
        }


def _observation_space(
    max_queries: int, max_pipelines: int, classes: int, mask_size: int
) -> spaces.Dict:
    qp = (max_queries, max_pipelines)
    unbounded = np.float32(FEATURE_BOUND)
    return spaces.Dict(
        {
            "pipelines": spaces.Box(
                -unbounded, unbounded, (*qp, len(PIPELINE_FEATURES)), np.float32
            ),
            "pipeline_mask": spaces.MultiBinary(list(qp)),
            "schedulable": spaces.MultiBinary(list(qp)),
            "adjacency": spaces.MultiBinary([*qp, max_pipelines]),
            "operator": spaces.Box(0, len(OPERATORS) - 1, qp, np.int32),
            "queries": spaces.Box(
                -unbounded, unbounded, (max_queries, len(QUERY_FEATURES)), np.float32
            ),
            "query_mask": spaces.MultiBinary(max_queries),
            "query_class": spaces.Box(0, classes, (max_queries,), np.int32),
            "global": spaces.Box(-unbounded, unbounded, (len(GLOBAL_FEATURES),), np.float32),
            "action_mask": spaces.MultiBinary(mask_size),
        }
    )
