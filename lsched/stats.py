"""Small statistics shared by the run table, sweeps and the paired plots: one source for them.

Agents compared on one seed ran the same queries with the same execution noise, so the honest
error bar of "B against A" is over seeds of the per-seed ratio (a paired comparison), not the
spread of each agent's mean on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
"""Student-t 97.5% quantiles for 1..30 degrees of freedom (the normal 1.96 beyond)."""
Z_975 = 1.959964


def confidence_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the 95% Student-t confidence interval of the mean (0 for one value)."""
    count = len(values)
    if count < 2:
        return 0.0
    quantile = T_975[count - 2] if count - 1 <= len(T_975) else Z_975
    return float(quantile * np.std(values, ddof=1) / math.sqrt(count))


def paired_ratio(
    mine: Mapping[int, float], theirs: Mapping[int, float]
) -> tuple[float, float, int]:
    """(mean over the seeds both ran of mine / theirs on that seed, its 95% half-width, how
    many seeds were paired); (NaN, NaN, 0) when none was. `lsched run`'s vs column, the
    report's and the sweep table's vs best."""
    ratios = [mine[s] / theirs[s] for s in mine if s in theirs and theirs[s] > 0]
    if not ratios:
        return math.nan, math.nan, 0
    return float(np.mean(ratios)), confidence_halfwidth(ratios), len(ratios)


def best_baseline(means: Mapping[str, float]) -> str:
    """The agent with the lowest mean that is not a learned policy (any agent when all are
    learned): what "beats the heuristics by how much" is measured against."""
    from agents.registry import is_learned

    heuristics = [a for a in means if not is_learned(a)] or list(means)
    return min(heuristics, key=lambda a: means[a])
