"""Building the `lsched` agent from a checkpoint (the shipped one unless a path is given)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from agents.context import AgentContext, AgentError, AgentOptionError
from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import INPUT_VERSION, LearnedScheduler, ObservationLimits
from agents.learned.checkpoint import CheckpointInfo, load_checkpoint
from agents.learned.policy import Policy
from sim.interface import Scheduler

PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "policy.pt"
"""The policy `lsched` runs: trained by the command in pretrained/README.md."""

OPTIONS = ("checkpoint", "sample")


def lsched_agent(
    context: AgentContext,
    checkpoint: str | Path | None = None,
    sample: bool = False,
    **unknown: object,
) -> LearnedScheduler:
    """The learned scheduler; `checkpoint` a policy file (default: the shipped one).

    `sample` draws actions from the policy with the context's generator instead of taking
    the most likely one (what training does; evaluation is greedy). Any other option is an
    error listing these two (OPTIONS).
    """
    if unknown:
        raise AgentOptionError(
            f"unknown option {sorted(unknown)[0]!r}; it takes: {', '.join(OPTIONS)}"
        )
    if checkpoint is not None and not isinstance(checkpoint, str | Path):
        raise AgentOptionError(f"option checkpoint: must be a file path (got {checkpoint!r})")
    if not isinstance(sample, bool):
        raise AgentOptionError(f"option sample: must be true or false (got {sample!r})")
    # One decision is a forward pass over a few hundred rows: torch's intra-op threads only add
    # synchronisation, and on a busy machine they made evaluation 12x slower (17 ms/decision).
    torch.set_num_threads(1)
    path = Path(checkpoint) if checkpoint is not None else PRETRAINED
    policy, info = cached_policy(str(path.resolve()) if path.exists() else str(path))
    limits = info.observation_limits
    guide_name = info.guide
    return LearnedScheduler(
        policy,
        ObservationLimits(
            max_queries=int(limits.get("max_queries", ObservationLimits.max_queries)),
            max_pipelines_per_query=int(
                limits.get("max_pipelines_per_query", ObservationLimits.max_pipelines_per_query)
            ),
            parallelism_levels=policy.config.limit_levels,
        ),
        rng=context.rng.spawn(1)[0] if sample else None,
        workload_features=info.workload_features,
        guide=_checkpoint_guide(path, guide_name, context) if guide_name else None,
    )


def _checkpoint_guide(path: Path, name: str, context: AgentContext) -> Scheduler:
    try:
        return build_guide(name, context)
    except AgentError as error:
        raise type(error)(f"checkpoint {path}: guide: {error}") from None


def build_guide(name: str, context: AgentContext) -> Scheduler:
    """The heuristic a policy was trained next to (`guide` in its checkpoint), e.g. `tuned`,
    built for this scenario's context (so `tuned` tunes on the scenario's training seeds)."""
    from agents.registry import make_agent  # the registry imports this package's parent

    if str(name).startswith("lsched"):
        raise AgentOptionError(f"guide {name!r}: a learned policy cannot guide another")
    return make_agent(str(name), context)


@lru_cache(maxsize=8)
def cached_policy(path: str) -> tuple[Policy, CheckpointInfo]:
    """Load once per process: the runner builds one agent per run. The policy is only read."""
    policy, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION, INPUT_VERSION)
    return policy, info
