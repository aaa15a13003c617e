"""Compiled against not compiled, bit for bit (issue 17: a line-coverage number of the no-JIT run
measures the Python transliteration, not the code that ships).

- every vector operation of kernel._simd on Hypothesis arrays with the awkward floats (signed
  zeros, subnormals, infinities, NaN) and indices: compiled and Python give the same bits, or
  the same error class; indices outside the array are tried when bounds checking is on (the
  ``boundscheck`` step of .ci/run), since the normal build does not check them;
- the engines and the decomposition on small networks (every construction, d = 4 single-sample
  and generic paths, float64 and float32, factorised and sparse): the results of this process
  (compiled) equal those of a subprocess under NUMBA_DISABLE_JIT=1 bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kernel import _simd
from kernel._numba import njit

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compares compiled code")
CHECKED = bool(numba.config.BOUNDSCHECK)  # type: ignore[attr-defined]


def _floats(dtype):
    width = 64 if dtype == np.float64 else 32
    return st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True)


@st.composite
def _case(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    lanes = draw(st.sampled_from([1, 4, 8, 16]))
    n = draw(st.integers(16, 40))
    a = draw(hnp.arrays(dtype, n, elements=_floats(dtype)))
    b = draw(hnp.arrays(dtype, n, elements=_floats(dtype)))
    span = 16 if lanes == 4 else lanes  # j also starts a 4x4 matrix when lanes == 4
    i = draw(st.integers(-3, n + 3) if CHECKED else st.integers(0, n - lanes))
    j = draw(st.integers(-3, n + 3) if CHECKED else st.integers(0, n - span))
    k = draw(st.integers(-2, lanes + 1) if CHECKED else st.integers(0, lanes - 1))
    c = dtype(draw(_floats(dtype)))
    return lanes, a, b, i, j, k, c


def _make_ops(load, with_matvec):
    def ops(a, b, counts, i, j, k, c):
        """Every operation once on vectors loaded at i and j; returns a scalar, writes into b
        and counts."""
        x = load(a, i)
        y = load(a, j)
        s = _simd.vadd(_simd.vmul(x, y), _simd.vsub(x, _simd.vscale(y, c)))
        _simd.store(b, j, s)
        _simd.add_into(b, i, x)
        m = _simd.vmax_abs(_simd.to_float64(y), _simd.to_float64(s))
        _simd.count_above(counts, i, m, np.float64(c))
        if with_matvec:
            _simd.store(b, i, _simd.matvec4(a, j, x))
        return _simd.lane(m, k)

    return ops


_PY = {lanes: _make_ops(load, lanes == 4) for lanes, load in
       ((1, _simd.load1), (4, _simd.load4), (8, _simd.load8), (16, _simd.load16))}
_JIT = {lanes: njit(fn) for lanes, fn in _PY.items()}


def _run(fn, case):
    lanes, a, b, i, j, k, c = case
    b = b.copy()
    counts = np.zeros(a.size, dtype=np.int64)
    try:
        with np.errstate(all="ignore"):  # numpy scalars warn on inf / nan; LLVM does not
            out = fn(a, b, counts, i, j, k, c)
    except IndexError as exc:
        return ("IndexError", str(exc).split(":")[0])
    return ("ok", _bits(np.float64(out)), _bits(b), counts.tobytes())


def _bits(x):
    """The bytes of x with every NaN written as one NaN. IEEE 754 leaves the sign and payload of
    a NaN result open, and x86 takes them from whichever operand comes first, which LLVM may
    commute (inf * 0 + (inf - nan) gave -nan compiled, +nan in Python): NaN where NaN is
    required, and every other value bit for bit, signed zeros included."""
    x = np.array(x, copy=True, ndmin=1)
    x[np.isnan(x)] = np.nan
    return x.view(np.uint8).tobytes()


@settings(max_examples=300, deadline=None)
@given(_case())
@example((1, np.array([np.inf] + [0.0] * 15), np.zeros(16), 0, 1, 0, np.float64(np.nan)))
def test_vector_operations_compiled_equal_python_bit_for_bit(case):
    lanes = case[0]
    got = _run(_JIT[lanes], case)
    want = _run(_PY[lanes], case)
    if CHECKED and want[0] == "IndexError":
        assert got[0] == "IndexError"  # messages differ: the compiled one names no index
    else:
        assert got == want


# ----------------------------------------------------------------------------- whole passes

_PASSES = """
import json, sys
import numpy as np
from kernel.decompose import decompose
from kernel.engines import forward, sample_batch
from kernel.network import build_network
out = {}
for name, params, size, dtype, engine in json.loads(sys.argv[1]):
    net = build_network(**params)
    batch = sample_batch(net, size, 2, seed=3)
    r = forward(net, batch, engine=engine, dtype=dtype, readout=[0, 1])
    vals = [r.active_readout, r.readout, r.inactive_sq, r.inactive_max, r.inactive_false,
            r.frac_on]
    if dtype == "float64" and engine == "factorised":
        dec = decompose(net, batch)
        vals += [dec.active_total, *dec.active_terms.values(), dec.inactive_sq,
                 *dec.inactive_terms_sq.values(), dec.inactive_max, dec.inactive_sum]
    out[name] = [np.ascontiguousarray(v).view(np.uint8).tobytes().hex() for v in vals]
print(json.dumps(out))
"""

_CONFIGS = [
    ("cis2-d4-single", {"D": 80, "d": 4, "S": 3, "T": 25, "L": 3, "seed": 1}, 1, "float64",
     "factorised"),
    ("cis2-d4-batch-saturated", {"D": 80, "d": 4, "S": 3, "T": 25, "L": 3, "bias": 0.0,
                                 "seed": 2}, 11, "float64", "factorised"),
    ("cis2-d6-sparse-f32", {"D": 120, "d": 6, "S": 3, "T": 25, "L": 3, "seed": 3}, 19,
     "float32", "sparse"),
    ("ris-split-d4", {"D": 160, "d": 4, "S": 3, "T": 40, "L": 3, "construction": "ris-split",
                      "seed": 4}, 9, "float64", "factorised"),
    ("ris-capped-d2", {"D": 60, "d": 2, "S": 3, "T": 30, "L": 3,
                       "construction": "ris-capped", "seed": 5}, 1, "float64", "factorised"),
]


def _passes(disable_jit):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_DISABLE_JIT",)}
    env.update(PYTHONPATH=str(ROOT), CIS_NUMBA_CACHE="0")
    if disable_jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    res = subprocess.run([sys.executable, "-c", _PASSES, json.dumps(_CONFIGS)], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.mark.slow
def test_engines_and_decomposition_compiled_equal_no_jit_bit_for_bit():
    compiled = _passes(disable_jit=False)
    python = _passes(disable_jit=True)
    assert compiled.keys() == python.keys() == {c[0] for c in _CONFIGS}
    for name in compiled:
        for k, (x, y) in enumerate(zip(compiled[name], python[name], strict=True)):
            assert x == y, f"{name}: output {k} differs"
