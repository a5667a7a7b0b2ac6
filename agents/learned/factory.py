"""Building the `lsched` agent from a checkpoint (the shipped one unless a path is given)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import torch

from agents.context import AgentContext, AgentError, AgentOptionError
from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import INPUT_VERSION, LearnedScheduler, ObservationLimits, PolicyOptions
from agents.learned.checkpoint import CheckpointInfo, load_checkpoint
from agents.learned.policy import Policy
from agents.learned.query_level import LearnedQueryPolicy
from agents.query_level import decision_seconds
from sim.interface import Scheduler
from sim.query_level import QueryLevel

PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "policy.pt"
"""The policy `lsched` runs: trained by the command in pretrained/README.md."""

OPTIONS = ("checkpoint", "sample", "decisions", "deviation_margin", "decision_s")


def lsched_agent(
    context: AgentContext,
    checkpoint: str | Path | None = None,
    sample: bool = False,
    decisions: str = "pipeline",
    deviation_margin: float | None = None,
    decision_s: float = 0.0,
    **unknown: object,
) -> LearnedScheduler | QueryLevel:
    """The learned scheduler; `checkpoint` a policy file (default: the shipped one).

    `sample` draws actions from the policy with the context's generator instead of taking
    the most likely one (what training does; evaluation is greedy). `decisions: query` runs
    the same policy at query level (agents.learned.query_level), the form `lsched real` runs.
    `deviation_margin` replaces the checkpoint's (PolicyOptions.deviation_margin; 0: never
    gated by the guide; at query level the checkpoint's `query_deviation_margin`).
    `decision_s` (query level only) charges each decision that many seconds
    (QueryLevel.decision_s).
    Any other option is an error listing these (OPTIONS).
    """
    if unknown:
        raise AgentOptionError(
            f"unknown option {sorted(unknown)[0]!r}; it takes: {', '.join(OPTIONS)}"
        )
    if checkpoint is not None and not isinstance(checkpoint, str | Path):
        raise AgentOptionError(f"option checkpoint: must be a file path (got {checkpoint!r})")
    if not isinstance(sample, bool):
        raise AgentOptionError(f"option sample: must be true or false (got {sample!r})")
    if decisions not in ("pipeline", "query"):
        raise AgentOptionError(f"option decisions: {decisions!r}; one of pipeline, query")
    if deviation_margin is not None and (
        isinstance(deviation_margin, bool)
        or not isinstance(deviation_margin, int | float)
        or not deviation_margin >= 0
    ):
        raise AgentOptionError(
            f"option deviation_margin: must be a number >= 0 (got {deviation_margin!r})"
        )
    decision_s = decision_seconds(decision_s, decisions)
    # One decision is a forward pass over a few hundred rows: torch's intra-op threads only add
    # synchronisation, and on a busy machine they made evaluation 12x slower (17 ms/decision).
    torch.set_num_threads(1)
    path = Path(checkpoint) if checkpoint is not None else PRETRAINED
    policy, info = cached_policy(str(path.resolve()) if path.exists() else str(path))
    limits = info.observation_limits
    guide_name = info.guide
    query_level = decisions == "query"
    options = PolicyOptions.of(info)
    if query_level:
        options = replace(options, deviation_margin=info.query_deviation_margin)
    if deviation_margin is not None:
        options = replace(options, deviation_margin=float(deviation_margin))
    scheduler = LearnedScheduler(
        policy,
        ObservationLimits(
            max_queries=int(limits.get("max_queries", ObservationLimits.max_queries)),
            max_pipelines_per_query=int(
                limits.get("max_pipelines_per_query", ObservationLimits.max_pipelines_per_query)
            ),
            parallelism_levels=policy.config.limit_levels,
        ),
        rng=context.rng.spawn(1)[0] if sample else None,
        options=options,
        scalability=context.scalability,
        guide=_checkpoint_guide(path, guide_name, context)
        if guide_name and not query_level
        else None,
    )
    if not query_level:
        return scheduler
    guide = _checkpoint_guide(path, guide_name, context, decisions="query") if guide_name else None
    return QueryLevel(LearnedQueryPolicy(scheduler, guide), decision_s)


def _checkpoint_guide(path: Path, name: str, context: AgentContext, **options: object) -> Scheduler:
    try:
        return build_guide(name, context, **options)
    except AgentError as error:
        raise type(error)(f"checkpoint {path}: guide: {error}") from None


def build_guide(name: str, context: AgentContext, **options: object) -> Scheduler:
    """The heuristic a policy was trained next to (`guide` in its checkpoint), e.g. `tuned`,
    built for this scenario's context (so `tuned` tunes on the scenario's training seeds);
    `options` as an agent entry's (`decisions="query"`: its query-level form)."""
    from agents.registry import make_agent  # the registry imports this package's parent

    if str(name).startswith("lsched"):
        raise AgentOptionError(f"guide {name!r}: a learned policy cannot guide another")
    return make_agent(str(name), context, **options)


@lru_cache(maxsize=8)
def cached_policy(path: str) -> tuple[Policy, CheckpointInfo]:
    """Load once per process: the runner builds one agent per run. The policy is only read."""
    policy, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    return policy, info
