"""`QuerySchedulingEnv`: the simulator as a Gymnasium environment, one step per decision.

A step is one scheduling decision: the action names a pipeline slot and how many more
threads to give it (or WAIT); the simulator carries it out and runs until the next decision
point. Any sim `Scheduler` can also be driven through the env with `sim_observation` and
`decision_to_action` and reproduces `sim.simulate` exactly.

**Spaces.** The observation is a Dict of flat Boxes (the arrays of `agents.features.encode`,
flattened; `observation_shapes` and `unflatten` give them back their shapes), which SB3's
MultiInputPolicy and checker, VecNormalize, RLlib and TorchRL take without conversion.
Sizes come from the scenario (lsched.env.sizing): the largest plan among the workload's
templates, and a window of the oldest queries that fits the load, within 50,000 values.
Queries beyond the window wait outside it and enter as older ones finish; `waiting` says how
many (over the window size), and an episode never ends because the window is full.

**Actions.** `MultiDiscrete([slots + 1, choices])`. Slot `q * max_pipelines_per_query + p` is
pipeline p of the q-th oldest query; slot `slots` (the last) is WAIT. The second part is how
many threads to add: choice i adds `extra_threads[i]` (with the default
`parallelism="exact"`, i + 1; with `"levels"`, ceil(total · (i + 1) / levels)), so the
pipeline's limit becomes its threads + that, at most the cluster. Adding is what makes every
masked action effective: a limit at or below what a pipeline holds binds nothing, and such
actions are simply not in the space.

**Mask** (`action_masks()`, and `action_mask` in the observation): the slot part marks the
schedulable pipelines and WAIT (illegal only when it would leave the cluster idle for good);
the thread part marks the choices that add no more than the free threads (a larger one
binds exactly the same threads). Every offered pair binds at least one thread.

**Invalid actions.** An action outside the space (a float, a wrong shape, an index out of
range) always raises InvalidActionError. An in-space action the mask does not offer is
handled by `invalid_action`:
- `"penalty"` (the default): the step's reward is lowered by `invalid_penalty` and the action
  is carried out as WAIT (time moves on), or nothing happens where WAIT is illegal;
  `info["invalid_action"]` is True. This default is what lets gymnasium's and SB3's checkers
  (which step random actions) and learners without masks run unchanged;
- `"raise"`: the strict mode for debugging an agent: InvalidActionError saying why.
A choice that adds more threads than are free is not offered but is legal (it binds the free
ones); that is how heuristics' limits reach the env unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from math import ceil, isfinite
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.features import (
    FEATURE_SCHEMA_VERSION,
    OPERATORS,
    FeatureConfig,
    FeatureLimitError,
    FeatureState,
    class_vocabulary,
    encode,
    observation_shapes,
)
from lsched.env.rewards import REWARDS, Reward
from lsched.env.sizing import observation_values, sized_limits
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

FEATURE_KEYS = ("pipelines", "queries", "global")
"""Float features (near [0, 1]); the other keys are 0/1 masks or small integer ids."""
MASK_KEYS = ("pipeline_mask", "schedulable", "adjacency", "query_mask")
ID_KEYS = ("operator", "query_class")
FEATURE_BOUND = 1e9
"""Bounds of the float feature boxes: features sit near [0, 1], this only keeps spaces finite."""
INVALID_ACTIONS = ("penalty", "raise")
RENDER_MODES = ("ansi", "rgb_array")
RENDER_FPS = 4
"""Playback rate of recorded `rgb_array` frames (gymnasium's RecordVideo reads it): a frame is
a decision, not a span of time, so this sets only how fast a video plays."""
RENDER_PIXELS = 4
"""Pixels per query row and per thread column of an `rgb_array` frame."""
PARALLELISM = ("exact", "levels")


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
    for latency and slowdown, 1 per miss for deadline), `invalid_action` ("penalty" or
    "raise", see the module doc) with `invalid_penalty`, `episode_time_s` / `episode_queries`
    (truncate at the first decision once simulated time or finished queries reach them),
    `parallelism` ("exact" or "levels") and `features` (normalisation scales; default:
    agents.features' with the scenario's query classes).

    `terminated` when every query has finished; `info` has the simulated time `sim_time_s`,
    the queries finished since the last step `completed` (CompletedQuery records), the
    `action_mask`, the `episode_seed`, how many queries wait outside the window `waiting` and
    `invalid_action`. Helpers for driving a sim Scheduler: `sim_observation`,
    `decision_to_action`, `action_to_decision`, `wait_slot`, `result()`.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}  # noqa: RUF012 - gymnasium's

    def __init__(
        self,
        scenario: ScenarioLike | str | Path = "tpch-streaming",
        *,
        overrides: Mapping[str, Any] | None = None,
        reward: str = "latency",
        reward_scale: float | None = None,
        invalid_action: Literal["penalty", "raise"] = "penalty",
        invalid_penalty: float = 1.0,
        episode_time_s: float | None = None,
        episode_queries: int | None = None,
        parallelism: Literal["exact", "levels"] = "exact",
        features: FeatureConfig | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            _check_choice("render_mode", render_mode, RENDER_MODES)
        self.render_mode = render_mode
        if isinstance(scenario, str | Path):
            scenario = load_scenario(scenario)
        elif not hasattr(scenario, "queries"):
            raise ValueError(
                f"scenario: {scenario!r} is not a bundled name, a scenario file or a Scenario"
            )
        if overrides is not None and not isinstance(overrides, Mapping):
            raise ValueError(
                f"overrides: {overrides!r} must be a mapping of dotted settings to values "
                '(e.g. {"cluster.nodes": 2})'
            )
        if overrides:
            scenario = scenario.with_overrides(overrides)  # type: ignore[attr-defined]
        self.scenario = scenario
        self._source = str(getattr(scenario, "source", scenario.name))
        _check_choice("reward", reward, tuple(REWARDS))
        _check_choice("invalid_action", invalid_action, INVALID_ACTIONS)
        _check_choice("parallelism", parallelism, PARALLELISM)
        _check_number("reward_scale", reward_scale, minimum=0.0, optional=True)
        _check_number("invalid_penalty", invalid_penalty, minimum=0.0, inclusive=True)
        _check_number("episode_time_s", episode_time_s, minimum=0.0, optional=True)
        _check_number(
            "episode_queries", episode_queries, minimum=1, inclusive=True, optional=True, whole=True
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
        self.total_threads = total = self.cluster.total_threads
        if parallelism == "exact":
            self.extra_threads: tuple[int, ...] = tuple(range(1, total + 1))
        else:
            levels = min(int(scenario.env.parallelism_levels), total)
            self.extra_threads = tuple(ceil((i + 1) * total / levels) for i in range(levels))
        """Choice i of an action's second part adds this many threads."""
        self.limits = sized_limits(scenario, len(self.extra_threads))
        self.max_queries = int(self.limits.max_queries)
        self.max_pipelines = int(self.limits.max_pipelines_per_query)
        self.slots = self.max_queries * self.max_pipelines
        self.wait_slot = self.slots
        """Action slot meaning WAIT."""

        if features is None:
            classes = class_vocabulary(q.query_class for q in scenario.queries(VOCABULARY_SEED))
            features = FeatureConfig(query_classes=classes)
        self.feature_config = features
        self.feature_schema_version = FEATURE_SCHEMA_VERSION
        self._features = FeatureState(self.limits, features)

        self.observation_shapes = {**observation_shapes(self.limits), "waiting": (1,)}
        """The shape of each observation key before flattening (see `unflatten`)."""
        self.action_space = spaces.MultiDiscrete([self.slots + 1, len(self.extra_threads)])
        self.observation_space = _observation_space(
            self.observation_shapes, len(features.query_classes), self.mask_size
        )
        self._sim: Simulation | None = None
        self._obs: dict[str, np.ndarray] = {}
        self._mask = np.zeros(self.mask_size, np.int8)
        self._workload_size = 0
        self._waiting = 0
        self._t_s = 0.0
        self._completed_seen = 0
        self._terminal = False
        self.episode_seed = -1

    @property
    def mask_size(self) -> int:
        """Length of the flat action mask: slot mask (incl. WAIT) then thread choices."""
        return self.slots + 1 + len(self.extra_threads)

    @property
    def observation_values(self) -> int:
        """Values in one observation, every key counted."""
        return observation_values(self.max_queries, self.max_pipelines, len(self.extra_threads))

    # ----------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A fresh episode: workload and execution noise of `seed` (same seed, same episode).

        Without a seed the workload seed is drawn from the env's generator in the scenario's
        training range, so training never replays an evaluation seed by accident.
        """
        super().reset(seed=seed)
        if options:  # gymnasium passes options through; this env takes none
            raise ValueError(f"reset options {sorted(options)}: this env takes none")
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
        return obs, self._info((), invalid=False)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        sim = self._sim
        if sim is None or self._terminal:
            raise gym.error.ResetNeeded("call reset() before step(): no episode is running")
        slot, choice = self._parse(action)
        problem = self._problem(slot)
        if problem and self.invalid_action == "raise":
            raise InvalidActionError(problem)
        if problem and not self._mask[self.wait_slot]:
            # Not even WAIT is legal: nothing happens (time cannot move on); the same state
            # encodes to the same arrays, fresh ones, whatever the caller did to the last.
            obs = self._observe(terminal=False)
            return obs, -self.invalid_penalty, False, False, self._info((), invalid=True)
        decision = WAIT if problem else self._to_decision(slot, choice)
        sim.apply(decision)
        terminal = sim.advance() is None
        obs = self._observe(terminal)
        t0_s, t1_s = self._t_s, sim.now_s
        completed = sim.completed
        new = tuple(completed[self._completed_seen :])
        self._completed_seen = len(completed)
        ids, arrivals = self._in_system()
        reward = self._reward(t0_s, t1_s, ids, arrivals, new)
        if problem:
            reward -= self.invalid_penalty
        self._t_s = t1_s
        truncated = not terminal and (
            (self.episode_time_s is not None and t1_s >= self.episode_time_s)
            or (self.episode_queries is not None and len(completed) >= self.episode_queries)
        )
        self._terminal = terminal or truncated  # either way the episode is over: reset
        return obs, reward, terminal, truncated, self._info(new, invalid=bool(problem))

    def render(self) -> str | np.ndarray | None:
        """`ansi`: one status line. `rgb_array`: the window as an image, a row of pixels per
        query and a column per thread, lit by the threads each query holds (recorded videos
        show load building up and draining)."""
        if self._sim is None or self.render_mode is None:
            return None
        sim = self._sim
        in_system = len(sim.active_queries)
        if self.render_mode == "ansi":
            busy = self.total_threads - sim.free_threads
            return (
                f"t={sim.now_s:.3f}s queries={in_system} waiting={self._waiting} "
                f"threads busy={busy}/{self.total_threads}"
            )
        image = np.zeros((self.max_queries, self.total_threads, 3), np.uint8)
        for row, query in enumerate(islice(sim.active_queries.values(), self.max_queries)):
            image[row, : min(query.threads, self.total_threads)] = (80, 160, 255)
        return np.repeat(np.repeat(image, RENDER_PIXELS, axis=0), RENDER_PIXELS, axis=1)

    def action_masks(self) -> np.ndarray:
        """The flat mask MaskablePPO reads: legal slots (WAIT last), then thread choices."""
        return self._mask.copy()

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
        """Metrics of the episode's finished queries (as `sim.simulate` returns them).

        After a truncation (TimeLimit, `episode_time_s`, `episode_queries`) the queries still
        running are left out and counted in `unfinished`.
        """
        return self.simulation.result(partial=True)

    def unflatten(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation's arrays in their structured shapes (views, not copies):
        pipelines[q, p, feature], adjacency[q, child, parent], and so on."""
        return {
            key: np.asarray(array).reshape(self.observation_shapes[key])
            if key in self.observation_shapes
            else np.asarray(array)
            for key, array in observation.items()
        }

    def decision_to_action(self, decision: Decision) -> np.ndarray:
        """The action that carries out `decision` in the current state."""
        if decision.pipeline is None:
            return np.array([self.wait_slot, 0], dtype=np.int64)
        query_id, index = decision.pipeline
        try:
            row = self._features.row_ids.index(query_id)
        except ValueError:
            raise InvalidActionError(
                f"decision names query {query_id}, which is not in the observation window"
            ) from None
        view = self.simulation.schedulable.get(decision.pipeline)
        if view is None:
            raise InvalidActionError(f"pipeline {decision.pipeline} is not schedulable now")
        limit = int(decision.limit)
        if limit <= view.threads:
            raise InvalidActionError(
                f"decision sets limit {limit} on pipeline {decision.pipeline}, which holds "
                f"{view.threads} threads: it binds nothing, and the env has no such action"
            )
        for choice, extra in enumerate(self.extra_threads):
            if min(view.threads + extra, self.total_threads) == limit:
                return np.array([row * self.max_pipelines + index, choice], dtype=np.int64)
        raise InvalidActionError(
            f"limit {limit} for a pipeline holding {view.threads} threads is not reachable by "
            f"adding one of {self.extra_threads}"
        )

    def action_to_decision(self, action: np.ndarray) -> Decision:
        """The Decision an action stands for; raises InvalidActionError if it is illegal now."""
        slot, choice = self._parse(action)
        problem = self._problem(slot)
        if problem:
            raise InvalidActionError(problem)
        return self._to_decision(slot, choice)

    # ----------------------------------------------------------------- internals
    def _parse(self, action: Any) -> tuple[int, int]:
        """(slot, choice) of an action of the space; anything else raises."""
        array = np.asarray(action)
        integral = array.dtype.kind in "iu" or (
            array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (array == np.rint(array))))
        )
        if array.shape != (2,) or not integral:  # (1, 2) is a batch of one: index it
            raise InvalidActionError(
                f"action {action!r} must be two integers (slot, thread choice) from "
                f"{self.action_space}"
            )
        slot, choice = (int(value) for value in array.reshape(-1))
        if not 0 <= slot <= self.wait_slot:
            raise InvalidActionError(f"action slot {slot} is out of range 0..{self.wait_slot}")
        if not 0 <= choice < len(self.extra_threads):
            top = len(self.extra_threads) - 1
            raise InvalidActionError(f"thread choice {choice} is out of range 0..{top}")
        return slot, choice

    def _problem(self, slot: int) -> str:
        """Why `slot` is not a legal target now, or "" when it is."""
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
            return f"action slot {slot}: row {row} holds no query ({count} in the window)"
        query_id = self._features.row_ids[row]
        if not self._features.pipeline_mask[row, index]:
            return f"action slot {slot}: query {query_id} has no pipeline {index}"
        return (
            f"action slot {slot}: pipeline ({query_id}, {index}) is not schedulable "
            "(not ready, finished, or every task started)"
        )

    def _to_decision(self, slot: int, choice: int) -> Decision:
        if slot == self.wait_slot:
            return WAIT
        row, index = divmod(slot, self.max_pipelines)
        ref = (self._features.row_ids[row], index)
        threads = self.simulation.schedulable[ref].threads
        return Decision(ref, min(threads + self.extra_threads[choice], self.total_threads))

    def _observe(self, terminal: bool) -> dict[str, np.ndarray]:
        sim = self._sim
        assert sim is not None
        view: Any = sim.observation
        in_system = len(sim.active_queries)
        self._waiting = max(0, in_system - self.max_queries)
        if self._waiting:
            view = _Window(view, self.max_queries)
        try:
            arrays = encode(view, self.limits, self._features)
        except FeatureLimitError as error:
            raise ScenarioError(self._source, error.knob, error.problem) from None
        obs = {key: arrays[key].reshape(-1).copy() for key in FEATURE_KEYS}
        for key in ID_KEYS:
            obs[key] = arrays[key].reshape(-1).astype(np.int32)
        for key in MASK_KEYS:  # bool and int8 share a layout: a plain copy converts
            obs[key] = arrays[key].reshape(-1).view(np.int8).copy()
        obs["waiting"] = np.array([self._waiting / self.max_queries], np.float32)
        mask = np.zeros(self.mask_size, np.int8)
        mask[: self.slots] = obs["schedulable"]
        # WAIT is illegal only when it would leave the cluster idle for good.
        idle = sim.free_threads == self.total_threads
        mask[self.wait_slot] = terminal or not (idle and sim.arrivals_so_far == self._workload_size)
        # A choice is offered while it adds no more than the free threads: beyond that it
        # binds the same threads as the last one offered.
        free = sim.free_threads
        extra = self.extra_threads
        mask[self.slots + 1 :] = [i == 0 or extra[i - 1] < free for i in range(len(extra))]
        obs["action_mask"] = mask
        self._mask = mask.copy()
        self._obs = obs  # the last observation returned, for wrappers and tests to inspect
        return obs

    def _in_system(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids and arrival times of every query in the system, those outside the window too
        (their waiting costs like any other)."""
        features = self._features
        count = features.num_queries
        if not self._waiting:
            return features.query_ids[:count], features.arrival_s[:count]
        queries = list(self.simulation.active_queries.values())
        ids = np.fromiter((q.query_id for q in queries), np.int64, len(queries))
        arrivals = np.fromiter((q.arrival_s for q in queries), float, len(queries))
        return ids, arrivals

    def _info(self, completed: tuple[CompletedQuery, ...], *, invalid: bool) -> dict[str, Any]:
        sim = self._sim
        assert sim is not None
        return {
            "sim_time_s": sim.now_s,
            "completed": completed,
            "action_mask": self._mask.copy(),
            "episode_seed": self.episode_seed,
            "waiting": self._waiting,
            "invalid_action": invalid,
        }


class _Window:
    """The live observation, showing only the oldest `size` queries in the system."""

    __slots__ = ("_observation", "queries")

    def __init__(self, observation: Observation, size: int) -> None:
        self._observation = observation
        self.queries = list(islice(observation.queries, size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observation, name)


def _check_number(
    option: str,
    value: Any,
    *,
    minimum: float,
    inclusive: bool = False,
    optional: bool = False,
    whole: bool = False,
) -> None:
    """A finite number (an integer where `whole`) above `minimum` (or at it, `inclusive`), or
    None where `optional`: a NaN penalty made every reward NaN, a negative one rewarded illegal
    actions, and a zero or negative episode length ended every episode after one step."""
    if value is None and optional:
        return
    kind = Integral if whole else Real
    number = isinstance(value, kind) and not isinstance(value, bool)
    try:
        good = number and isfinite(value) and (value >= minimum if inclusive else value > minimum)
    except OverflowError:  # an int beyond any float
        good = False
    if not good:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        rest = " or None" if optional else ""
        what = "an integer" if whole else "a finite number"
        raise LschedError(f"env option {option}: {value!r} is not {what} {bound}{rest}")


def _check_choice(option: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LschedError(
            f"env option {option}: {value!r} is not one of {', '.join(map(repr, allowed))}"
        )


def _observation_space(
    shapes: Mapping[str, tuple[int, ...]], classes: int, mask_size: int
) -> spaces.Dict:
    """Flat Boxes only: every library's policies and wrappers take these unconverted."""

    def size(key: str) -> tuple[int]:
        return (int(np.prod(shapes[key])),)

    bound = np.float32(FEATURE_BOUND)
    boxes: dict[str, spaces.Space[Any]] = {
        key: spaces.Box(-bound, bound, size(key), np.float32) for key in FEATURE_KEYS
    }
    boxes.update({key: spaces.Box(0, 1, size(key), np.int8) for key in MASK_KEYS})
    boxes["operator"] = spaces.Box(0, len(OPERATORS) - 1, size("operator"), np.int32)
    boxes["query_class"] = spaces.Box(0, classes, size("query_class"), np.int32)
    boxes["waiting"] = spaces.Box(0, bound, (1,), np.float32)
    boxes["action_mask"] = spaces.Box(0, 1, (mask_size,), np.int8)
    return spaces.Dict(boxes)
