"""The vector operations of kernel._simd: compiled, they are LLVM vector instructions and give
the Python definitions' results bit for bit (per lane the same IEEE operations in the same
order); not compiled, they keep the array's dtype. Misuse gets the same refusal both ways:
read-only arrays, indices out of bounds (compiled: under NUMBA_BOUNDSCHECK=1, run in a
subprocess), wrong widths and dtypes."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from kernel._numba import njit
from kernel._simd import (
    add_into,
    count_above,
    lane,
    load1,
    load4,
    load8,
    load16,
    matvec4,
    store,
    to_float64,
    vadd,
    vmax_abs,
    vmul,
    vscale,
    vsub,
)

DTYPES = [np.float64, np.float32]
needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compares compiled code")


def _data(dtype, n, seed):
    # magnitudes spread over 12 decades and both signs: any change of association or a fused
    # multiply-add changes low bits of the sums
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6, n)).astype(dtype)


def _quad_ops(a, w, c, out, wide):
    """Every operation once, on 4 lanes from ``a`` and 8 / 16 / 1 lanes from ``wide``; results
    into the rows of ``out`` (float64 statistics in ``wide``'s tail, counts in ``out`` row 5)."""
    x = load4(a, 1)
    y = load4(a, 6)
    s = vadd(x, y)
    d = vsub(x, y)
    store(out, 0, s)
    store(out, 4, d)
    store(out, 8, vscale(x, c))
    store(out, 12, matvec4(w, 3, d))
    add_into(out, 16, matvec4(w, 3, d))
    store(out, 20, vmul(x, y))
    m = vmax_abs(load4(a, 0), y)
    store(out, 24, m)
    out[28] = lane(m, 2)
    v8 = load8(wide, 0)
    add_into(wide, 8, vmul(v8, v8))
    v16 = load16(wide, 16)
    store(wide, 32, vadd(v16, v16))
    store(wide, 48, vadd(load1(wide, 3), load1(wide, 4)))


_quad_ops_jit = njit(_quad_ops)


@needs_jit
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_operations_equal_the_python_definitions_bit_for_bit(dtype):
    compiled = _quad_ops_jit

    for seed in range(20):
        a = _data(dtype, 12, seed)
        w = _data(dtype, 20, seed + 100)
        c = dtype(_data(dtype, 1, seed + 200)[0])
        got = np.zeros(32, dtype=dtype)
        got[16:20] = _data(dtype, 4, seed + 300)
        wide = _data(dtype, 64, seed + 400)
        want, want_wide = got.copy(), wide.copy()
        compiled(a, w, c, got, wide)
        _quad_ops(a, w, c, want, want_wide)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
        np.testing.assert_array_equal(wide.view(np.uint8), want_wide.view(np.uint8))


def _statistics(x, m, n, thr):
    v = to_float64(load8(x, 0))
    store(m, 0, vmax_abs(load8(m, 0), v))
    count_above(n, 0, vmul(v, v), thr)
    return lane(v, 7)


_statistics_jit = njit(_statistics)


@needs_jit
@pytest.mark.parametrize("dtype", DTYPES)
def test_statistics_operations_equal_the_python_definitions(dtype):
    compiled = _statistics_jit

    for seed in range(10):
        x = _data(dtype, 8, seed)
        m = np.abs(_data(np.float64, 8, seed + 50))
        n = np.arange(8, dtype=np.int64)
        thr = float(np.sort(x.astype(np.float64) ** 2)[3])  # a tie: counted only if above
        m2, n2 = m.copy(), n.copy()
        last = compiled(x, m, n, thr)
        assert last == _statistics(x, m2, n2, thr) == np.float64(x[7])
        np.testing.assert_array_equal(m, m2)
        np.testing.assert_array_equal(n, n2)
        assert (n - np.arange(8)).sum() == 4


@needs_jit
@pytest.mark.parametrize(("dtype", "scalar"), [(np.float64, "double"), (np.float32, "float")])
def test_compiled_operations_are_vector_instructions_without_fma(dtype, scalar):
    ops = njit(_quad_ops)  # a fresh dispatcher: one signature, this dtype's
    ops(np.zeros(12, dtype=dtype), np.zeros(20, dtype=dtype), dtype(1), np.zeros(32, dtype=dtype),
        np.zeros(64, dtype=dtype))
    (ir,) = ops.inspect_llvm().values()
    for op, lanes in (("fadd", 4), ("fsub", 4), ("fmul", 4), ("fadd", 8), ("fadd", 16)):
        assert f"{op} <{lanes} x {scalar}>" in ir, f"no vector {op} on <{lanes} x {scalar}>"
    for fused in ("fma", "contract", "fast"):
        assert f"{fused} " not in ir and f".{fused}." not in ir, f"'{fused}' found in the IR"


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_python_operations_keep_the_dtype(dtype):
    a = _data(dtype, 16, 0)
    x = load4(a, 0)
    c = a[5]
    for quad in (vadd(x, x), vsub(x, x), vmul(x, x), vscale(x, c), matvec4(a, 0, x),
                 vmax_abs(x, x)):
        assert len(quad) == 4 and all(isinstance(v, dtype) for v in quad)
    assert all(isinstance(v, np.float64) for v in to_float64(x))
    assert len(load1(a, 0)) == 1 and len(load8(a, 0)) == 8 and len(load16(a, 0)) == 16
    out = np.zeros(6, dtype=dtype)
    add_into(out, 2, x)
    np.testing.assert_array_equal(out[2:], np.array(x, dtype=dtype))
    assert not out[:2].any()
    store(out, 1, x)
    np.testing.assert_array_equal(out[1:5], np.array(x, dtype=dtype))
    assert out[0] == 0.0 and out[5] == x[3]  # untouched by store
    with pytest.raises(TypeError, match="C-contiguous"):
        load4(a[::2], 0)
