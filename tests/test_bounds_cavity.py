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


def test_small_pool_is_unbiased_a_circuits_sharers_are_distinct_trajectories():
    # D = 1000, T = T_max = 557: a tagged circuit sums the pushed errors of ~75 sharers. Drawn
    # with replacement from a pool of M they shared the pool's sample mean and the layer-2 MSE
    # came out (1 + 75 / M) too large (1.5x at M = 150; the depth-2 capacity bias at D >= 16000,
    # docs/cavity.md). Distinct trajectories: the mean over 20 small pools matches a large pool.
    net = build_network(D=1000, S=6, L=2, seed=0)
    ref = _run(cavity_recursion, net, 2, samples=20000, seed=1)[2]
    small = [_run(cavity_recursion, net, 2, samples=150, seed=100 + s)[2] for s in range(20)]
    for cls in ("active", "inactive"):
        ratio = np.mean([getattr(p, cls)["mse"] for p in small]) / getattr(ref, cls)["mse"]
        assert 0.88 <= ratio <= 1.12, (cls, ratio)


def test_layer1_strata_keep_the_expectation_and_cut_the_scatter():
    # D = 4000, T = 2000: ~7% of inactive circuits carry a layer-1 error. Sampled given an active
    # neighbour and weighted by its probability, layer 1's inactive class (and the layer-2
    # predictions built on it) keeps its expectation and scatters far less between pools of 1000.
    net = build_network(D=4000, S=6, T=2000, L=2, seed=0)

    def run(samples, seed, stratify):
        p = _run(cavity_recursion, net, 2, samples=samples, seed=seed, stratify=stratify)
        return np.array([p[1].inactive["mse"], p[2].active["mse"], p[2].inactive["mse"]])

    ref = np.mean([run(40000, 2, True), run(40000, 2, False)], axis=0)
    strat = np.array([run(1000, 10 + s, True) for s in range(12)]) / ref
    plain = np.array([run(1000, 10 + s, False) for s in range(12)]) / ref
    assert np.all(np.abs(strat.mean(axis=0) - 1) <= [0.03, 0.05, 0.05]), strat.mean(axis=0)
    assert np.all(np.abs(plain.mean(axis=0) - 1) <= 0.1), plain.mean(axis=0)
    assert strat.std(axis=0)[0] < plain.std(axis=0)[0] / 4
    assert np.all(strat.std(axis=0)[1:] < plain.std(axis=0)[1:] / 2)
