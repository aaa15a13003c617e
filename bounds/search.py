"""Searches over integers for the edge of a monotone condition (capacity and its inverses).

``largest_passing`` is the one search of the package: the cavity's largest T and smallest D
(``bounds.capacity``) and the measured capacity of ``cis sweep`` (``cis.experiment``) use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def largest_passing(ok: Callable[[int], bool], start: int, low: int, high: int, *, rtol: float,
                    grow: float) -> tuple[int, int]:
    """Largest T in [low, high] with ``ok(T)``, assuming ok is True below a threshold and False
    above it. Returns (T*, T_fail): T* = 0 when ``ok(low)`` fails, T_fail = 0 when ``ok(high)``
    holds (T* = high).

    Brackets from ``start`` by galloping steps (factors grow, grow^2, grow^4, ...: up while ok,
    down while not), then bisects geometrically until T_fail / T* <= 1 + rtol (or they are
    adjacent integers). With a start within a factor ``grow`` of the answer this needs about
    2 + log2(log(grow) / log(1 + rtol)) evaluations.

    >>> largest_passing(lambda T: T <= 1234, 100, 2, 10**6, rtol=0.0, grow=2.0)
    (1234, 1235)
    >>> largest_passing(lambda T: True, 100, 2, 500, rtol=0.05, grow=2.0)
    (500, 0)
    """
    T = min(max(start, low), high)
    step = grow
    if ok(T):
        lo, hi = T, 0
        while hi == 0:
            if lo == high:
                return high, 0
            T = min(max(math.ceil(lo * step), lo + 1), high)
            lo, hi = (T, 0) if ok(T) else (lo, T)
            step *= step  # gallop: a poor start costs log(log(distance)) steps
    else:
        lo, hi = 0, T
        while lo == 0:
            if hi == low:
                return 0, low
            T = max(min(math.floor(hi / step), hi - 1), low)
            lo, hi = (T, hi) if ok(T) else (0, T)
            step *= step
    while hi > lo + 1 and hi > lo * (1 + rtol):
        mid = min(max(round(math.sqrt(lo * hi)), lo + 1), hi - 1)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi
