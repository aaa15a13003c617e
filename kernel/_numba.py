"""Every numba option of the project, in one place.

fastmath stays off: the kernels' outputs are compared with oracles to float64 rounding, are
enclosed by bounds, and are reproducible bit for bit (no reassociation, no fused multiply-add).

On-disk cache. By default compiled kernels are cached (``cache=True``; where numba puts its
cache: next to the sources, or under ``NUMBA_CACHE_DIR``), so only the first process compiles.
numba alone would check only the file that defines a kernel, and serve stale machine code after
an edit of a helper it inlines from another file; here a kernel's cache entry is valid only for
the exact content of every private kernel module (``kernel/_*.py``: the passes, the vector
helpers, these options), the numba and llvmlite versions and numba's bounds-checking flag
(``_KernelCacheLocator``; any difference recompiles). Set the environment variable
``CIS_NUMBA_CACHE=0`` (before ``kernel`` is imported) to turn the cache off, e.g. for a
checkout shared between machines with different CPUs. Any other value, or no variable, keeps
the cache on.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Literal, TypedDict

import llvmlite
import numba
from numba.core import caching

#: name of the environment variable that turns the on-disk cache off when set to "0"
CACHE_ENV = "CIS_NUMBA_CACHE"


def cache_enabled() -> bool:
    """Whether compiled kernels are cached on disk (``CIS_NUMBA_CACHE`` is not "0")."""
    return os.environ.get(CACHE_ENV, "1").strip() != "0"


#: the directory of the kernel modules whose compiled code is cached
KERNEL_DIR = Path(__file__).resolve().parent


@functools.cache  # once per process: the files do not change in it
def source_key() -> str:
    """Hash of what a cached kernel depends on: the content of every private kernel module
    (kernel/_*.py, where all compiled code and its helpers live), the numba and llvmlite
    versions, and numba's bounds-checking flag (it changes the generated code)."""
    h = hashlib.sha256()
    for path in sorted(KERNEL_DIR.glob("_*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(f"numba {numba.__version__} llvmlite {llvmlite.__version__} "
             f"boundscheck {numba.config.BOUNDSCHECK}".encode())  # type: ignore[attr-defined]
    return h.hexdigest()


class _KernelCacheLocator(caching._CacheLocator):
    """numba's own cache location (``inner``) for a function defined in kernel/, with
    ``source_key()`` as the source stamp: an index written for other sources is stale."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def ensure_cache_path(self) -> None:
        self.inner.ensure_cache_path()

    def get_cache_path(self) -> str:
        return self.inner.get_cache_path()

    def get_disambiguator(self) -> str:
        return self.inner.get_disambiguator()

    def get_source_stamp(self) -> str:
        return source_key()

    @classmethod
    def from_function(cls, py_func, py_file):  # type: ignore[no-untyped-def]
        if Path(py_file).resolve().parent == KERNEL_DIR:
            for other in _LOCATORS[1:]:
                inner = other.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


#: numba's list of locators (``CacheImpl`` from numba 0.62, ``_CacheImpl`` before)
_IMPL: Any = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # noqa: B009
_LOCATORS: list = _IMPL._locator_classes
if _KernelCacheLocator not in _LOCATORS:
    _LOCATORS.insert(0, _KernelCacheLocator)


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
