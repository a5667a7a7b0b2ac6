"""The pipeline breakers: what ends a pipeline of a query plan, named once for every layer.

Template files may use these names only (lsched.workloads.templates checks them), the
simulator carries them on `PipelineSpec.operator`, and schedulers may group or encode them
(agents.features maps them onto the learned policy's fixed slots).
"""

from __future__ import annotations

JOIN_OPERATORS = frozenset({"hash_build", "join_build", "delim_join"})
"""Breakers that build one side of a join (a hash table, a materialised side, a delim join)."""
AGGREGATE_OPERATORS = frozenset({"aggregate", "window"})
SORT_OPERATORS = frozenset({"sort", "top_n"})
OPERATORS = frozenset(
    JOIN_OPERATORS | AGGREGATE_OPERATORS | SORT_OPERATORS | {"cte", "limit", "exchange", "result"}
)
"""Every pipeline-breaker name a plan may use."""
