"""The learned policy's query-level form: the same checkpoint, asked which waiting query starts.

The real engine is steered query by query (`sim.query_level`): when a query arrives or one
finishes, start a waiting query with k threads, which it keeps. The pipeline-level policy
already scores every schedulable pipeline and picks a thread limit; at query level it is
offered only the ready pipelines of waiting queries, the query of its choice starts with the
chosen level's threads (at most the free ones), and WAIT leaves the rest waiting. Its guide is
the guide's own query-level form (for `tuned`: the tuned query-level rule), whose proposed start
is shown to the policy as the guide feature on that query's first ready pipeline.
"""

from __future__ import annotations

import numpy as np

from agents.context import AgentOptionError
from agents.learned.agent import FOLLOW_GUIDE, LearnedScheduler
from agents.learned.policy import WAIT_ACTION
from sim.interface import WAIT, Decision, Scheduler
from sim.model import ClusterConfig
from sim.query_level import QueryLevel, QueryPolicy, QueryState, Start


class LearnedQueryPolicy:
    """A `QueryPolicy` driven by a pipeline-level `LearnedScheduler` (see the module docstring)."""

    def __init__(self, scheduler: LearnedScheduler, guide: Scheduler | None = None) -> None:
        if scheduler.guide is not None:
            raise ValueError("the query-level form asks its own guide: build the scheduler without")
        self.scheduler = scheduler
        self.guide = guide
        self._guide_policy: QueryPolicy | None = None

    def reset(self, cluster: ClusterConfig) -> None:
        self.scheduler.reset(cluster)
        self._guide_policy = None
        if self.guide is not None:
            self.guide.reset(cluster)
            form = getattr(self.guide, "query_level", None)
            if not isinstance(form, QueryLevel):
                raise AgentOptionError(f"guide {self.guide!r} has no query-level form")
            self._guide_policy = form.policy

    def start(self, state: QueryState) -> Start | None:
        obs = state.obs
        hint = None  # no guide: no guide features
        proposal = None
        if self._guide_policy is not None:
            proposal = self._guide_policy.start(state)
            hint = self._as_decision(proposal, state)
        step, rows, _ = self.scheduler.observe(obs, hint)
        ids = self.scheduler.query_ids_of(rows)
        waiting = np.array([q.query_id for q in state.waiting], np.int64)
        offered = step.candidate & np.isin(ids, waiting)
        if not offered.any():
            return None
        # WAIT (leave the rest waiting) only while a query runs, and, as at pipeline level,
        # only when the guide would wait too (PolicyOptions.wait_only_with_guide)
        wait_ok = bool(state.running)
        if hint is not None and self.scheduler.options.wait_only_with_guide:
            wait_ok = wait_ok and hint.pipeline is None
        step = step._replace(candidate=offered, wait_ok=wait_ok)
        limits = np.minimum(self.scheduler.limits_by_level(), max(1, state.free_threads))
        forced = self._forced(ids[offered], limits, wait_ok)
        if forced is not None:
            return forced
        # one decision: a query (any of its ready pipelines) and the threads it would get
        chosen, level = self.scheduler.act(step, pipeline_groups=ids, level_limits=limits)
        if (chosen, level) == FOLLOW_GUIDE:  # deviation_margin: the guide's start as it was
            return proposal
        if chosen == WAIT_ACTION:
            return None
        threads = self.scheduler.level_limit(level)
        return Start(int(ids[chosen]), max(1, min(threads, state.free_threads)))

    def _forced(self, offered: np.ndarray, limits: np.ndarray, wait_ok: bool) -> Start | None:
        """The start when only one is legal — one waiting query offered, every level granting
        the same threads, no WAIT (a query finished, one waits, one thread is free: a quarter
        to a third of the decisions on the duckdb streams) — so the greedy policy's forward
        pass could choose nothing else; None otherwise, and always while sampling."""
        if wait_ok or self.scheduler.rng is not None or (limits != limits[0]).any():
            return None
        queries = np.unique(offered)
        return Start(int(queries[0]), int(limits[0])) if len(queries) == 1 else None

    @staticmethod
    def _as_decision(proposal: Start | None, state: QueryState) -> Decision:
        """The guide's start as a pipeline decision: its query's first ready pipeline."""
        if proposal is None:
            return WAIT
        query = state.obs.query(proposal.query_id)
        ready = [p for p in query.pipelines if p.is_ready and not p.is_finished]
        if not ready:
            return WAIT
        return Decision(ready[0].ref, proposal.threads)

    def describe(self) -> str:
        return self.scheduler.describe(guided=self.guide is not None)

    def __repr__(self) -> str:
        return f"LearnedQueryPolicy(guide={self.guide!r})"
