"""Every numba option of the project, in one place.

fastmath stays off: the kernels' outputs are compared with oracles to float64 rounding, are
enclosed by bounds, and are reproducible bit for bit (no reassociation, no fused multiply-add).

On-disk cache. By default compiled kernels are cached next to the sources (``cache=True``), so
only the first process compiles. Set the environment variable ``CIS_NUMBA_CACHE=0`` (before
``kernel`` is imported) to turn the cache off: cached machine code can be stale or unsafe when a
checkout is shared between machines with different CPUs, and it must not be mixed with runs under
``NUMBA_DISABLE_JIT=1`` (coverage). Any other value, or no variable, keeps the cache on.
"""

from __future__ import annotations

import os
from typing import Literal, TypedDict

import numba

#: name of the environment variable that turns the on-disk cache off when set to "0"
CACHE_ENV = "CIS_NUMBA_CACHE"


def cache_enabled() -> bool:
    """Whether compiled kernels are cached on disk (``CIS_NUMBA_CACHE`` is not "0")."""
    return os.environ.get(CACHE_ENV, "1").strip() != "0"


class Options(TypedDict, total=False):
    """Keyword options of ``numba.njit`` used here (typed, so ``njit(**JIT)`` type-checks)."""

    cache: bool
    nogil: bool
    fastmath: bool
    parallel: bool
    inline: Literal["never", "always"]


JIT: Options = {"cache": cache_enabled(), "nogil": True, "fastmath": False}
PARALLEL: Options = {**JIT, "parallel": True}
#: small helpers of the hot loops, inlined into their callers by numba (no call, no reference
#: counting of the records they receive)
INLINE: Options = {**JIT, "inline": "always"}

njit = numba.njit
prange = numba.prange
#: id of the calling thread inside a parallel region (0 outside one); callable from kernels
thread_id = numba.get_thread_id


def n_threads() -> int:
    """Number of threads the parallel kernels use (``NUMBA_NUM_THREADS``)."""
    return int(numba.get_num_threads())
