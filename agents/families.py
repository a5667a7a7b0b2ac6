"""The heuristics by name: the one table the registry, `tuned` and the docs derive from.

A new heuristic is a class (agents.heuristics or its own module) and one line here; the
registry then builds it by this name, checks its knobs (`Heuristic.knobs_read`), and `tuned`
searches it unless its class says `tunable = False`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agents.heuristics import (
    CriticalPathFirst,
    Fair,
    Fifo,
    Heuristic,
    RandomPick,
    Sjf,
    Srpt,
    WeightedFair,
    _PriorityRule,
)
from agents.predictor import PredictedSrpt
from agents.theory import HeSrpt, LeastParallelizableFirst, Serpt

HEURISTICS: Mapping[str, type[Heuristic]] = MappingProxyType(
    {
        "fifo": Fifo,
        "sjf": Sjf,
        "srpt": Srpt,
        "fair": Fair,
        "weighted_fair": WeightedFair,
        "wfair": WeightedFair,
        "cpf": CriticalPathFirst,
        "random": RandomPick,
        "hesrpt": HeSrpt,
        "lpf": LeastParallelizableFirst,
        "serpt": Serpt,
        "predicted_srpt": PredictedSrpt,
    }
)
"""Every heuristic by registry name; an alias (wfair) maps to the class of the name before it."""


def _first_names() -> tuple[str, ...]:
    seen: set[type[Heuristic]] = set()
    names = []
    for name, cls in HEURISTICS.items():
        if cls.tunable and cls not in seen:
            seen.add(cls)
            names.append(name)
    return tuple(names)


FAMILIES: tuple[str, ...] = _first_names()
"""What `tuned` may search: each tunable class once, under its first name, in table order."""
PRIORITY_FAMILIES = frozenset(
    name for name in FAMILIES if issubclass(HEURISTICS[name], _PriorityRule)
)
"""Families that hand the best pipeline every thread up to a cap (agents.heuristics)."""
