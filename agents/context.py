"""What an agent is built from, and the errors building one can raise.

Agents cannot import `lsched` (imports point `lsched` → `agents` → `sim`), so whoever builds
an agent hands it an `AgentContext`: the cluster, and — for agents that tune or train — a way
to draw training workloads and execution noise on seeds the runner keeps apart from evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agents.scalability import ScalabilityPrior
from sim.budget import Budget
from sim.model import ClusterConfig, QuerySpec


class AgentError(ValueError):
    """An agent that cannot be built as asked; the message names the agent and the field."""


class UnknownAgentError(AgentError):
    """A name no registered agent answers to; the message lists the known names."""


class AgentOptionError(AgentError):
    """An option an agent does not have, or a value it cannot take."""


class ChoiceStore(Protocol):
    """Where an agent that searches (`tuned`) keeps what it found between processes. `key` is
    the agent's digest of everything its search reads (workloads as drawn, noise, cluster,
    options); the store adds what the agent cannot see, such as the code that searched."""

    def load(self, key: str) -> Mapping[str, Any] | None: ...

    def save(self, key: str, document: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class AgentContext:
    """Everything an agent may use besides the observations it is shown while running."""

    cluster: ClusterConfig
    train_workload: Callable[[int], Sequence[QuerySpec]] | None
    """seed -> the queries of one training run (the scenario's workload stream)."""
    train_seeds: tuple[int, ...]
    """Seeds to tune or train on; disjoint from evaluation seeds (the runner chooses both)."""
    execution_rng: Callable[[int], np.random.Generator] | None
    """seed -> the execution-noise generator `sim.simulate` takes; None: default_rng(seed)."""
    rng: np.random.Generator
    """For agents that randomise (random); an agent spawns its own child stream from it."""
    oracle: bool = False
    """Whether the scenario shows true work to schedulers (heuristics ignore it)."""
    budget: Budget = field(default_factory=Budget)
    """Bounds on each simulation an agent runs to tune or train (the scenario's budget)."""
    scalability: ScalabilityPrior | None = None
    """The database's operator-type scalability model (agents.theory reads it); None: agents
    fall back to their `serial_fraction` option or agents.scalability's default."""
    choice_store: ChoiceStore | None = None
    """Keeps `tuned`'s choices across commands (lsched's is a folder on disk); None: searched
    in every process that needs one."""

    def execution_rng_for(self, seed: int) -> np.random.Generator:
        """The execution-noise generator of one training seed."""
        if self.execution_rng is None:
            return np.random.default_rng(seed)
        return self.execution_rng(seed)
