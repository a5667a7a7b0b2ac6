"""Arrival processes: each one's rate and shape match its configuration.

Statistical checks use fixed seeds and 5-sigma tolerances, so they fail only if the process is
wrong, not by chance on another seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsched.workloads.arrivals import (
    SECONDS_PER_DAY,
    Batch,
    Bursty,
    Diurnal,
    Mixture,
    NightlyEtl,
    Periodic,
    Poisson,
    Window,
    merge,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def index_of_dispersion(times_s: np.ndarray, horizon_s: float, window_s: float) -> float:
    counts = np.bincount((times_s // window_s).astype(int), minlength=int(horizon_s // window_s))
    counts = counts[: int(horizon_s // window_s)]
    return float(counts.var() / counts.mean())


def exponential_ks(gaps: np.ndarray, rate: float) -> float:
    """Kolmogorov–Smirnov distance between the gaps and Exp(rate)."""
    gaps = np.sort(gaps)
    n = len(gaps)
    cdf = 1.0 - np.exp(-rate * gaps)
    return float(max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max()))


# ---------------------------------------------------------------- batch


def test_batch_sends_count_queries_at_once() -> None:
    drawn = Batch(count=7).arrivals(rng(), 100.0)
    assert drawn.times_s.tolist() == [0.0] * 7
    assert drawn.slots.tolist() == list(range(7))


def test_batch_without_count_takes_the_query_budget_and_respects_at_s() -> None:
    assert Batch(at_s=5.0).times(rng(), math.inf, max_count=12).tolist() == [5.0] * 12
    assert len(Batch(count=30).times(rng(), math.inf, max_count=12)) == 12
    assert len(Batch(at_s=50.0, count=3).times(rng(), 50.0)) == 0
    with pytest.raises(ValueError, match="max_count"):
        Batch().times(rng(), 10.0)


# ---------------------------------------------------------------- poisson


def test_poisson_mean_rate_and_exponential_gaps() -> None:
    rate, horizon = 2.0, 20_000.0
    times = Poisson(rate).times(rng(1), horizon)
    expected = rate * horizon
    assert abs(len(times) - expected) < 5 * math.sqrt(expected)
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < horizon
    gaps = np.diff(times)
    # KS critical value at p = 1e-6 is about 2.7 / sqrt(n).
    assert exponential_ks(gaps, rate) < 2.7 / math.sqrt(len(gaps))
    assert abs(index_of_dispersion(times, horizon, 10.0) - 1.0) < 5 * math.sqrt(2 / 2000)


def test_poisson_with_a_count_and_no_horizon() -> None:
    rate, n = 0.5, 5000
    times = Poisson(rate).times(rng(2), math.inf, max_count=n)
    assert len(times) == n
    mean_gap = times[-1] / n
    assert abs(mean_gap - 1 / rate) < 5 * (1 / rate) / math.sqrt(n)


def test_poisson_count_and_horizon_cut_together() -> None:
    times = Poisson(1.0).times(rng(3), 100.0, max_count=10_000)
    assert 0 < len(times) < 10_000 and times[-1] < 100.0
    assert len(Poisson(1.0).times(rng(3), 1e6, max_count=25)) == 25


def test_an_infinite_horizon_needs_a_count() -> None:
    with pytest.raises(ValueError, match="infinite horizon"):
        Poisson(1.0).times(rng(), math.inf)


# ---------------------------------------------------------------- bursty


def test_bursty_mean_rate_and_over_dispersion() -> None:
    process = Bursty(rate_on_per_s=5.0, rate_off_per_s=0.5, mean_on_s=20.0, mean_off_s=80.0)
    horizon = 200_000.0
    times = process.times(rng(4), horizon)
    p_on = 20.0 / 100.0
    mean_rate = 5.0 * p_on + 0.5 * (1 - p_on)
    assert process.mean_rate_per_s == pytest.approx(mean_rate)
    # Asymptotic variance of an on/off MMPP count: T·(λ̄ + 2 Δλ² π_on π_off / (r_on + r_off)).
    switch_rate = 1 / 20.0 + 1 / 80.0
    variance = horizon * (mean_rate + 2 * 4.5**2 * p_on * (1 - p_on) / switch_rate)
    assert abs(len(times) - mean_rate * horizon) < 5 * math.sqrt(variance)
    assert index_of_dispersion(times, horizon, 100.0) > 5.0


def test_bursty_with_silent_lulls_has_gaps_longer_than_poisson() -> None:
    process = Bursty(rate_on_per_s=2.0, mean_on_s=30.0, mean_off_s=30.0)
    times = process.times(rng(5), math.inf, max_count=20_000)
    assert len(times) == 20_000
    gaps = np.diff(times)
    assert gaps.std() / gaps.mean() > 1.5  # exponential gaps would give 1


# ---------------------------------------------------------------- diurnal


def test_diurnal_peak_and_trough_counts() -> None:
    base, peak, days = 0.05, 1.0, 10
    process = Diurnal(base_rate_per_s=base, peak_rate_per_s=peak, peak_at_s=14 * 3600.0)
    times = process.times(rng(6), days * SECONDS_PER_DAY)
    hour = 3600.0
    time_of_day = times % SECONDS_PER_DAY

    def expected(centre_s: float) -> float:
        grid = np.linspace(centre_s - hour, centre_s + hour, 20_001)
        rate = base + (peak - base) * (1 + np.cos(2 * np.pi * (grid - 14 * hour) / 86_400)) / 2
        return days * float(np.trapezoid(rate, grid))

    for centre in (14 * hour, 2 * hour):
        observed = np.count_nonzero(np.abs(time_of_day - centre) < hour)
        assert abs(observed - expected(centre)) < 5 * math.sqrt(expected(centre))
    total = days * SECONDS_PER_DAY * (base + peak) / 2
    assert abs(len(times) - total) < 5 * math.sqrt(total)


def test_diurnal_with_a_count_and_no_horizon() -> None:
    process = Diurnal(base_rate_per_s=0.0, peak_rate_per_s=0.01)
    times = process.times(rng(7), math.inf, max_count=3000)
    assert len(times) == 3000 and np.all(np.diff(times) >= 0)
    # No arrivals at all right at the trough (rate 0 at 02:00).
    assert np.all(np.abs(times % SECONDS_PER_DAY - 2 * 3600.0) > 1.0)


# ---------------------------------------------------------------- periodic


def test_periodic_period_jitter_and_slots() -> None:
    process = Periodic(period_s=60.0, jitter_s=5.0, offset_s=10.0, count=3)
    drawn = process.arrivals(rng(8), 3600.0)
    firing = np.floor((drawn.times_s - 10.0) / 60.0).astype(int)
    delay = drawn.times_s - 10.0 - 60.0 * firing
    assert len(drawn) == 3 * 60  # nominal times 10, 70, ..., 3550
    assert np.all((delay >= 0) & (delay < 5.0))
    assert delay.max() > 4.5 and delay.min() < 0.5  # spread over the whole jitter window
    for k in range(60):
        assert sorted(drawn.slots[firing == k].tolist()) == [0, 1, 2]


def test_periodic_without_jitter_is_exact() -> None:
    times = Periodic(period_s=300.0).times(rng(), 1000.0)
    assert times.tolist() == [0.0, 300.0, 600.0, 900.0]


def test_periodic_first_arrivals_with_a_count_are_the_earliest() -> None:
    """With jitter longer than the period, later firings can overtake earlier ones: the count
    path must draw enough firings. Its second arrival is distributed as in a full draw."""
    process = Periodic(period_s=10.0, jitter_s=100.0)
    n = 1000
    counted = np.array([process.times(rng(s), math.inf, 2)[-1] for s in range(n)])
    full = np.array([process.times(rng(n + s), 1000.0)[1] for s in range(n)])
    error = math.sqrt(counted.var() / n + full.var() / n)
    # Drawing only the first two firings would put the mean near 72 s instead of about 51 s.
    assert abs(counted.mean() - full.mean()) < 5 * error
    assert np.array_equal(process.times(rng(9), math.inf, 7), process.times(rng(9), 1e9, 7))


# ---------------------------------------------------------------- nightly ETL


def test_etl_bursts_at_the_right_time_of_day() -> None:
    process = NightlyEtl(time_of_day_s=2 * 3600.0, count=50, spread_s=1800.0)
    drawn = process.arrivals(rng(10), 5 * SECONDS_PER_DAY)
    time_of_day = drawn.times_s % SECONDS_PER_DAY
    day = (drawn.times_s // SECONDS_PER_DAY).astype(int)
    assert len(drawn) == 250
    assert np.all((time_of_day >= 7200.0) & (time_of_day < 9000.0))
    assert np.bincount(day).tolist() == [50] * 5
    for d in range(5):
        assert drawn.slots[day == d].tolist() == list(range(50))  # slots in time order


def test_etl_horizon_before_the_first_burst_sends_nothing() -> None:
    assert len(NightlyEtl(time_of_day_s=3600.0, count=5).times(rng(), 3600.0)) == 0
    assert len(NightlyEtl(time_of_day_s=3600.0, count=5).times(rng(), math.inf, 12)) == 12


# ---------------------------------------------------------------- composition


def test_mixture_merges_in_time_order_and_tags_sources() -> None:
    mixture = Mixture((Periodic(period_s=100.0, offset_s=50.0), Poisson(0.05), Batch(count=3)))
    drawn = mixture.arrivals(rng(11), 1000.0)
    assert np.all(np.diff(drawn.times_s) >= 0)
    assert np.count_nonzero(drawn.sources == 0) == 10
    assert np.count_nonzero(drawn.sources == 2) == 3
    assert drawn.sources[:3].tolist() == [2, 2, 2]  # the batch at time 0 comes first
    assert set(drawn.times_s[drawn.sources == 0].tolist()) == {50.0 + 100 * k for k in range(10)}


def test_mixture_cuts_at_the_count_across_components() -> None:
    drawn = Mixture((Poisson(1.0), Poisson(1.0))).arrivals(rng(12), math.inf, max_count=100)
    assert len(drawn) == 100
    assert 0 < np.count_nonzero(drawn.sources == 0) < 100


def test_merge_breaks_ties_by_draw_order() -> None:
    a = Batch(count=2).arrivals(rng(), 1.0)
    b = Batch(count=2).arrivals(rng(), 1.0)
    assert merge([b, a]).sources.tolist() == [0, 0, 1, 1]


def test_window_shifts_and_stops_a_process() -> None:
    process = Window(Periodic(period_s=100.0), start_s=50.0, end_s=400.0)
    assert process.times(rng(), 1000.0).tolist() == [50.0, 150.0, 250.0, 350.0]
    assert process.times(rng(), 200.0).tolist() == [50.0, 150.0]
    assert len(process.times(rng(), 50.0)) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Poisson(-1.0),
        lambda: Bursty(rate_on_per_s=0.0, mean_on_s=1.0, mean_off_s=1.0),
        lambda: Diurnal(base_rate_per_s=2.0, peak_rate_per_s=1.0),
        lambda: Periodic(period_s=0.0),
        lambda: NightlyEtl(time_of_day_s=SECONDS_PER_DAY, count=1),
        lambda: Window(Poisson(1.0), start_s=10.0, end_s=5.0),
    ],
)
def test_invalid_parameters_are_rejected(make) -> None:
    with pytest.raises(ValueError):
        make()


PROCESSES = st.one_of(
    st.builds(Batch, at_s=st.floats(0, 100), count=st.integers(1, 50)),
    st.builds(Poisson, rate_per_s=st.floats(0.01, 10)),
    st.builds(
        Bursty,
        rate_on_per_s=st.floats(0.01, 10),
        mean_on_s=st.floats(0.1, 100),
        mean_off_s=st.floats(0.1, 100),
        rate_off_per_s=st.floats(0, 1),
    ),
    st.builds(
        Diurnal,
        base_rate_per_s=st.floats(0, 0.5),
        peak_rate_per_s=st.floats(0.5, 5),
        period_s=st.floats(10, 1000),
    ),
    st.builds(
        Periodic,
        period_s=st.floats(0.5, 100),
        jitter_s=st.floats(0, 200),
        count=st.integers(1, 5),
    ),
    st.builds(
        NightlyEtl,
        time_of_day_s=st.floats(0, 99),
        count=st.integers(1, 20),
        spread_s=st.floats(0, 300),
        day_s=st.just(100.0),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    process=PROCESSES,
    horizon_s=st.one_of(st.just(math.inf), st.floats(0, 500)),
    max_count=st.one_of(st.none(), st.integers(0, 300)),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_process_gives_sorted_times_within_bounds(process, horizon_s, max_count, seed):
    if math.isinf(horizon_s) and max_count is None:
        max_count = 50
    drawn = process.arrivals(rng(seed), horizon_s, max_count)
    again = process.arrivals(rng(seed), horizon_s, max_count)
    assert np.array_equal(drawn.times_s, again.times_s)
    assert np.all(np.diff(drawn.times_s) >= 0)
    assert len(drawn) == len(drawn.slots) == len(drawn.sources)
    if len(drawn):
        assert drawn.times_s[0] >= 0 and drawn.times_s[-1] < horizon_s
    if max_count is not None:
        assert len(drawn) <= max_count
        if math.isinf(horizon_s) and not isinstance(process, Batch):
            assert len(drawn) == max_count
