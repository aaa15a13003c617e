"""Private numba loops of the pattern design (no validation; see ``kernel.patterns``)."""

from __future__ import annotations

import numpy as np

from kernel._numba import JIT, njit


@njit(**JIT)
def _count_progressions(steps: np.ndarray, n: int, S: int) -> int:
    """Number of progressions the fill order lays for these steps (T_max).

    Closed form per step, so the cost is O(len(steps)), not O(sum of steps): step k lays one
    progression per start s in [0, n - (S-1)k) with s mod (S k) < k (start r < k, then every S k).
    """
    total = 0
    for k in steps:
        starts = n - (S - 1) * k  # progressions need start + (S-1)k < n
        if starts > 0:
            total += (starts // (S * k)) * k + min(starts % (S * k), k)
    return total


@njit(**JIT)
def _lay_progressions(steps: np.ndarray, n: int, S: int, T: int) -> np.ndarray:
    """The first T progressions in fill order, shape (T, S), offsets within a block."""
    out = np.empty((T, S), dtype=np.int32)
    t = 0
    for k in steps:
        span = (S - 1) * k
        for r in range(k):
            start = r
            while start + span < n:
                if t == T:
                    return out
                for q in range(S):
                    out[t, q] = start + q * k
                t += 1
                start += S * k
    return out[:t]


@njit(**JIT)
def _inverse_index(offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of block offset -> circuits using it, for one layer's (T, S) offsets."""
    T, S = offsets.shape
    indptr = np.zeros(n + 1, dtype=np.int64)
    for t in range(T):
        for q in range(S):
            indptr[offsets[t, q] + 1] += 1
    for k in range(n):
        indptr[k + 1] += indptr[k]
    fill = indptr[:-1].copy()
    circuits = np.empty(T * S, dtype=np.int32)
    for t in range(T):
        for q in range(S):
            k = offsets[t, q]
            circuits[fill[k]] = t
            fill[k] += 1
    return indptr, circuits
