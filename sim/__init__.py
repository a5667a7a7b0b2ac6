"""A SimPy model of an analytical database cluster running queries as pipeline DAGs.

Concepts: Cluster (nodes × threads), Query (a plan of Pipelines), Task (a morsel of a
pipeline), and a Scheduler deciding which pipeline gets threads. Knows nothing of gym or torch.
"""

from sim.engine import Simulation, simulate
from sim.interface import (
    WAIT,
    CompletedQuery,
    Decision,
    Observation,
    PipelineRef,
    PipelineView,
    QueryView,
    Scheduler,
)
from sim.model import ClusterConfig, FaultConfig, PipelineSpec, QuerySpec, validate_query
from sim.results import LowerBound, QueryRecord, SimResult, TaskTrace

__all__ = [
    "WAIT",
    "ClusterConfig",
    "CompletedQuery",
    "Decision",
    "FaultConfig",
    "LowerBound",
    "Observation",
    "PipelineRef",
    "PipelineSpec",
    "PipelineView",
    "QueryRecord",
    "QuerySpec",
    "QueryView",
    "Scheduler",
    "SimResult",
    "Simulation",
    "TaskTrace",
    "simulate",
    "validate_query",
]
