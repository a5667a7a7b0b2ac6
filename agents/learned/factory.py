"""Building the `lsched` agent from a checkpoint (the shipped one unless a path is given)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from agents.context import AgentContext, AgentOptionError
from agents.features import FEATURE_SCHEMA_VERSION
from agents.learned.agent import INPUT_VERSION, LearnedScheduler, ObservationLimits
from agents.learned.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint
from agents.learned.policy import Policy

PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "policy.pt"
"""The policy `lsched` runs: trained by the command in pretrained/README.md."""

OPTIONS = ("checkpoint", "sample")


def lsched_agent(
    context: AgentContext, checkpoint: str | Path | None = None, sample: bool = False
) -> LearnedScheduler:
    """The learned scheduler; `checkpoint` a policy file (default: the shipped one).

    `sample` draws actions from the policy with the context's generator instead of taking
    the most likely one (what training does; evaluation is greedy).
    """
    if not isinstance(sample, bool):
        raise AgentOptionError(f"option sample: must be true or false (got {sample!r})")
    path = Path(checkpoint) if checkpoint is not None else PRETRAINED
    policy, info = cached_policy(str(path.resolve()) if path.exists() else str(path))
    limits = info.observation_limits
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
        workload_features=bool(info.extra.get("workload_features", True)),
    )


@lru_cache(maxsize=8)
def cached_policy(path: str) -> tuple[Policy, CheckpointInfo]:
    """Load once per process: the runner builds one agent per run. The policy is only read."""
    policy, info, _ = load_checkpoint(path, FEATURE_SCHEMA_VERSION)
    version = info.extra.get("input_version", INPUT_VERSION)
    if version != INPUT_VERSION:
        raise CheckpointError(
            f"{path}: input_version: trained on policy inputs version {version}, this lsched "
            f"builds version {INPUT_VERSION}; retrain with `lsched train`"
        )
    return policy, info
