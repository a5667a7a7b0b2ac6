"""The LSched policy: a graph network over query plans with a pipeline head and a limit head.

Like Decima, each pipeline's features are embedded and passed up its query's plan DAG — from
children (the pipelines that consume its output) to parents — for a few rounds, so a pipeline's
embedding summarises the work still below it. Pipelines are pooled into one summary per query
(with the query's own features) and the queries into one global summary (with the cluster and
workload features). The pipeline head scores every candidate pipeline (a softmax over the
candidates); the limit head picks a parallelism level for the chosen pipeline, from its own
features and its query's.

Inputs are a `PolicyBatch`: one or more observations flattened into index tensors (pipelines,
queries and plan edges of all graphs concatenated), so a forward pass is a handful of matrix
products, gathers and `index_add_`s whatever the number of queries — no Python loop over
pipelines and no torch-geometric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Sizes of the network. Stored in every checkpoint; a policy loads only with its own."""

    pipeline_features: int
    """Width of one pipeline's feature vector (from agents.features)."""
    query_features: int
    """Width of one query's feature vector, workload features included."""
    global_features: int
    """Width of the cluster-wide feature vector."""
    limit_levels: int = 10
    """Parallelism levels the limit head chooses from (see `limit_for_level`)."""
    hidden: int = 32
    """Width of the hidden layers of every small MLP."""
    embed: int = 16
    """Width of pipeline, query and global embeddings."""
    rounds: int = 6
    """Message-passing rounds: a pipeline sees descendants up to this many edges away."""

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PolicyBatch(NamedTuple):
    """Observations as flat tensors; B graphs, N pipelines, Q queries, E plan edges in all.

    Indices point into the concatenated tensors of the batch, so one graph's pipelines may sit
    anywhere; `pipeline_query` and `query_graph` say which query and observation each belongs to.
    """

    pipeline_x: Tensor
    """[N, pipeline_features] float32."""
    query_x: Tensor
    """[Q, query_features] float32."""
    global_x: Tensor
    """[B, global_features] float32."""
    pipeline_query: Tensor
    """[N] int64: the query (row of query_x) of each pipeline."""
    query_graph: Tensor
    """[Q] int64: the observation (row of global_x) of each query."""
    edge_child: Tensor
    """[E] int64: pipeline whose embedding is sent (a consumer) ..."""
    edge_parent: Tensor
    """[E] int64: ... to the pipeline it depends on (a producer, `child.parents` contains it)."""
    candidate: Tensor
    """[N] bool: pipelines the policy may pick (schedulable and able to take more threads)."""
    min_level: Tensor
    """[N] int64: lowest limit level that would add a thread to the pipeline (levels below
    are at or under the threads it holds, so picking them would bind nothing)."""
    wait_ok: Tensor
    """[B] bool: the observation allows WAIT (leaving free threads idle until the next event),
    i.e. some task is running, so an event is sure to come."""


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, outputs),
    )


class Policy(nn.Module):
    """Scores candidate pipelines and parallelism levels; see the module docstring."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        h, e = config.hidden, config.embed
        self.pipeline_in = _mlp(config.pipeline_features, h, e)
        self.message = nn.Sequential(nn.Linear(e, h), nn.LeakyReLU(0.2), nn.Linear(h, e))
        self.update = nn.Sequential(nn.Linear(2 * e, h), nn.LeakyReLU(0.2), nn.Linear(h, e))
        self.query_in = _mlp(config.query_features + e, h, e)
        self.global_in = _mlp(config.global_features + e, h, e)
        self.pipeline_head = _mlp(config.pipeline_features + 3 * e, h, 1)
        self.wait_head = _mlp(config.global_features + e, h, 1)
        self.limit_head = _mlp(
            config.pipeline_features + config.query_features + 3 * e, h, config.limit_levels
        )

    # ------------------------------------------------------------------ embeddings
    def embed(self, batch: PolicyBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(pipeline [N, e], query [Q, e], global [B, e]) embeddings."""
        base = self.pipeline_in(batch.pipeline_x)
        node = base
        if batch.edge_child.numel():
            child, parent = batch.edge_child, batch.edge_parent
            for _ in range(self.config.rounds):
                sent = self.message(node)[child]
                received = torch.zeros_like(node).index_add_(0, parent, sent)
                node = base + self.update(torch.cat((base, received), dim=1))
        queries = batch.query_x.shape[0]
        query_pool = _segment_mean(node, batch.pipeline_query, queries)
        query = self.query_in(torch.cat((batch.query_x, query_pool), dim=1))
        graphs = batch.global_x.shape[0]
        global_pool = _segment_mean(query, batch.query_graph, graphs)
        glob = self.global_in(torch.cat((batch.global_x, global_pool), dim=1))
        return node, query, glob

    def forward(self, batch: PolicyBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(pipeline logits [N] with non-candidates at -inf, WAIT logits [B] (-inf where not
        allowed), pipeline embeddings, query embeddings, global embeddings)."""
        node, query, glob = self.embed(batch)
        node_query = batch.pipeline_query
        node_global = batch.query_graph[node_query]
        features = torch.cat((batch.pipeline_x, node, query[node_query], glob[node_global]), dim=1)
        logits = self.pipeline_head(features).squeeze(1)
        logits = logits.masked_fill(~batch.candidate, float("-inf"))
        wait = self.wait_head(torch.cat((batch.global_x, glob), dim=1)).squeeze(1)
        wait = wait.masked_fill(~batch.wait_ok, float("-inf"))
        return logits, wait, node, query, glob

    def limit_logits(
        self, batch: PolicyBatch, chosen: Tensor, node: Tensor, query: Tensor, glob: Tensor
    ) -> Tensor:
        """[K, levels] limit logits for chosen pipelines (indices into N); useless levels -inf."""
        chosen_query = batch.pipeline_query[chosen]
        features = torch.cat(
            (
                batch.pipeline_x[chosen],
                batch.query_x[chosen_query],
                node[chosen],
                query[chosen_query],
                glob[batch.query_graph[chosen_query]],
            ),
            dim=1,
        )
        logits = self.limit_head(features)
        levels = torch.arange(self.config.limit_levels, device=logits.device)
        useless = levels.unsqueeze(0) < batch.min_level[chosen].unsqueeze(1)
        return logits.masked_fill(useless, float("-inf"))

    # ------------------------------------------------------------------ acting
    @torch.inference_mode()
    def act(
        self, batch: PolicyBatch, uniforms: tuple[float, float] | None = None
    ) -> tuple[int, int]:
        """(pipeline index into N, limit level) for a one-graph batch; (WAIT_ACTION, 0) to wait.

        Greedy (the most likely pipeline, then level) when `uniforms` is None; otherwise two
        uniform draws in [0, 1) pick by inverse CDF, so the caller's Generator owns the sampling.
        """
        logits, wait, node, query, glob = self(batch)
        options = torch.cat((logits, wait))  # the last entry is WAIT
        if uniforms is None:
            chosen = int(torch.argmax(options))
        else:
            chosen = _inverse_cdf(options, uniforms[0])
        if chosen == len(logits):
            return WAIT_ACTION, 0
        index = torch.tensor([chosen])
        limit = self.limit_logits(batch, index, node, query, glob)[0]
        level = int(torch.argmax(limit)) if uniforms is None else _inverse_cdf(limit, uniforms[1])
        return chosen, level

    @torch.inference_mode()
    def act_near(
        self,
        batch: PolicyBatch,
        anchor: tuple[int, int],
        margin: float,
        *,
        level_limits: Sequence[int] | None = None,
        pipeline_groups: Sequence[int] | None = None,
    ) -> tuple[int, int] | None:
        """The greedy action of `act` if the policy prefers its decision to `anchor`'s (another
        scheduler's action, as `act` returns them) by at least `margin` in log-likelihood; None:
        keep the anchor. An illegal anchor (masked pipeline, level or WAIT) never wins.

        Safe policy improvement in the manner of SPIBB (Laroche et al., ICML 2019): deviate
        from the baseline only where the policy is confident, so the small, noisy preferences
        a policy-gradient fine-tune leaves everywhere do not replace the baseline's choice.

        Decisions, not indices, are compared: actions whose pipelines share a group
        (`pipeline_groups`, one entry per pipeline; at query level, its query) and whose
        levels grant the same threads (`level_limits`, one entry per level; on a small
        cluster several levels are 1 thread) are one decision, whose likelihood is the sum of
        theirs — so another spelling of the guide's decision is no deviation."""
        logits, wait, node, query, glob = self(batch)
        options = torch.log_softmax(torch.cat((logits, wait)), dim=0)
        levels = self.config.limit_levels
        limits = torch.as_tensor(
            list(range(levels)) if level_limits is None else level_limits, dtype=torch.long
        )
        groups = torch.as_tensor(
            list(range(len(logits))) if pipeline_groups is None else pipeline_groups,
            dtype=torch.long,
        )

        def decision_log_p(index: int, level: int) -> float:
            """log π of every action that makes the same decision as (index, level)."""
            if index == WAIT_ACTION:
                return float(options[len(logits)])
            members = torch.nonzero((groups == groups[index]) & torch.isfinite(logits)).flatten()
            if not len(members):
                return float("-inf")
            level_log_p = torch.log_softmax(
                self.limit_logits(batch, members, node, query, glob), dim=1
            )
            same = level_log_p[:, limits == limits[level]]
            return float(torch.logsumexp(options[members] + torch.logsumexp(same, 1), 0))

        chosen, level = int(torch.argmax(options)), 0
        if chosen == len(logits):
            chosen = WAIT_ACTION
        else:
            index = torch.tensor([chosen])
            level = int(torch.argmax(self.limit_logits(batch, index, node, query, glob)[0]))
        index, anchor_level = anchor
        if chosen == WAIT_ACTION or index == WAIT_ACTION:
            same_decision = chosen == index
        else:
            same_decision = bool(
                groups[chosen] == groups[index] and limits[level] == limits[anchor_level]
            )
        if same_decision:
            return None  # the guide's own decision
        anchor_p = decision_log_p(index, anchor_level)
        if math.isfinite(anchor_p) and decision_log_p(chosen, level) - anchor_p < margin:
            return None
        return chosen, level

    def log_probs(
        self, batch: PolicyBatch, chosen: Tensor, levels: Tensor, pipeline_graph: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(log π(pipeline, level) [B], entropy of both heads [B]) of recorded actions.

        `chosen` [B] indexes pipelines of the batch (or is WAIT_ACTION), `levels` [B] their
        levels, and `pipeline_graph` [N] the observation of each pipeline
        (query_graph[pipeline_query]). A WAIT has no level: only the pipeline head counts.
        """
        pipeline_logits, wait, node, query, glob = self(batch)
        graphs = batch.global_x.shape[0]
        nodes = pipeline_logits.shape[0]
        # WAIT of graph b is entry N + b of the extended candidate list.
        logits = torch.cat((pipeline_logits, wait))
        pipeline_graph = torch.cat((pipeline_graph, torch.arange(graphs)))
        waits = chosen == WAIT_ACTION
        picked_option = torch.where(waits, nodes + torch.arange(graphs), chosen)
        chosen = torch.where(waits, torch.zeros_like(chosen), chosen)
        log_p = _segment_log_softmax(logits, pipeline_graph, graphs)
        finite = torch.isfinite(log_p)
        p = torch.where(finite, log_p.exp(), torch.zeros_like(log_p))
        pipe_entropy = torch.zeros(graphs, dtype=log_p.dtype).index_add_(
            0, pipeline_graph, -(p * torch.where(finite, log_p, torch.zeros_like(log_p)))
        )
        raw = self.limit_logits(batch, chosen, node, query, glob)
        # A WAIT row points at pipeline 0, whose levels may all be masked: neutralise it.
        raw = torch.where(waits.unsqueeze(1), torch.zeros_like(raw), raw)
        limit = torch.log_softmax(raw, dim=1)
        limit_finite = torch.isfinite(limit)
        limit_p = torch.where(limit_finite, limit.exp(), torch.zeros_like(limit))
        limit_entropy = -(limit_p * torch.where(limit_finite, limit, torch.zeros_like(limit))).sum(
            1
        )
        limit_picked = limit.gather(1, levels.unsqueeze(1)).squeeze(1)
        zero = torch.zeros_like(limit_picked)
        picked = log_p[picked_option] + torch.where(waits, zero, limit_picked)
        return picked, pipe_entropy + torch.where(waits, zero, limit_entropy)


WAIT_ACTION = -1
"""The pipeline index `act` returns, and `log_probs` accepts, for WAIT."""


def _segment_mean(values: Tensor, segment: Tensor, segments: int) -> Tensor:
    total = torch.zeros(segments, values.shape[1], dtype=values.dtype).index_add_(
        0, segment, values
    )
    count = torch.zeros(segments, dtype=values.dtype).index_add_(
        0, segment, torch.ones_like(segment, dtype=values.dtype)
    )
    return total / count.clamp(min=1.0).unsqueeze(1)


def _segment_log_softmax(logits: Tensor, segment: Tensor, segments: int) -> Tensor:
    """log-softmax of `logits` within each segment; -inf entries stay -inf."""
    peak = torch.full((segments,), float("-inf"), dtype=logits.dtype).scatter_reduce(
        0, segment, logits, reduce="amax", include_self=True
    )
    shifted = logits - peak[segment].detach()
    exp = torch.where(torch.isfinite(shifted), shifted.exp(), torch.zeros_like(shifted))
    total = torch.zeros(segments, dtype=logits.dtype).index_add_(0, segment, exp)
    return shifted - total.log()[segment]


def _inverse_cdf(logits: Tensor, uniform: float) -> int:
    """The entry whose cumulative probability first exceeds `uniform` (never a -inf one)."""
    cumulative = torch.cumsum(torch.softmax(logits, dim=0), dim=0).numpy()
    index = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
    if index >= len(cumulative):  # rounding at the top: the last entry with probability
        index = int(np.flatnonzero(np.isfinite(logits.numpy()))[-1])
    return index


def limit_for_level(level: int, levels: int, total_threads: int) -> int:
    """Threads of limit level `level` (0-based) among `levels`: 1 thread, then the top
    `levels`−1 fractions of the series 1, 3/4, 1/2, 3/8, 1/4, 3/16, 1/8, ... of all threads.

    Two steps per doubling, so both a fair share of a busy cluster (a few threads) and the
    power-of-two caps a tuned heuristic picks are levels: 10 levels on 32 threads are
    1, 2, 3, 4, 6, 8, 12, 16, 24, 32.
    """
    if level <= 0:
        return 1
    steps_down = levels - 1 - level  # 0 for the top level (every thread)
    fraction = (0.5 ** (steps_down // 2)) * (0.75 if steps_down % 2 else 1.0)
    return max(1, min(total_threads, math.ceil(total_threads * fraction - 1e-9)))


def collate(
    steps: Sequence[Any], actions: Sequence[tuple[int, int]]
) -> tuple[PolicyBatch, Tensor, Tensor, Tensor]:
    """Concatenate one-graph inputs (agent `Step`s) into one batch, offsetting every index.

    Returns (batch, chosen pipeline per graph [B], level per graph [B], graph of each pipeline [N]).
    """
    pipeline_offsets = np.cumsum([0] + [len(s.pipeline_x) for s in steps])
    query_offsets = np.cumsum([0] + [len(s.query_x) for s in steps])
    pipeline_query = np.concatenate(
        [s.pipeline_query + query_offsets[k] for k, s in enumerate(steps)]
    )
    query_graph = np.repeat(np.arange(len(steps)), np.diff(query_offsets))
    batch = PolicyBatch(
        torch.from_numpy(np.concatenate([s.pipeline_x for s in steps])),
        torch.from_numpy(np.concatenate([s.query_x for s in steps])),
        torch.from_numpy(np.stack([s.global_x for s in steps])),
        torch.from_numpy(pipeline_query),
        torch.from_numpy(query_graph),
        torch.from_numpy(
            np.concatenate([s.edge_child + pipeline_offsets[k] for k, s in enumerate(steps)])
        ),
        torch.from_numpy(
            np.concatenate([s.edge_parent + pipeline_offsets[k] for k, s in enumerate(steps)])
        ),
        torch.from_numpy(np.concatenate([s.candidate for s in steps])),
        torch.from_numpy(np.concatenate([s.min_level for s in steps])),
        torch.tensor([bool(s.wait_ok) for s in steps]),
    )
    chosen = torch.from_numpy(
        np.array(
            [
                WAIT_ACTION if a[0] == WAIT_ACTION else a[0] + pipeline_offsets[k]
                for k, a in enumerate(actions)
            ],
            dtype=np.int64,
        )
    )
    levels = torch.tensor([a[1] for a in actions], dtype=torch.int64)
    pipeline_graph = torch.from_numpy(query_graph[pipeline_query])
    return batch, chosen, levels, pipeline_graph
