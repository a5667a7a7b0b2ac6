"""Lower bounds on latency that no schedule can beat, computed from the drawn task durations.

Both bounds ignore every overhead (moves, warm-up, parallel inefficiency, spill, faults), which
only lengthen a schedule, so a simulated mean latency is never below them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from sim.model import QuerySpec


def isolated_latency_s(
    query: QuerySpec, durations: Sequence[np.ndarray], total_threads: int
) -> float:
    """The plan alone on the cluster: its critical path, or its work over every thread.

    A pipeline cannot finish before its longest task, nor before its work spread over the
    threads it can use; and it cannot start before its parents finish. Sibling pipelines share
    the threads, so the query as a whole cannot finish before all its work spread over them.
    """
    finish = [0.0] * len(query.pipelines)
    work_s = 0.0
    for pipeline, task_s in zip(query.pipelines, durations, strict=True):
        start = max((finish[p] for p in pipeline.parents), default=0.0)
        width = min(pipeline.num_tasks, total_threads)
        pipeline_work_s = float(task_s.sum())
        work_s += pipeline_work_s
        finish[pipeline.index] = start + max(float(task_s.max()), pipeline_work_s / width)
    return max(max(finish), work_s / total_threads)


def fluid_srpt_mean_latency_s(
    arrivals_s: Sequence[float], work_s: Sequence[float], total_threads: int
) -> float:
    """Mean flow time of preemptive shortest-remaining-work on one server T times as fast.

    Any schedule on T threads can be replayed on a single speed-T server, and SRPT is optimal
    for mean flow time there, so this is a lower bound for every scheduler.
    """
    if not arrivals_s:
        return 0.0
    order = np.argsort(np.asarray(arrivals_s), kind="stable")
    arrivals = np.asarray(arrivals_s, dtype=float)[order]
    sizes = np.asarray(work_s, dtype=float)[order] / total_threads
    heap: list[tuple[float, int]] = []
    now = float(arrivals[0])
    total_flow = 0.0
    i = 0
    n = len(arrivals)
    while i < n or heap:
        if not heap:
            now = max(now, float(arrivals[i]))
        while i < n and arrivals[i] <= now:
            heapq.heappush(heap, (float(sizes[i]), i))
            i += 1
        remaining, job = heapq.heappop(heap)
        next_arrival = float(arrivals[i]) if i < n else float("inf")
        if now + remaining <= next_arrival:
            now += remaining
            total_flow += now - float(arrivals[job])
        else:
            heapq.heappush(heap, (remaining - (next_arrival - now), job))
            now = next_arrival
    return total_flow / n
