"""Every numba option of the project, in one place (STYLE item 2).

fastmath stays off: the kernels' outputs are compared with oracles to float64 rounding and
enclosed by bounds. ``cache=True`` keeps compiled kernels across processes (first call compiles).
"""

from __future__ import annotations

import numba

JIT = {"cache": True, "nogil": True, "fastmath": False}
PARALLEL = {**JIT, "parallel": True}

njit = numba.njit
prange = numba.prange


def n_threads() -> int:
    """Number of threads the parallel kernels use (``NUMBA_NUM_THREADS``)."""
    return int(numba.get_num_threads())
