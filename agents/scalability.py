"""How well a pipeline scales, as a database can know it: from its breaker type and data size.

The simulator runs each pipeline at its own hidden serial fraction; a scheduler may not read it.
What a database does have is a per-operator-type model fitted on its own measurements (the
template files' `scalability_model`, fitted by `lsched calibrate` on TPC-H): an Amdahl serial
fraction per breaker type at a few data sizes. `ScalabilityPrior` carries that table to agents,
which are built without importing `lsched` (the runner fills `AgentContext.scalability`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_SERIAL_FRACTION = 0.02
"""What an agent assumes of every pipeline when it has neither a prior nor its own
`serial_fraction` option: the uniform overhead the model had before the measured world."""


@dataclass(frozen=True, slots=True)
class ScalabilityPrior:
    """Serial fraction per breaker type at each data size, "*" for types not in the table."""

    scale_factors: tuple[float, ...]
    """The data sizes (scale factors) the table is given at, ascending."""
    by_operator: Mapping[str, tuple[float, ...]]
    """Operator type -> serial fraction at each of `scale_factors` (one entry must be "*")."""
    data_multiplier: float = 1.0
    """A query's data size is its scale factor times this (the scenario's `work_multiplier`:
    Spark-like scenarios run data that many times larger)..."""
    class_multipliers: Mapping[str, float] = field(default_factory=dict)
    """... or this, for queries of a class whose streams all share one multiplier."""
    _memo: dict[tuple[str, float, str], float] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if "*" not in self.by_operator:
            raise ValueError('a scalability prior needs a "*" entry for other operator types')
        if not self.scale_factors or any(
            len(v) != len(self.scale_factors) for v in self.by_operator.values()
        ):
            raise ValueError("every operator needs one serial fraction per scale factor")
        object.__setattr__(self, "by_operator", MappingProxyType(dict(self.by_operator)))
        object.__setattr__(
            self, "class_multipliers", MappingProxyType(dict(self.class_multipliers))
        )

    def __hash__(self) -> int:
        return hash(
            (
                self.scale_factors,
                tuple(sorted(self.by_operator.items())),
                self.data_multiplier,
                tuple(sorted(self.class_multipliers.items())),
            )
        )

    def serial_fraction(self, operator: str, scale_factor: float, query_class: str = "") -> float:
        """The table's fraction for `operator` at the query's data size: linear in log data
        size between the table's sizes, held beyond its ends (as the templates are)."""
        key = (operator, scale_factor, query_class)
        value = self._memo.get(key)
        if value is None:
            multiplier = self.class_multipliers.get(query_class, self.data_multiplier)
            values = self.by_operator.get(operator, self.by_operator["*"])
            value = self._memo[key] = _interpolate(
                self.scale_factors, values, scale_factor * multiplier
            )
        return value


def _interpolate(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    if x <= xs[0]:
        return float(ys[0])
    if x >= xs[-1]:
        return float(ys[-1])
    for i in range(1, len(xs)):
        if x <= xs[i]:
            t = (math.log(x) - math.log(xs[i - 1])) / (math.log(xs[i]) - math.log(xs[i - 1]))
            return float(min(1.0, max(0.0, ys[i - 1] + t * (ys[i] - ys[i - 1]))))
    return float(ys[-1])


def speedup(serial_fraction: float, threads: int) -> float:
    """Amdahl per morsel, as the model runs it: k threads go k / (1 + f·(k−1))× as fast."""
    return threads / (1.0 + serial_fraction * (threads - 1))


def efficient_threads(serial_fraction: float, min_marginal_speedup: float, most: int) -> int:
    """The most threads (≤ `most`) whose last one still adds `min_marginal_speedup` to the
    speedup: beyond it a thread helps this pipeline less than it would help another."""
    k = 1
    while k < most and speedup(serial_fraction, k + 1) - speedup(serial_fraction, k) >= (
        min_marginal_speedup
    ):
        k += 1
    return k
