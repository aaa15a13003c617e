"""True parameter components: W^l = sum_t W_t^l + W_shared^l exactly, for every construction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel import CONSTRUCTIONS, ConfigError, build_network, forward, sample_batch, truth
from properties.strategies import network_configs
from tests.reference_constructions import literal_layer

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

EVERY = network_configs(n=st.integers(4, 24), constructions=tuple(CONSTRUCTIONS))


@settings(max_examples=60, deadline=None)
@given(cfg=EVERY)
def test_parts_sum_to_the_dense_engines_weights(cfg):
    net = build_network(cfg)
    for layer in range(1, net.L + 1):
        V, U = truth.circuit_factors(net, layer)
        parts = sum(truth.circuit_part(net, t, layer) for t in range(net.T))
        np.testing.assert_allclose(parts, (V @ U).T, rtol=0, atol=1e-13)
        total = parts + truth.shared_matrix(net, layer)
        np.testing.assert_allclose(total, truth.layer_matrix(net, layer), rtol=0, atol=1e-12)
        if layer >= 2:
            literal = literal_layer(cfg.construction, net.circuits.weights[layer - 1],
                                    net.offsets[layer - 1], net.offsets[layer - 2], net.n,
                                    read_c=net.read_c, kappa_scale=cfg.kappa_scale)
            np.testing.assert_allclose(total, literal, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(cfg=EVERY)
def test_each_circuit_part_has_rank_at_most_d_and_lives_on_its_neurons(cfg):
    net = build_network(cfg)
    layer = net.L
    coef = truth.vector_coefficients(net)[layer - 1]
    for t in range(min(net.T, 5)):
        W_t = truth.circuit_part(net, t, layer)
        assert np.linalg.matrix_rank(W_t, tol=1e-9) <= net.d
        if coef[1] == 0:  # written onto t's own S d neurons only
            own = np.zeros(net.D, dtype=bool)
            own[(np.arange(net.d)[:, None] * net.n + net.offsets[layer - 1, t]).ravel()] = True
            assert not W_t[~own].any()


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_the_shared_part_is_zero_exactly_where_documented(construction):
    net = build_network(D=160, d=4, S=4, T=None, L=3, construction=construction, seed=3)
    shared = [np.abs(truth.shared_matrix(net, layer)).max() for layer in range(1, net.L + 1)]
    assert shared[0] == 0
    if construction in ("cis2", "ris-uncapped"):
        assert max(shared) == 0
    else:
        assert min(shared[1:]) > 1e-3


def test_circuit_parts_compute_the_circuit_alone():
    """Feeding W_t^l only circuit t's neurons gives w_t^l r_t on t's neurons (cis2 plain): the
    part is the circuit's own computation."""
    net = build_network(D=120, d=4, S=3, T=30, L=3, seed=1)
    batch = sample_batch(net, 1, 1, seed=2)
    res = forward(net, batch, readout="all")
    t = int(batch.active[0, 0])
    from kernel.io.export import readout_matrix

    A1 = np.maximum(truth.layer_matrix(net, 1) @ np.eye(net.T * net.d)[:, t * net.d:(t + 1)
                                                                       * net.d]
                    @ batch.inputs[0, 0] + np.repeat(net.circuits.bias[0], net.n), 0)
    A2 = np.maximum(truth.circuit_part(net, t, 2) @ A1 + np.repeat(net.circuits.bias[1], net.n),
                    0)
    got = (readout_matrix(net, 2) @ A2).reshape(net.T, net.d)[t]
    np.testing.assert_allclose(got, res.a[0, 2, 0], rtol=0, atol=1e-12)


def test_labels_and_bad_arguments():
    net = build_network(D=40, d=4, S=2, T=6, L=2)
    labels = truth.component_labels(net)
    assert labels.tolist()[:5] == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]
    with pytest.raises(ConfigError, match="layer=3 must be <= 2"):
        truth.circuit_factors(net, 3)
    with pytest.raises(ConfigError, match="circuit=6 must be <= 5"):
        truth.circuit_part(net, 6, 1)
