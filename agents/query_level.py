"""Query-level forms of the baseline heuristics: which waiting query starts, with how many threads.

Each is a `sim.query_level.QueryPolicy`; the registry wraps it in `QueryLevel` when an agent
entry says `decisions: query` (`{name: sjf, decisions: query, max_concurrent_queries: 2}`), so
`lsched run` and the real-engine runner run the same thing. Knobs:

- `max_concurrent_queries` (WLM's slots): at most this many started queries at once; None: no
  limit beyond the threads.
- `max_parallelism`: threads a started query gets; None: an equal share of the cluster per slot
  (all threads without a slot limit), never more than are free.

`decision_s` (any query-level entry, `tuned` included): seconds each decision is charged on the
engine's clock (`sim.query_level.QueryLevel.decision_s`; default 0, free), to ask what a slower
scheduler would cost; `lsched real` measures the real one.

SRPT at query level is SJF: a query that has not started has all its estimated work left, and a
started query keeps its threads (no preemption), so both order waiting queries by estimated work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agents.context import AgentOptionError
from agents.heuristics import Knobs
from sim.interface import QueryView
from sim.model import ClusterConfig
from sim.query_level import QueryState, Start


@dataclass(frozen=True, slots=True)
class QueryKnobs:
    max_concurrent_queries: int | None = None
    max_parallelism: int | None = None

    def __post_init__(self) -> None:
        # the same checks and messages as the pipeline-level knobs of the same names
        Knobs(
            max_parallelism=self.max_parallelism,
            max_concurrent_queries=self.max_concurrent_queries,
        )


QUERY_KNOB_NAMES = frozenset(QueryKnobs.__dataclass_fields__)


def decision_seconds(value: object, decisions: str = "query") -> float:
    """An entry's `decision_s`, checked: the seconds each query-level decision is charged —
    only at query level (`decisions`), where the scheduler is a process beside the engine."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise AgentOptionError(f"option decision_s: must be seconds >= 0 (got {value!r})")
    if value and decisions != "query":
        raise AgentOptionError("option decision_s: charged at query level only (decisions: query)")
    return float(value)


class _QueryRule:
    """Start the waiting query with the smallest key while a slot and threads are free."""

    def __init__(self, knobs: QueryKnobs | None = None) -> None:
        self.knobs = knobs or QueryKnobs()
        self._total = 1

    def reset(self, cluster: ClusterConfig) -> None:
        self._total = cluster.total_threads

    def _threads(self, state: QueryState) -> int:
        if self.knobs.max_parallelism is not None:
            share = self.knobs.max_parallelism
        elif self.knobs.max_concurrent_queries is not None:
            share = max(1, self._total // self.knobs.max_concurrent_queries)
        else:
            share = self._total
        return min(share, state.free_threads)

    def start(self, state: QueryState) -> Start | None:
        slots = self.knobs.max_concurrent_queries
        if slots is not None and len(state.running) >= slots:
            return None
        query = min(state.waiting, key=self._key)
        return Start(query.query_id, self._threads(state))

    def _key(self, query: QueryView) -> tuple:
        return (query.arrival_s, query.query_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.knobs})"


class QueryFifo(_QueryRule):
    """Oldest waiting query first."""


class QuerySjf(_QueryRule):
    """Smallest estimated work first (also the query-level SRPT: see the module docstring)."""

    def _key(self, query: QueryView) -> tuple:
        return (query.est_work_s, query.arrival_s, query.query_id)


class QueryFair(_QueryRule):
    """Every waiting query starts as threads allow, each with an equal share of the cluster
    among the queries in the system (at least one thread)."""

    def _threads(self, state: QueryState) -> int:
        if self.knobs.max_parallelism is not None:
            return min(self.knobs.max_parallelism, state.free_threads)
        in_system = len(state.running) + len(state.waiting)
        slots = self.knobs.max_concurrent_queries
        if slots is not None:
            in_system = min(in_system, slots)
        return max(1, min(self._total // max(in_system, 1), state.free_threads))


QUERY_FORMS: dict[str, type[_QueryRule]] = {
    "fifo": QueryFifo,
    "sjf": QuerySjf,
    "srpt": QuerySjf,
    "fair": QueryFair,
}
"""Heuristics with a query-level form, by registry name."""
