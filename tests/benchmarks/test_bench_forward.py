"""Benchmarks of the build and the forward pass, every engine, grouped by configuration.

Every benchmarked call is made once before the timer starts (numba compiles, buffers fault in,
dense matrices are formed). ``dense-blas`` is a forward with pre-formed W^l (one BLAS GEMM/GEMV per
layer, no read-outs of inactive circuits); the numba engines always read out all T circuits.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernel import forward, sample_batch
from kernel.engines import dense_forward
from kernel.patterns import capacity, inverse_index, layer_offsets, prime_step_patterns
from tests.benchmarks.conftest import dense_matrices, network

ENGINES = ["auto", "factorised", "sparse", "auto-f32", "dense-blas", "dense-blas-f32"]
BATCH = [1, 256]
Z = [1, 3]
BIAS = [0.0, -0.1]


def _runner(engine: str, D: int, bias: float, L: int, batch):
    net = network(D, bias, L)
    if engine.startswith("dense-blas"):
        dtype = np.float32 if engine.endswith("f32") else np.float64
        Wt = dense_matrices(D, bias, L, np.dtype(dtype).name)
        return lambda: dense_forward(net, Wt, batch, dtype)
    name, _, f32 = engine.partition("-")
    dtype = "float32" if f32 else "float64"
    return lambda: forward(net, batch, engine=name, dtype=dtype)


def test_build_patterns_and_inverse_index(benchmark, D):
    n, S, L = D // 4, 6, 4
    T = min(D, capacity(n, S))
    rng = np.random.default_rng(0)

    def build():
        offsets = layer_offsets(prime_step_patterns(n, S, T), L, rng)
        return inverse_index(offsets, n)

    build()
    benchmark.group = f"build|D={D}|T={T}"
    indptr, circuits = benchmark(build)
    assert indptr[:, -1].tolist() == [T * S] * L


@pytest.mark.parametrize("L", [2, 4], ids=["one-layer", "L4"])
@pytest.mark.parametrize("bias", BIAS, ids=lambda b: f"beta{b:g}")
@pytest.mark.parametrize("z", Z, ids=lambda z: f"z{z}")
@pytest.mark.parametrize("size", BATCH, ids=lambda b: f"B{b}")
@pytest.mark.parametrize("engine", ENGINES)
def test_forward(benchmark, engine, size, z, bias, L, D):
    # L = 2 is one propagated layer (embed, read-out, W^2, read-out); L = 4 the full forward
    net = network(D, bias, L)
    batch = sample_batch(net, size, z, seed=1)
    run = _runner(engine, D, bias, L, batch)
    first = run()
    benchmark.group = (
        f"forward|{'one-layer' if L == 2 else 'L4'}|D={D}|B={size}|z={z}|beta={bias:g}"
    )
    out = benchmark(run)
    _assert_same_result(engine, out, first, net, batch)


def _assert_same_result(engine, out, first, net, batch) -> None:
    """The benchmarked call computed the forward pass: the numba engines' read-outs equal the
    factorised engine's (bit for bit in float64, to float32 rounding in float32) and repeat
    exactly; the dense baselines give the same last layer A^L twice, finite, of shape (B, D)."""
    if engine.startswith("dense-blas"):
        assert out.shape == (batch.size, net.D) and np.isfinite(out).all()
        np.testing.assert_array_equal(out, first)
        return
    ref = forward(net, batch, engine="factorised")
    np.testing.assert_array_equal(out.active_readout, first.active_readout)
    if engine.endswith("f32"):
        np.testing.assert_allclose(out.active_readout, ref.active_readout, rtol=1e-3, atol=1e-4)
    else:
        np.testing.assert_array_equal(out.active_readout, ref.active_readout)
        np.testing.assert_array_equal(out.inactive_sq, ref.inactive_sq)
