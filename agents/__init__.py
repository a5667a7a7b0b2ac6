"""Who decides: baseline heuristics, the tuned meta-agent, and the registry that names them.

Agents talk to the simulator only through `sim.interface`; they never import `lsched`.
"""

from agents.context import AgentContext, AgentError, AgentOptionError, UnknownAgentError
from agents.heuristics import (
    CriticalPathFirst,
    Fair,
    Fifo,
    Heuristic,
    Knobs,
    RandomPick,
    Sjf,
    Srpt,
    WeightedFair,
)
from agents.registry import AGENTS, AgentFactory, known_agents, make_agent, register
from agents.tuned import Candidate, Tuned, TunedChoice, TuningBudget

__all__ = [
    "AGENTS",
    "AgentContext",
    "AgentError",
    "AgentFactory",
    "AgentOptionError",
    "Candidate",
    "CriticalPathFirst",
    "Fair",
    "Fifo",
    "Heuristic",
    "Knobs",
    "RandomPick",
    "Sjf",
    "Srpt",
    "Tuned",
    "TunedChoice",
    "TuningBudget",
    "UnknownAgentError",
    "WeightedFair",
    "known_agents",
    "make_agent",
    "register",
]
