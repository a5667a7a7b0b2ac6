"""The learned scheduler (LSched): a graph policy over query plans, trained by policy gradient.

Importing this package registers the agent `lsched` (the shipped pretrained policy) with
`agents.registry`; `lsched:PATH` (or `lsched` with option `checkpoint=PATH`) loads a checkpoint
written by `lsched train`.
"""

from agents.learned.agent import LearnedScheduler, ObservationLimits, PolicyOptions, Recorder
from agents.learned.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint
from agents.learned.factory import PRETRAINED, lsched_agent
from agents.learned.policy import Policy, PolicyBatch, PolicyConfig
from agents.registry import register

register("lsched", lsched_agent, replace=True)

__all__ = [
    "PRETRAINED",
    "CheckpointError",
    "CheckpointInfo",
    "LearnedScheduler",
    "ObservationLimits",
    "Policy",
    "PolicyBatch",
    "PolicyConfig",
    "PolicyOptions",
    "Recorder",
    "load_checkpoint",
    "lsched_agent",
]
