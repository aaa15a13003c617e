"""The memory-bandwidth reference of ``cis bench``: a STREAM-like triad, compiled and parallel."""

from __future__ import annotations

import numpy as np

from kernel._jit_bench import triad as _triad


def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, scalar: float) -> None:
    """``a[:] = b + scalar * c`` over 1-d float64 arrays of one length, the iterations split over
    the numba threads (STREAM's triad). No validation: ``cis bench`` allocates the arrays."""
    _triad(a, b, c, scalar)
