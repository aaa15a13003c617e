"""SPEC §4: the measured decomposition eps = overlap + propagation + relu, against an explicit
oracle (tests/reference.py) and against the forward engines."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel import build_network, forward, sample_batch
from kernel.decompose import TERMS, decompose
from tests.reference import decompose_explicit
from tests.test_network import small_networks


@settings(max_examples=settings.default.max_examples)
@given(params=small_networks, bias=st.sampled_from([0.0, -0.03]), z=st.integers(1, 4),
       batch_seed=st.integers(0, 1000), chunk=st.integers(1, 3))
def test_decomposition_matches_the_explicit_oracle(params, bias, z, batch_seed, chunk):
    net = build_network(**params, bias=bias)
    batch = sample_batch(net, 3, min(z, net.T), seed=batch_seed)
    ref = decompose_explicit(net, batch.active, batch.inputs)
    dec = decompose(net, batch, chunk=chunk)
    act = batch.active[:, None, :, None]
    inactive = np.ones((3, net.T), dtype=bool)
    inactive[np.arange(3)[:, None], batch.active] = False
    np.testing.assert_allclose(dec.active_total, np.take_along_axis(ref["total"], act, axis=2),
                               atol=1e-12)
    np.testing.assert_allclose(dec.inactive_sq,
                               ((ref["total"] ** 2).sum(-1) * inactive[:, None]).sum(-1),
                               atol=1e-12)
    for k in TERMS:
        np.testing.assert_allclose(dec.active_terms[k], np.take_along_axis(ref[k], act, axis=2),
                                   atol=1e-12, err_msg=k)
        np.testing.assert_allclose(dec.inactive_terms_sq[k],
                                   ((ref[k] ** 2).sum(-1) * inactive[:, None]).sum(-1),
                                   atol=1e-12, err_msg=k)
    # layer 1 has no propagation term (P^1 = A^0 = X^1)
    assert np.all(dec.active_terms["propagation"][:, 1] == 0.0)


def test_decomposition_agrees_with_the_numba_engine_on_a_mid_size_network():
    for variant in ("plain", "corrected"):
        net = build_network(D=2000, S=5, T=600, L=4, variant=variant, bias=-0.02, seed=7)
        batch = sample_batch(net, 24, 3, seed=1)
        res = forward(net, batch, engine="factorised")
        dec = decompose(net, batch)
        np.testing.assert_allclose(dec.active_total, res.active_error, atol=1e-12)
        np.testing.assert_allclose(dec.inactive_sq, res.inactive_sq, rtol=1e-10)
        np.testing.assert_allclose(dec.inactive_max, res.inactive_max, atol=1e-12)
        np.testing.assert_allclose(dec.frac_on, res.frac_on, atol=1e-12)
