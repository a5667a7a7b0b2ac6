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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


class QueryLevel:
    """A Scheduler that carries out a QueryPolicy's decisions (see the module docstring)."""

    def __init__(self, policy: QueryPolicy) -> None:
        self.policy = policy
        self._granted: dict[int, int] = {}
        self._asked_at = (-1, -1)
        self._total = 0

    def reset(self, cluster: ClusterConfig) -> None:
        self.policy.reset(cluster)
        self._granted = {}
        self._asked_at = (-1, -1)
        self._total = cluster.total_threads

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
        return Decision(pipeline.ref, pipeline.threads + spare)

    def _forget_finished(self, obs: Observation) -> None:
        active = {q.query_id for q in obs.queries}
        for query_id in [q for q in self._granted if q not in active]:
            del self._granted[query_id]

    def _admit(self, obs: Observation) -> None:
        waiting = [q for q in obs.queries if q.query_id not in self._granted]
        for choice in admit(self.policy, obs, waiting, self._granted, self._total):
            self._granted[choice.query_id] = choice.threads


def admit(
    policy: QueryPolicy,
    obs: Observation,
    waiting: Sequence[QueryView],
    granted: Mapping[int, int],
    total_threads: int,
) -> list[Start]:
    """Ask `policy` for starts until it waits, nothing waits or no thread is free; each start
    is checked (a waiting query, 1..free threads). The simulator's QueryLevel and the
    real-engine runner both admit through here."""
    granted = dict(granted)
    waiting = list(waiting)
    starts: list[Start] = []
    while True:
        free = total_threads - sum(granted.values())
        if free <= 0 or not waiting:
            return starts
        choice = policy.start(QueryState(obs, tuple(waiting), dict(granted), free))
        if choice is None:
            return starts
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
