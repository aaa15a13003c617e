"""docs/construction.md: embedding identities, neurons touched, the dense W^l, circuit families."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel import build_network, make_circuits, run_small
from properties import strategies as cst

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

# the library's own strategy (properties.strategies), as a dict of build_network keywords
# without the bias: the tests that use it draw their own (build_network(**params, bias=...))
small_networks = cst.network_configs(
    families=("signed", "gaussian", "permutation"),
    d=st.just(4),
    n=st.integers(6, 30),
    S=st.integers(2, 5),
    L=st.integers(1, 3),
    bias=st.just(0.0),
).map(lambda cfg: {k: v for k, v in cfg.as_dict().items() if k != "bias"})


@given(small_networks)
def test_unembed_inverts_embed_and_cross_terms_are_overlaps(params):
    net = build_network(**params)
    for layer in range(1, net.L + 1):
        E = [net.embed_matrix(t, layer) for t in range(net.T)]
        U = [net.unembed_matrix(t, layer) for t in range(net.T)]
        for t in range(net.T):
            np.testing.assert_allclose(U[t] @ E[t], np.eye(net.d), atol=1e-12)
            # exactly S*d neurons touched, S per block
            touched = E[t].any(axis=1)
            assert touched.sum() == net.S * net.d
            assert (touched.reshape(net.d, net.n).sum(axis=1) == net.S).all()
        if params["variant"] == "plain":
            for t in range(min(net.T, 6)):
                for u in range(net.T):
                    if u != t:
                        o = len(set(net.offsets[layer - 1, t]) & set(net.offsets[layer - 1, u]))
                        assert o <= 1
                        np.testing.assert_allclose(U[t] @ E[u], o / net.S * np.eye(net.d))


@given(small_networks.filter(lambda p: p["L"] >= 2))
def test_dense_layer_equals_the_sum_of_explicit_products(params):
    net = build_network(**params)
    for layer in range(2, net.L + 1):
        ref = sum(
            net.embed_matrix(t, layer) @ net.circuits.weights[layer - 1, t]
            @ net.unembed_matrix(t, layer - 1)
            for t in range(net.T)
        )
        np.testing.assert_allclose(net.dense_layer(layer), ref, atol=1e-12)


def test_dense_input_embedding_stacks_the_embeddings():
    net = build_network(D=40, d=4, S=3, T=6, L=1)
    E = net.dense_input_embedding(1)
    for t in range(net.T):
        np.testing.assert_array_equal(E[:, t * 4 : (t + 1) * 4], net.embed_matrix(t, 1))


def test_network_is_reproducible_from_its_seed():
    a, b = build_network(D=400, S=5, seed=3), build_network(D=400, S=5, seed=3)
    c = build_network(D=400, S=5, seed=4)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.circuits.weights, b.circuits.weights)
    assert not np.array_equal(a.offsets, c.offsets)


def test_signed_family_keeps_norm_and_half_the_neurons_on():
    c = make_circuits("signed", 200, 4, 6, seed=0)
    act = np.arange(200)[:, None]
    _, a = run_small(c, act, c.inputs[act])
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0)
    assert ((a > 0).sum(axis=-1) <= 3).all()
    assert c.gain() == pytest.approx(2.0)


def test_gaussian_family_satisfies_a5_and_positive_inputs():
    c = make_circuits("gaussian", 300, 3, 5, seed=1)
    assert c.gain() <= 1 + 1e-12
    assert (c.inputs >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(c.inputs, axis=1), 1.0)
    assert abs(c.weights.mean()) < 0.01  # zero-mean weights (A4)


def test_permutation_family_is_permutation_matrices():
    c = make_circuits("permutation", 50, 2, 4, seed=2)
    assert set(np.unique(c.weights)) == {0.0, 1.0}
    np.testing.assert_array_equal(c.weights.sum(axis=2), 1.0)
    np.testing.assert_array_equal(c.weights.sum(axis=3), 1.0)
