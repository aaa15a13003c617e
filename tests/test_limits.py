"""kernel.limits: the estimates behind the size refusals, and the closed-form capacity count."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from kernel import ConfigError, limits, run
from kernel._jit_patterns import _count_progressions
from kernel._numba import n_threads
from kernel.patterns import allowed_steps, capacity


def _count_by_laying(steps: np.ndarray, n: int, S: int) -> int:
    """Slow reference: walk every start r < k of every step and count the progressions laid
    (the fill order of the design, one progression at a time)."""
    total = 0
    for k in steps:
        span = (S - 1) * int(k)
        for r in range(int(k)):
            start = r
            while start + span < n:
                total += 1
                start += S * int(k)
    return total


@pytest.mark.nojit
@pytest.mark.parametrize("S", [2, 3, 4, 5, 6, 8])
def test_closed_form_count_matches_laying_the_progressions(S):
    for n in [S, S + 1, 2 * S - 1, 37, 100, 251, 600]:
        steps = allowed_steps(n, S)
        assert _count_progressions(steps, n, S) == _count_by_laying(steps, n, S), (n, S)


@pytest.mark.nojit
def test_lower_bound_of_t_max_is_exact_below_the_cut_and_a_lower_bound_above(monkeypatch):
    assert limits._t_max(1000, 6) == capacity(1000, 6)
    monkeypatch.setattr(limits, "N_EXACT", 300)
    low = limits._t_max(1000, 6)
    assert 0 < low < capacity(1000, 6)


CONFIGS = [
    {"D": 4000, "batch": 2000},
    {"D": 2000, "batch": 500, "engine": "dense"},
    {"D": 4000, "T": 2000, "variant": "random", "batch": 100},
]


@pytest.mark.parametrize("overrides", CONFIGS, ids=["auto", "dense", "random"])
def test_memory_estimate_of_run_is_within_a_small_factor_of_the_traced_peak(overrides):
    params = {"D": 1000, "d": 4, "S": 6, "T": None, "L": 4, "variant": "plain", "batch": 2000,
              "z": 2, "engine": "auto", **overrides}
    run(D=400, S=5, T=50, batch=4)  # compile outside the traced run
    tracemalloc.start()
    try:
        run(**overrides)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    D, d, S, L, B, z = (params[k] for k in ("D", "d", "S", "L", "batch", "z"))
    T = params["T"] or int(limits._t_max(D // d, S))
    est = (limits.network_estimate(D, d, S, T, L, params["variant"]).bytes
           + limits.forward_estimate(B=B, z=z, d=d, L=L, T=T, S=S, D=D,
                                     engine=params["engine"], threads=n_threads()).bytes)
    assert 0.5 * peak <= est <= 5 * peak, (est, peak)


@pytest.mark.nojit
def test_time_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CIS_TIME_LIMIT_S", "1e-9")
    with pytest.raises(limits.ResourceError, match=r"would take about .*CIS_TIME_LIMIT_S"):
        run(D=400, S=5, T=50, batch=4)
    monkeypatch.setenv("CIS_TIME_LIMIT_S", "-1")
    with pytest.raises(ConfigError, match=r"CIS_TIME_LIMIT_S='-1' must be a positive number"):
        run(D=400, S=5, T=50, batch=4)


@pytest.mark.nojit
def test_default_memory_limit_is_a_fraction_of_available_memory(monkeypatch):
    monkeypatch.delenv("CIS_MEMORY_LIMIT_GB", raising=False)
    monkeypatch.setattr(limits, "available_memory", lambda: 10 * limits.GiB)
    assert limits.memory_limit()[0] == pytest.approx(limits.MEMORY_FRACTION * 10 * limits.GiB)
    monkeypatch.setattr(limits, "available_memory", lambda: 1e3)
    monkeypatch.setattr(limits, "SMALL_BYTES", 0.0)  # compare even this small request
    with pytest.raises(limits.ResourceError, match="80% of available memory"):
        run(D=400, S=5, T=50, batch=4)


@pytest.mark.nojit
def test_small_requests_skip_the_available_memory_but_not_the_variable(monkeypatch):
    def unavailable() -> float:
        raise AssertionError("available memory read for a small request")

    monkeypatch.delenv("CIS_MEMORY_LIMIT_GB", raising=False)
    monkeypatch.setattr(limits, "available_memory", unavailable)
    small = limits.Estimate("small", limits.SMALL_BYTES / 2, 0.0)
    assert limits.check(small) is small
    with pytest.raises(AssertionError, match="available memory read"):
        limits.check(limits.Estimate("large", limits.SMALL_BYTES * 2, 0.0))
    monkeypatch.setenv("CIS_MEMORY_LIMIT_GB", "1e-9")
    with pytest.raises(limits.ResourceError, match="CIS_MEMORY_LIMIT_GB"):
        limits.check(small)
