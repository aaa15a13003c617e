"""The compiled cavity recursion (``bounds.cavity`` + ``kernel._jit_cavity``) against its NumPy
oracle (``tests.reference.cavity_recursion_numpy``): the same seed draws the same random numbers
in the same order, so every prediction, term and Monte Carlo standard error agrees to rounding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounds.cavity import cavity_recursion
from kernel import build_network
from tests.reference import cavity_recursion_numpy
from tests.test_network import small_networks

RTOL = 1e-12


def _run(fn, net, z, **kw):
    c = net.circuits
    return fn(c.weights, c.bias, c.inputs, net.design, net.n, z, read_c=net.read_c, **kw)


def _flat(preds) -> np.ndarray:
    """Every number of a prediction list, in a fixed order."""
    vals = []
    for p in preds:
        vals += [p.layer, p.active_se, p.inactive_se, p.frac_on_noise]
        vals += [p.active[k] for k in sorted(p.active)]
        vals += [p.inactive[k] for k in sorted(p.inactive)]
    return np.array(vals, dtype=float)


@pytest.mark.nojit
@settings(max_examples=settings.default.max_examples)
@given(params=small_networks, bias=st.sampled_from([0.0, -0.05]), z=st.integers(1, 4),
       samples=st.integers(100, 700), chunk=st.integers(50, 400), seed=st.integers(0, 99))
def test_compiled_cavity_equals_the_numpy_oracle(params, bias, z, samples, chunk, seed):
    net = build_network(**params, bias=bias)
    z = min(z, net.T)
    kw = dict(samples=samples, seed=seed, chunk=chunk)
    got, want = _flat(_run(cavity_recursion, net, z, **kw)), _flat(_run(cavity_recursion_numpy,
                                                                         net, z, **kw))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max())


def test_compiled_cavity_equals_the_oracle_at_check_size():
    # the size ``cis check`` runs by default (corrected read-out: the block-sum branch)
    for variant, family in (("plain", "signed"), ("corrected", "gaussian")):
        net = build_network(D=1000, S=6, L=3, variant=variant, family=family, bias=-0.02, seed=2)
        kw = dict(samples=20000, seed=5)
        got = _flat(_run(cavity_recursion, net, 2, **kw))
        want = _flat(_run(cavity_recursion_numpy, net, 2, **kw))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max())


def test_same_seed_same_numbers_and_the_seed_matters():
    net = build_network(D=1000, S=6, T=400, L=3, seed=1)
    first = _flat(_run(cavity_recursion, net, 2, samples=3000, seed=7))
    np.testing.assert_array_equal(first, _flat(_run(cavity_recursion, net, 2, samples=3000,
                                                    seed=7)))
    other = _flat(_run(cavity_recursion, net, 2, samples=3000, seed=8))
    assert not np.array_equal(first, other)
    # ... and the difference is Monte Carlo error: within 5 standard errors at every layer
    a = _run(cavity_recursion, net, 2, samples=3000, seed=7)
    b = _run(cavity_recursion, net, 2, samples=3000, seed=8)
    for p, q in zip(a[1:], b[1:], strict=True):
        assert abs(p.active["mse"] - q.active["mse"]) <= 5 * np.hypot(p.active_se, q.active_se)
        assert abs(p.inactive["mse"] - q.inactive["mse"]) <= 5 * np.hypot(p.inactive_se,
                                                                          q.inactive_se)
