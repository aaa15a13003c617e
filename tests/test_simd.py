"""The 4-wide operations of kernel._simd: compiled, they are LLVM vector instructions and give
the Python definitions' results bit for bit (per lane the same IEEE operations in the same
order); not compiled, they keep the array's dtype."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from kernel._numba import njit
from kernel._simd import add4, add_into4, load4, matvec4, scale4, store4, sub4

DTYPES = [np.float64, np.float32]


def _data(dtype, n, seed):
    # magnitudes spread over 12 decades and both signs: any change of association or a fused
    # multiply-add changes low bits of the sums
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6, n)).astype(dtype)


@njit
def _all_ops(a, w, c, out):
    x = load4(a, 1)
    y = load4(a, 6)
    s = add4(x, y)
    d = sub4(x, y)
    k = scale4(x, c)
    m = matvec4(w, 3, d)
    store4(out[0], 0, s)
    store4(out[1], 0, d)
    store4(out[2], 0, k)
    store4(out[3], 0, m)
    add_into4(out[4], 0, m)


def _all_ops_python(a, w, c, out):
    x = tuple(a[1:5])
    y = tuple(a[6:10])
    out[0] = [x[i] + y[i] for i in range(4)]
    out[1] = [x[i] - y[i] for i in range(4)]
    out[2] = [c * x[i] for i in range(4)]
    d = out[1]
    # each row summed left to right in the array's dtype, one rounding per operation
    out[3] = [((w[3 + 4 * r] * d[0] + w[4 + 4 * r] * d[1]) + w[5 + 4 * r] * d[2])
              + w[6 + 4 * r] * d[3] for r in range(4)]
    out[4] += out[3]


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compares compiled code with Python")
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_operations_equal_the_python_definitions_bit_for_bit(dtype):
    for seed in range(20):
        a = _data(dtype, 12, seed)
        w = _data(dtype, 20, seed + 100)
        c = dtype(_data(dtype, 1, seed + 200)[0])
        start = _data(dtype, 4, seed + 300)
        got = np.zeros((5, 4), dtype=dtype)
        got[4] = start
        want = got.copy()
        _all_ops(a, w, c, got)
        _all_ops_python(a, w, c, want)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="inspects compiled code")
@pytest.mark.parametrize(("dtype", "lanes"), [(np.float64, "<4 x double>"),
                                              (np.float32, "<4 x float>")])
def test_compiled_operations_are_vector_instructions_without_fma(dtype, lanes):
    a = np.zeros(12, dtype=dtype)
    w = np.zeros(20, dtype=dtype)
    ops = njit(_all_ops.py_func)  # a fresh dispatcher: one signature, this dtype's
    ops(a, w, dtype(1), np.zeros((5, 4), dtype=dtype))
    (ir,) = ops.inspect_llvm().values()
    for op in ("fadd", "fsub", "fmul"):
        assert f"{op} {lanes}" in ir, f"no vector {op} on {lanes}"
    for fused in ("fma", "contract", "fast"):
        assert f"{fused} " not in ir and f".{fused}." not in ir, f"'{fused}' found in the IR"


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_python_operations_keep_the_dtype(dtype):
    a = _data(dtype, 16, 0)
    x = load4(a, 0)
    c = a[5]
    for quad in (add4(x, x), sub4(x, x), scale4(x, c), matvec4(a, 0, x)):
        assert len(quad) == 4 and all(isinstance(v, dtype) for v in quad)
    out = np.zeros(6, dtype=dtype)
    add_into4(out, 2, x)
    np.testing.assert_array_equal(out[2:], np.array(x, dtype=dtype))
    assert not out[:2].any()
    store4(out, 1, x)
    np.testing.assert_array_equal(out[1:5], np.array(x, dtype=dtype))
    assert out[0] == 0.0 and out[5] == x[3]  # untouched by store4
