"""The vector helpers keep numba's guarantees (issue 17's probes): no memory freed under a live
reference, no store into a read-only array, bounds checked under NUMBA_BOUNDSCHECK=1, no
negative index read before the buffer; compiled and not compiled, misuse gets the same refusal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from kernel import _simd
from kernel._numba import njit
from kernel._simd import lane, load4, load8, store, vadd, vscale

ROOT = Path(__file__).resolve().parents[1]
needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles code")


@njit
def _same(a):
    return a


@needs_jit
@pytest.mark.parametrize("n", [8, 65536])
def test_elements_stay_alive_while_held(n):
    # the probe: a handle on a temporary's elements, then an allocation of the same size
    # (which reused the freed block when the handle was an unowned pointer: -1.0 or a segfault)
    hold = getattr(_simd, "pointer", None) or _same  # whatever the module offers to hold them

    @njit
    def probe(n):
        p = hold(np.full(n, 7.0))
        q = np.zeros(n)
        q[:] = -1.0
        return lane(load8(p, 0), 0), q[0]

    assert probe(n) == (7.0, -1.0)
    assert not hasattr(_simd, "pointer")  # no raw-pointer layer: every operand is an array


def _store_into(a):
    store(a, 0, load4(np.ones(4), 0))


@needs_jit
def test_store_into_a_read_only_array_is_refused_at_typing():
    a = np.zeros(4)
    a.flags.writeable = False
    with pytest.raises(TypingError, match="read-only"):
        njit(_store_into)(a)
    assert not a.any()


@pytest.mark.nojit
def test_store_into_a_read_only_array_is_refused_without_the_jit():
    a = np.zeros(4)
    a.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        _store_into(a)


@pytest.mark.nojit
@pytest.mark.parametrize("i", [-1, -8, 1, 100])
def test_index_outside_the_array_raises_without_the_jit(i):
    a = np.arange(8.0)
    with pytest.raises(IndexError, match="out of bounds"):
        load8(a, i)
    with pytest.raises(IndexError, match="out of bounds"):
        store(a, i, load8(np.zeros(8), 0))


@needs_jit
def test_constant_index_outside_raises_compiled_as_without_the_jit():
    def negative(a):
        return lane(load4(a, -1), 0)

    def lane_4(a):
        return lane(load4(a, 0), 4)

    for f, match in ((negative, "load4: index out of bounds"), (lane_4, "lane out of bounds")):
        with pytest.raises(IndexError, match=match):
            njit(f)(np.arange(8.0))
        with pytest.raises(IndexError):
            f(np.arange(8.0))


_BOUNDSCHECK_PROBE = """
import numpy as np
from kernel._numba import njit
from kernel._simd import add_into, lane, load4, load8, matvec4, store

@njit
def load_at(a, i):
    return lane(load8(a, i), 0)

@njit
def store_at(a, i):
    store(a, i, load8(np.zeros(16), 0))

@njit
def matvec_at(w, i):
    return lane(matvec4(w, i, load4(w, 0)), 0)

@njit
def lane_at(a, k):
    return lane(load4(a, 0), k)

a = np.arange(16.0)
for name, call in [("load", lambda i: load_at(a[:8], i)), ("store", lambda i: store_at(a, i)),
                   ("matvec", lambda i: matvec_at(a, i)), ("lane", lambda k: lane_at(a, k))]:
    for i in ({SITES}):
        try:
            call(i)
            print(name, i, "ok")
        except IndexError as e:
            print(name, i, "IndexError", e)
"""


def _run_probe(sites, boundscheck):
    env = {**os.environ, "CIS_NUMBA_CACHE": "0", "PYTHONPATH": str(ROOT)}
    env.pop("NUMBA_DISABLE_JIT", None)
    if boundscheck:
        env["NUMBA_BOUNDSCHECK"] = "1"
    else:
        env.pop("NUMBA_BOUNDSCHECK", None)
    code = textwrap.dedent(_BOUNDSCHECK_PROBE).replace("{SITES}", sites)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=ROOT, timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    return dict(((n, int(i)), rest) for n, i, rest in
                (line.split(" ", 2) for line in res.stdout.splitlines()))


@needs_jit
def test_every_vector_access_is_bounds_checked_under_numba_boundscheck():
    got = _run_probe("-1, 0, 1, 4, 100", boundscheck=True)
    assert got[("load", 0)] == "ok"
    for i in (-1, 1, 100):  # 8 lanes of an 8-element array: only index 0 fits
        assert got[("load", i)].startswith("IndexError"), (i, got)
    assert got[("store", 0)] == got[("store", 1)] == "ok"  # 16 elements, 8 lanes
    for i in (-1, 100):
        assert got[("store", i)].startswith("IndexError"), (i, got)
    assert got[("matvec", 0)] == "ok"  # 16 entries of a 16-element array
    for i in (-1, 1, 4, 100):
        assert got[("matvec", i)].startswith("IndexError"), (i, got)
    assert got[("lane", 0)] == got[("lane", 1)] == "ok"
    for k in (-1, 4, 100):
        assert got[("lane", k)].startswith("IndexError"), (k, got)


@needs_jit
@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("return vadd(load4(a, 0), load8(a, 0))", "vadd: needs 4 lanes, got 8"),
        ("return vadd(load4(a, 0), load4(b, 0))", "dtype float32 differs from float64"),
        ("return vscale(load4(a, 0), np.float32(2))", "vscale: the scalar must have"),
        ("store(b, 0, load4(a, 0))", "store: the vector's dtype float64 differs"),
        ("return load4(a.astype(np.int64), 0)", "load4: needs a C-contiguous array"),
        ("return load4(a[::2], 0)", "load4: needs a C-contiguous array"),
    ],
)
def test_misuse_is_a_clear_typing_error_and_a_type_error_without_the_jit(body, match):
    ns = {"np": np, "vadd": vadd, "vscale": vscale, "load4": load4, "load8": load8,
          "store": store, "lane": lane}
    exec(f"def f(a, b):\n    {body}\n", ns)  # noqa: S102 - one line of test code
    a, b = np.arange(16.0), np.zeros(16, dtype=np.float32)
    with pytest.raises(TypingError, match=match):
        njit(ns["f"])(a, b)
    with pytest.raises((TypeError, IndexError)):
        ns["f"](a, b)
