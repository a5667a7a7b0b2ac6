"""Arrival processes: when queries arrive, and which slot of a fixed template list each one fills.

Each process is a frozen dataclass whose `arrivals(rng, horizon_s, max_count)` returns the
sorted arrival times in [0, horizon_s) — at most the first `max_count` of them — drawn from the
Generator passed in. `horizon_s` may be infinite when `max_count` bounds the draw.

Time 0 is midnight of day 0: the time-of-day processes (diurnal, nightly ETL) read the clock
that way. Besides times, an arrival carries a *slot*: its position within its group (a batch, one
firing of a periodic dashboard, one night's ETL burst; for the open processes, its running index).
A stream with a fixed template list sends template `slot % len(list)`, so a dashboard fires the
same panels every period.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

SECONDS_PER_DAY = 86_400.0

DEFAULT_PEAK_AT_S = 14 * 3600.0
"""Diurnal peak at 14:00 unless a scenario says otherwise (office-hours analytics)."""

_CHUNK = 256
"""Segments or candidates drawn per round by the processes that draw until the horizon or
`max_count` is reached: large enough to vectorise, small enough not to over-draw much."""


@dataclass(frozen=True, slots=True, eq=False)
class Arrivals:
    """One draw of a process: times in seconds since 0, sorted, with each arrival's slot and source.

    `sources[i]` is the component of a `Mixture` arrival i came from (0 for a single process).
    """

    times_s: np.ndarray
    slots: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.times_s)


@runtime_checkable
class ArrivalProcess(Protocol):
    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals: ...

    def times(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> np.ndarray: ...

    def expected_count(self, horizon_s: float) -> float:
        """Mean number of arrivals in [0, horizon_s): what sizes a workload before drawing it."""
        ...

    def draw_overhead(self, horizon_s: float) -> float:
        """Mean random draws beyond the arrivals themselves to cover [0, horizon_s) (on/off
        periods, overlapping groups): a drawing cost the budget bounds too."""
        ...


class _Process(ABC):
    """Shared behaviour: `times` is `arrivals` without the slots."""

    __slots__ = ()

    @abstractmethod
    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        """Arrival times in [0, horizon_s) with each arrival's slot in its group."""

    def times(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> np.ndarray:
        """Sorted arrival times in [0, horizon_s), at most `max_count` of them."""
        return self.arrivals(rng, horizon_s, max_count).times_s

    @abstractmethod
    def expected_count(self, horizon_s: float) -> float:
        """Mean number of arrivals in [0, horizon_s)."""

    def draw_overhead(self, horizon_s: float) -> float:
        """Random draws beyond the arrivals to cover [0, horizon_s); none by default."""
        return 0.0


def _check_bounds(horizon_s: float, max_count: int | None) -> None:
    if math.isnan(horizon_s) or horizon_s < 0:
        raise ValueError(f"horizon_s must be >= 0, got {horizon_s}")
    if max_count is not None and max_count < 0:
        raise ValueError(f"max_count must be >= 0, got {max_count}")
    if math.isinf(horizon_s) and max_count is None:
        raise ValueError("an infinite horizon needs max_count")


def _finish(
    times_s: np.ndarray, slots: np.ndarray, horizon_s: float, max_count: int | None
) -> Arrivals:
    """Keep what falls before the horizon, sort by time (stably), cut at `max_count`."""
    keep = times_s < horizon_s
    times_s, slots = times_s[keep], slots[keep]
    order = np.argsort(times_s, kind="stable")
    if max_count is not None:
        order = order[:max_count]
    times_s = times_s[order].astype(np.float64, copy=False)
    return Arrivals(
        times_s, slots[order].astype(np.int64, copy=False), np.zeros(len(order), np.int64)
    )


def _empty() -> Arrivals:
    return Arrivals(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _positive(**values: float) -> None:
    bad = [name for name, value in values.items() if not value > 0]
    if bad:
        raise ValueError(f"must be > 0: {', '.join(bad)}")


def _non_negative(**values: float) -> None:
    bad = [name for name, value in values.items() if not value >= 0]
    if bad:
        raise ValueError(f"must be >= 0: {', '.join(bad)}")


@dataclass(frozen=True, slots=True)
class Batch(_Process):
    """`count` queries all at `at_s` (a benchmark run: everything is queued up front)."""

    at_s: float = 0.0
    count: int | None = None
    """How many; None takes `max_count` (the workload's query budget)."""

    def __post_init__(self) -> None:
        _non_negative(at_s=self.at_s)
        if self.count is not None:
            _positive(count=self.count)

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        count = self.count if self.count is not None else max_count
        if count is None:
            raise ValueError("a batch without count needs max_count")
        if max_count is not None:
            count = min(count, max_count)
        if self.at_s >= horizon_s:
            return _empty()
        return Arrivals(np.full(count, self.at_s), np.arange(count), np.zeros(count, np.int64))

    def expected_count(self, horizon_s: float) -> float:
        if self.at_s >= horizon_s:
            return 0.0
        return math.inf if self.count is None else float(self.count)


@dataclass(frozen=True, slots=True)
class Poisson(_Process):
    """Independent arrivals at a constant rate: exponential gaps with mean 1 / rate_per_s."""

    rate_per_s: float

    def __post_init__(self) -> None:
        _positive(rate_per_s=self.rate_per_s)

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        if max_count is not None:
            # The first max_count arrivals, whatever the horizon: the horizon only cuts.
            times_s = np.cumsum(rng.exponential(1.0 / self.rate_per_s, size=max_count))
        else:
            count = rng.poisson(self.rate_per_s * horizon_s)
            times_s = np.sort(rng.uniform(0.0, horizon_s, size=count))
        return _finish(times_s, np.arange(len(times_s)), horizon_s, max_count)

    def expected_count(self, horizon_s: float) -> float:
        return self.rate_per_s * horizon_s


@dataclass(frozen=True, slots=True)
class Bursty(_Process):
    """On/off Markov-modulated Poisson: bursts at `rate_on_per_s`, lulls at `rate_off_per_s`.

    On and off periods last exponential times with means `mean_on_s` and `mean_off_s`; the first
    period is on with its stationary probability, so the mean rate holds from time 0.
    """

    rate_on_per_s: float
    mean_on_s: float
    mean_off_s: float
    rate_off_per_s: float = 0.0

    def __post_init__(self) -> None:
        _positive(rate_on_per_s=self.rate_on_per_s, mean_on_s=self.mean_on_s)
        _positive(mean_off_s=self.mean_off_s)
        _non_negative(rate_off_per_s=self.rate_off_per_s)

    @property
    def mean_rate_per_s(self) -> float:
        total = self.mean_on_s + self.mean_off_s
        return (self.rate_on_per_s * self.mean_on_s + self.rate_off_per_s * self.mean_off_s) / total

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        on_first = rng.random() < self.mean_on_s / (self.mean_on_s + self.mean_off_s)
        # _CHUNK is even, so every chunk starts in the same state as the first.
        on = (np.arange(_CHUNK) % 2 == 0) == on_first
        means = np.where(on, self.mean_on_s, self.mean_off_s)
        rates = np.where(on, self.rate_on_per_s, self.rate_off_per_s)
        chunks: list[np.ndarray] = []
        start_s, total = 0.0, 0
        while start_s < horizon_s and (max_count is None or total < max_count):
            durations = rng.exponential(means)
            ends = start_s + np.cumsum(durations)
            starts = ends - durations
            counts = rng.poisson(rates * durations)
            times_s = np.repeat(starts, counts) + rng.random(counts.sum()) * np.repeat(
                durations, counts
            )
            times_s.sort()
            chunks.append(times_s)
            total += len(times_s)
            start_s = float(ends[-1])
        times_s = np.concatenate(chunks) if chunks else np.zeros(0)
        return _finish(times_s, np.arange(len(times_s)), horizon_s, max_count)

    def expected_count(self, horizon_s: float) -> float:
        return self.mean_rate_per_s * horizon_s

    def draw_overhead(self, horizon_s: float) -> float:
        """Two draws per on/off period."""
        return 4.0 * horizon_s / (self.mean_on_s + self.mean_off_s)


@dataclass(frozen=True, slots=True)
class Diurnal(_Process):
    """Non-homogeneous Poisson with a daily cycle, drawn by thinning.

    rate(t) = base + (peak − base) · (1 + cos(2π (t − peak_at_s) / period_s)) / 2: `peak_rate_per_s`
    at `peak_at_s` (and every period after), `base_rate_per_s` half a period away.
    """

    base_rate_per_s: float
    peak_rate_per_s: float
    period_s: float = SECONDS_PER_DAY
    peak_at_s: float = DEFAULT_PEAK_AT_S

    def __post_init__(self) -> None:
        _non_negative(base_rate_per_s=self.base_rate_per_s, peak_at_s=self.peak_at_s)
        _positive(peak_rate_per_s=self.peak_rate_per_s, period_s=self.period_s)
        if self.peak_rate_per_s < self.base_rate_per_s:
            raise ValueError("peak_rate_per_s must be >= base_rate_per_s")

    def rate_per_s(self, t_s: np.ndarray) -> np.ndarray:
        phase = 2.0 * np.pi * (np.asarray(t_s) - self.peak_at_s) / self.period_s
        swing = self.peak_rate_per_s - self.base_rate_per_s
        return self.base_rate_per_s + swing * 0.5 * (1.0 + np.cos(phase))

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        top = self.peak_rate_per_s
        mean = 0.5 * (self.base_rate_per_s + self.peak_rate_per_s)
        chunks: list[np.ndarray] = []
        now_s, total = 0.0, 0
        while now_s < horizon_s and (max_count is None or total < max_count):
            # Enough candidates to finish in one round almost always (5 sigma over the mean).
            sizes = []
            if not math.isinf(horizon_s):
                expected = top * (horizon_s - now_s)
                sizes.append(int(expected + 5.0 * math.sqrt(expected)) + 16)
            if max_count is not None:
                sizes.append(max(_CHUNK, int(1.2 * (max_count - total) * top / mean)))
            size = min(sizes)
            candidates = now_s + np.cumsum(rng.exponential(1.0 / top, size=size))
            keep = rng.random(size) * top < self.rate_per_s(candidates)
            chunks.append(candidates[keep])
            total += int(keep.sum())
            now_s = float(candidates[-1])
        times_s = np.concatenate(chunks) if chunks else np.zeros(0)
        return _finish(times_s, np.arange(len(times_s)), horizon_s, max_count)

    def expected_count(self, horizon_s: float) -> float:
        return 0.5 * (self.base_rate_per_s + self.peak_rate_per_s) * horizon_s

    def draw_overhead(self, horizon_s: float) -> float:
        """Thinning: candidates at the peak rate, of which the mean rate's share is kept."""
        return 0.5 * (self.peak_rate_per_s - self.base_rate_per_s) * horizon_s


@dataclass(frozen=True, slots=True)
class Periodic(_Process):
    """A recurring dashboard: every `period_s` from `offset_s`, `count` queries fire.

    Each query arrives a uniform delay in [0, jitter_s) after its firing's nominal time; its slot
    is its position in the firing (0..count−1), which names the panel's template.
    """

    period_s: float
    jitter_s: float = 0.0
    offset_s: float = 0.0
    count: int | None = None
    """Queries per firing; None means 1 (the generator sets it to the stream's template list)."""

    def __post_init__(self) -> None:
        _positive(period_s=self.period_s)
        _non_negative(jitter_s=self.jitter_s, offset_s=self.offset_s)
        if self.count is not None:
            _positive(count=self.count)

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        per_firing = self.count or 1
        firings = _group_count(
            self.offset_s, self.period_s, self.jitter_s, per_firing, horizon_s, max_count
        )
        nominal_s = np.repeat(self.offset_s + self.period_s * np.arange(firings), per_firing)
        delays_s = rng.uniform(0.0, self.jitter_s, size=len(nominal_s)) if self.jitter_s else 0.0
        slots = np.tile(np.arange(per_firing), firings)
        return _finish(nominal_s + delays_s, slots, horizon_s, max_count)

    def expected_count(self, horizon_s: float) -> float:
        return (self.count or 1) * _groups_before(self.offset_s, self.period_s, horizon_s)

    def draw_overhead(self, horizon_s: float) -> float:
        """Firings whose jitter may still land among the first arrivals are drawn too."""
        return (self.count or 1) * (self.jitter_s / self.period_s + 1.0)


@dataclass(frozen=True, slots=True)
class NightlyEtl(_Process):
    """Nightly ETL: each day at `time_of_day_s`, a burst of `count` queries over `spread_s`.

    Arrival times within a burst are uniform on [start, start + spread_s); slots number them in
    time order, so a fixed template list runs as the night's job sequence.
    """

    time_of_day_s: float
    count: int | None = None
    """Queries per burst; None only when the generator fills it from the stream's template list."""
    spread_s: float = 0.0
    day_s: float = SECONDS_PER_DAY

    def __post_init__(self) -> None:
        _positive(day_s=self.day_s)
        _non_negative(time_of_day_s=self.time_of_day_s, spread_s=self.spread_s)
        if self.time_of_day_s >= self.day_s:
            raise ValueError("time_of_day_s must be < day_s")
        if self.count is not None:
            _positive(count=self.count)

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        if self.count is None:
            raise ValueError("a nightly ETL process needs count")
        days = _group_count(
            self.time_of_day_s, self.day_s, self.spread_s, self.count, horizon_s, max_count
        )
        starts_s = self.time_of_day_s + self.day_s * np.arange(days)
        offsets_s = np.sort(rng.random((days, self.count)), axis=1) * self.spread_s
        times_s = (starts_s[:, None] + offsets_s).ravel()
        slots = np.tile(np.arange(self.count), days)
        return _finish(times_s, slots, horizon_s, max_count)

    def expected_count(self, horizon_s: float) -> float:
        count = math.inf if self.count is None else self.count
        return count * _groups_before(self.time_of_day_s, self.day_s, horizon_s)

    def draw_overhead(self, horizon_s: float) -> float:
        """Bursts whose spread may still land among the first arrivals are drawn too."""
        return (self.count or 1) * (self.spread_s / self.day_s + 1.0)


def _groups_before(first_s: float, every_s: float, horizon_s: float) -> float:
    """Groups (firings, nights) starting in [0, horizon_s)."""
    if horizon_s <= first_s:
        return 0.0
    groups = (horizon_s - first_s) / every_s
    return math.ceil(groups) if math.isfinite(groups) else math.inf


def _group_count(
    first_s: float,
    every_s: float,
    spread_s: float,
    per_group: int,
    horizon_s: float,
    max_count: int | None,
) -> int:
    """How many groups to draw so that the first `max_count` arrivals before the horizon are in.

    Group k's arrivals lie in [first + k·every, first + k·every + spread); groups whose start is
    past the horizon add nothing, and with `max_count`, any group starting after the latest
    arrival of the first ceil(max_count / per_group) groups cannot be among the first max_count.
    """
    counts = []
    if not math.isinf(horizon_s):
        counts.append(max(0, math.ceil((horizon_s - first_s) / every_s)))
    if max_count is not None:
        counts.append(-(-max_count // per_group) + math.ceil(spread_s / every_s) + 1)
    return min(counts)


@dataclass(frozen=True, slots=True)
class Window(_Process):
    """A process started at `start_s` (its clock shifted by it) and stopped at `end_s`."""

    process: ArrivalProcess
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        _non_negative(start_s=self.start_s)
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError("end_s must be > start_s")

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        stop_s = horizon_s if self.end_s is None else min(horizon_s, self.end_s)
        if stop_s <= self.start_s:
            return _empty()
        inner = self.process.arrivals(rng, stop_s - self.start_s, max_count)
        return Arrivals(inner.times_s + self.start_s, inner.slots, inner.sources)

    def _inner_horizon_s(self, horizon_s: float) -> float:
        stop_s = horizon_s if self.end_s is None else min(horizon_s, self.end_s)
        return max(stop_s - self.start_s, 0.0)

    def expected_count(self, horizon_s: float) -> float:
        return self.process.expected_count(self._inner_horizon_s(horizon_s))

    def draw_overhead(self, horizon_s: float) -> float:
        return self.process.draw_overhead(self._inner_horizon_s(horizon_s))


@dataclass(frozen=True, slots=True)
class Mixture(_Process):
    """Several independent processes merged in time order; `sources` says which each came from.

    Components draw from the Generator one after another, in order. Ties in time go to the
    earlier component, then to the earlier arrival within it.
    """

    components: tuple[ArrivalProcess, ...]

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a mixture needs at least one component")

    def arrivals(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None = None
    ) -> Arrivals:
        _check_bounds(horizon_s, max_count)
        draws = [c.arrivals(rng, horizon_s, max_count) for c in self.components]
        return merge(draws, max_count)

    def expected_count(self, horizon_s: float) -> float:
        return sum(c.expected_count(horizon_s) for c in self.components)

    def draw_overhead(self, horizon_s: float) -> float:
        return sum(c.draw_overhead(horizon_s) for c in self.components)


def merge(draws: Sequence[Arrivals], max_count: int | None = None) -> Arrivals:
    """Merge draws in time order (ties: earlier draw first), each tagged with its draw's index."""
    if not draws:
        return _empty()
    times_s = np.concatenate([d.times_s for d in draws])
    slots = np.concatenate([d.slots for d in draws])
    sources = np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(draws)])
    order = np.argsort(times_s, kind="stable")
    if max_count is not None:
        order = order[:max_count]
    return Arrivals(times_s[order], slots[order], sources[order])
