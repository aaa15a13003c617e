"""Private numba loop of the memory-bandwidth reference of ``cis bench`` (a STREAM-like triad)."""

from __future__ import annotations

from kernel._numba import PARALLEL, njit, prange


@njit(**PARALLEL)
def triad(a, b, c, scalar):
    """a[:] = b + scalar * c, the iterations split over the threads (STREAM's triad)."""
    for i in prange(a.shape[0]):
        a[i] = b[i] + scalar * c[i]
