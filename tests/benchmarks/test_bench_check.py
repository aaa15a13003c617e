"""Benchmarks of what ``cis check`` adds to a forward pass: the measured decomposition and the
cavity recursion, compiled and (at D = 1000) their NumPy oracles, grouped per configuration.

Each group holds the forward pass of the same batch (``forward-auto``), so the cost of the
decomposition reads as a ratio within one run. Every benchmarked call is made once before the
timer starts (numba compiles or loads its cache).
"""

from __future__ import annotations

import numpy as np
import pytest

from bounds.cavity import cavity_recursion
from kernel import forward, sample_batch
from kernel.decompose import decompose
from tests.benchmarks.conftest import network, timed
from tests.reference import cavity_recursion_numpy, decompose_numpy

#: the NumPy oracles are timed at this size only (they take seconds per call beyond it)
ORACLE_D = 1000


def pytest_generate_tests(metafunc) -> None:
    big = timed(metafunc.config)
    if "size" in metafunc.fixturenames:
        sizes = [64, 1000] if big else [16]
        metafunc.parametrize("size", sizes, ids=[f"B{b}" for b in sizes])
    if "samples" in metafunc.fixturenames:
        pools = [10000, 40000] if big else [2000]
        metafunc.parametrize("samples", pools, ids=[f"M{m}" for m in pools])


@pytest.mark.parametrize("z", [2, 3], ids=lambda z: f"z{z}")
@pytest.mark.parametrize("impl", ["forward-auto", "decompose", "decompose-numpy"])
def test_decomposition(benchmark, impl, size, z, D):
    if impl == "decompose-numpy" and D != ORACLE_D:
        pytest.skip(f"the NumPy oracle is timed at D = {ORACLE_D} only")
    net = network(D, 0.0, 4)
    batch = sample_batch(net, size, z, seed=1)
    run = {"forward-auto": lambda: forward(net, batch),
           "decompose": lambda: decompose(net, batch),
           "decompose-numpy": lambda: decompose_numpy(net, batch)}[impl]
    ref = forward(net, batch)
    run()
    benchmark.group = f"decompose|D={D}|T={net.T}|L=4|B={size}|z={z}"
    out = benchmark(run)
    # the benchmarked call computed the errors: the engine's, or the decomposition's total
    total = out.active_error if impl == "forward-auto" else out.active_total
    np.testing.assert_allclose(total, ref.active_error, atol=1e-9)


@pytest.mark.parametrize("impl", ["cavity", "cavity-numpy"])
def test_cavity(benchmark, impl, samples, D):
    if impl == "cavity-numpy" and D != ORACLE_D:
        pytest.skip(f"the NumPy oracle is timed at D = {ORACLE_D} only")
    net = network(D, 0.0, 4)
    c = net.circuits
    fn = cavity_recursion if impl == "cavity" else cavity_recursion_numpy

    def run():
        return fn(c.weights, c.bias, c.inputs, net.design, net.n, 2, samples=samples, seed=0)

    run()
    benchmark.group = f"cavity|D={D}|T={net.T}|L=4|z=2|M={samples}"
    assert len(benchmark(run)) == 5
