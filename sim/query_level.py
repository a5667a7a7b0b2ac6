"""Query-level decisions: which waiting query starts next, and with how many threads.

Real fleets steer a warehouse this way (Redshift's WLM queues, Snowflake's concurrency level),
and so does Decima (which job, how many executors): a query, once started, keeps the threads it
was granted until it ends, and the engine's own task scheduler runs its pipelines inside them.

`QueryLevel(policy)` makes a `QueryPolicy` a `Scheduler` the simulator runs unchanged. It asks
the policy whenever a query has arrived or finished since it last asked, and runs each started
query's pipelines by the engine rule: every granted thread the query is not using goes to its
first ready pipeline in plan order — how DuckDB's threads take the next task of the oldest ready
pipeline, and the rule `lsched calibrate` fits each pipeline's scalability under. A granted
thread the query cannot use (its ready pipelines have no tasks left) stays idle, as a process
started with `SET threads = k` keeps its k threads.

Deciding is not free on a real engine: the scheduler runs on the engine's cores while the
threads it is about to grant wait. `QueryLevel(policy, decision_s=...)` charges each ask of the
policy that many seconds: the starts of one admission begin `asks × decision_s` later (as the
real-engine runner submits them after its admission). `lsched real` measures each agent's
`decision_s` and predicts with it; 0 (the default) makes deciding free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from sim.interface import WAIT, Decision, Observation, QueryView
from sim.model import ClusterConfig


@dataclass(frozen=True, slots=True)
class Start:
    """Start waiting query `query_id` with `threads` threads, which it keeps until it ends."""

    query_id: int
    threads: int


@dataclass(frozen=True, slots=True)
class QueryState:
    """What a query-level policy decides on, besides the full observation."""

    obs: Observation
    waiting: Sequence[QueryView]
    """Queries that have arrived and not been started, in arrival order."""
    running: Mapping[int, int]
    """Started query id → the threads it was granted."""
    free_threads: int
    """Threads granted to no query."""


@runtime_checkable
class QueryPolicy(Protocol):
    """Decides at query level: asked at arrivals and finishes while queries wait."""

    def reset(self, cluster: ClusterConfig) -> None: ...

    def start(self, state: QueryState) -> Start | None:
        """A query to start now with its threads, or None to leave the rest waiting."""
        ...


class Admission(NamedTuple):
    """What one round of asking a query-level policy gave."""

    starts: list[Start]
    asked: int
    """How many times the policy was asked (each ask is a decision the scheduler pays for)."""


class QueryLevel:
    """A Scheduler that carries out a QueryPolicy's decisions (see the module docstring)."""

    def __init__(self, policy: QueryPolicy, decision_s: float = 0.0) -> None:
        if isinstance(decision_s, bool) or not 0 <= decision_s < math.inf:
            raise ValueError(f"decision_s must be a number of seconds >= 0 (got {decision_s!r})")
        self.policy = policy
        self.decision_s = float(decision_s)
        """Seconds each ask of the policy takes on the engine's clock (module docstring)."""
        self._granted: dict[int, int] = {}
        self._held: dict[int, tuple[float, float]] = {}
        """Query started with a delay → (the instant it started, the delay)."""
        self._asked_at = (-1, -1)
        self._total = 0

    def reset(self, cluster: ClusterConfig) -> None:
        self.policy.reset(cluster)
        self._granted = {}
        self._held = {}
        self._asked_at = (-1, -1)
        self._total = cluster.total_threads

    def describe(self) -> str | None:
        """Its policy's own account of what it runs, where the policy gives one."""
        describe = getattr(self.policy, "describe", None)
        return describe() if callable(describe) else None

    @property
    def query_level(self) -> QueryLevel:
        """Itself: what the real-engine runner asks an agent for (Tuned answers its choice)."""
        return self

    @property
    def granted(self) -> Mapping[int, int]:
        """Started, unfinished query id → its threads."""
        return self._granted

    def decide(self, obs: Observation) -> Decision:
        moment = (obs.arrivals_so_far, len(obs.completed))
        if moment != self._asked_at:
            self._asked_at = moment
            self._forget_finished(obs)
            self._admit(obs)
        granted = self._granted
        best = None
        for pipeline in obs.schedulable:
            threads = granted.get(pipeline.query_id)
            if threads is None or obs.query(pipeline.query_id).threads >= threads:
                continue
            key = (pipeline.query_id, pipeline.index)
            if best is None or key < best[0]:
                best = (key, pipeline, threads)
        if best is None:
            return WAIT
        _, pipeline, threads = best
        spare = threads - obs.query(pipeline.query_id).threads
        delay = 0.0
        held = self._held.get(pipeline.query_id)
        if held is not None:  # threads bound at the instant of its start wait for the decision
            if held[0] == obs.now_s:
                delay = held[1]
            else:
                del self._held[pipeline.query_id]
        return Decision(pipeline.ref, pipeline.threads + spare, delay)

    def _forget_finished(self, obs: Observation) -> None:
        active = {q.query_id for q in obs.queries}
        for query_id in [q for q in self._granted if q not in active]:
            del self._granted[query_id]
            self._held.pop(query_id, None)

    def _admit(self, obs: Observation) -> None:
        waiting = [q for q in obs.queries if q.query_id not in self._granted]
        admission = admit(self.policy, obs, waiting, self._granted, self._total)
        delay = admission.asked * self.decision_s
        for choice in admission.starts:
            self._granted[choice.query_id] = choice.threads
            if delay:
                self._held[choice.query_id] = (obs.now_s, delay)


def admit(
    policy: QueryPolicy,
    obs: Observation,
    waiting: Sequence[QueryView],
    granted: Mapping[int, int],
    total_threads: int,
) -> Admission:
    """Ask `policy` for starts until it waits, nothing waits or no thread is free; each start
    is checked (a waiting query, 1..free threads). The simulator's QueryLevel and the
    real-engine runner both admit through here."""
    granted = dict(granted)
    waiting = list(waiting)
    starts: list[Start] = []
    asked = 0
    while True:
        free = total_threads - sum(granted.values())
        if free <= 0 or not waiting:
            return Admission(starts, asked)
        asked += 1
        choice = policy.start(QueryState(obs, tuple(waiting), dict(granted), free))
        if choice is None:
            return Admission(starts, asked)
        if not isinstance(choice, Start):
            raise ValueError(f"a query policy returns Start or None, not {choice!r}")
        position = next((i for i, q in enumerate(waiting) if q.query_id == choice.query_id), None)
        if position is None:
            raise ValueError(f"query {choice.query_id} is not waiting to start")
        if isinstance(choice.threads, bool) or not 1 <= choice.threads <= free:
            raise ValueError(
                f"query {choice.query_id}: {choice.threads} threads is out of range 1..{free}"
            )
        granted[choice.query_id] = int(choice.threads)
        del waiting[position]
        starts.append(Start(choice.query_id, int(choice.threads)))
