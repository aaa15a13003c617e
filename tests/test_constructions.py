"""The four constructions of W^l against their literal formulas (tests/reference_constructions.py),
their identities and structure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel import NetworkConfig, build_network, forward, make_batch, sample_batch, user_network
from kernel.constructions import (
    CONSTRUCTIONS,
    build_construction,
    capped_offsets,
    dense_weight,
    linked_pairs_below,
)
from kernel.decompose import decompose
from kernel.validate import ConfigError
from properties import strategies as cst
from tests import reference_constructions as ref
from tests.reference import decompose_numpy

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


def small_nets(constructions=tuple(CONSTRUCTIONS), L=None):
    """The library's own strategy (``properties.strategies.network_configs``) over every family
    and construction, n <= 16 and T <= 24, as a dict of ``build_network`` keywords."""
    return cst.network_configs(
        constructions=tuple(constructions),
        n=st.integers(4, 16),
        S=st.integers(2, 4),
        L=st.integers(2, 3) if L is None else L,
        T_max=24,
        bias=st.sampled_from([0.0, -0.02]),
        kappa_scale=st.sampled_from([1.0, 1.15]) | st.floats(0.0, 2.0),
        rot_bias=st.sampled_from([1.0, 0.5, 2.0]),
    ).map(NetworkConfig.as_dict)


@given(small_nets())
def test_dense_layer_equals_the_literal_formula(params):
    net = build_network(**params)
    for layer in range(2, net.L + 1):
        want = ref.literal_layer(
            params["construction"], net.circuits.weights[layer - 1], net.offsets[layer - 1],
            net.offsets[layer - 2], net.n, read_c=net.read_c if params["construction"] == "cis2"
            else 0.0, kappa_scale=params["kappa_scale"])
        np.testing.assert_allclose(net.dense_layer(layer), want, rtol=1e-12, atol=1e-12)


@given(small_nets(), st.integers(0, 2**16))
def test_factorised_numpy_layer_equals_the_dense_matrix(params, seed):
    net = build_network(**params)
    A = np.maximum(np.random.default_rng(seed).standard_normal((3, net.D)), 0.0)
    for layer in range(2, net.L + 1):
        np.testing.assert_allclose(
            ref.apply_layer(net.construction, net.offsets, net.n, layer, A),
            A @ net.dense_layer(layer).T, rtol=1e-12, atol=1e-12)


@given(small_nets(L=st.just(3)), st.integers(1, 3), st.integers(0, 2**16))
def test_dense_engine_equals_the_literal_forward_pass(params, z, seed):
    net = build_network(**params)
    batch = sample_batch(net, 3, min(z, net.T), seed=seed)
    res = forward(net, batch, engine="dense", readout="all")
    want = ref.literal_forward(net, params["construction"], batch.active, batch.inputs)
    np.testing.assert_allclose(res.readout, want, rtol=1e-10, atol=1e-10)


@given(small_nets(constructions=("ris-uncapped", "ris-split")))
def test_with_c_zero_and_mean_weight_zero_ris_reduces_to_cis2(params):
    """The reduction identity (docs/rotations.md), at both levels: literal formulas and the
    package's construction data."""
    net = build_network(**{**params, "variant": "plain"})
    w, off, n, L, d = net.circuits.weights, net.offsets, net.n, net.L, net.d
    zero = np.zeros((L, d, d))
    cis2 = build_construction("cis2", w, off, n)
    ris = build_construction(params["construction"], w, off, n, c=0.0, wbar=zero)
    for layer in range(2, L + 1):
        base = ref.literal_layer("cis2", w[layer - 1], off[layer - 1], off[layer - 2], n)
        lit = ref.literal_layer(params["construction"], w[layer - 1], off[layer - 1],
                                off[layer - 2], n, c=0.0, wbar=zero[0])
        np.testing.assert_allclose(lit, base, atol=1e-13)
        np.testing.assert_allclose(dense_weight(ris, off, n, layer),
                                   dense_weight(cis2, off, n, layer), atol=1e-13)
    # and c = 0 vanishing on its own makes the ris read-out plain
    assert ris.read_c == 0.0


def test_disjoint_zero_mean_circuits_run_identically_under_every_construction():
    """T S = n (disjoint patterns, so p = c = 0) and weights in +/- pairs (w_bar = 0): the three
    uncapped/split/cis2 networks are one network; capped differs only by kappa (0: no pairs are
    linked across circuits)."""
    rng = np.random.default_rng(4)
    T, L, d, S, n = 6, 3, 3, 3, 18
    half = rng.standard_normal((T // 2, L, d, d)) / np.sqrt(d)
    w = np.concatenate([half, -half])
    x = np.abs(rng.standard_normal((T, d)))
    outs = {}
    for con in CONSTRUCTIONS:
        net = user_network(w, -0.01, x, D=d * n, S=S, construction=con)
        assert net.construction.c == 0.0 or con == "cis2"
        outs[con] = forward(net, make_batch(net, [[0, 4], [1, 2], [5, 3]]), engine="dense",
                            readout="all").readout
    for con in CONSTRUCTIONS:
        np.testing.assert_allclose(outs[con], outs["cis2"], atol=1e-12)


@given(small_nets(constructions=("ris-capped",)))
def test_capped_offsets_and_kappa_match_the_literal_definitions(params):
    net = build_network(**params)
    con = net.construction
    n, S, T = net.n, net.S, net.T
    for layer in range(2, net.L + 1):
        C = ref.cap_matrix(con, layer, n)
        C_lit, kappa = ref.literal_capped(net.offsets[layer - 1], net.offsets[layer - 2], n, S,
                                          params["kappa_scale"])
        np.testing.assert_array_equal(C, C_lit)
        # the engines' sparse term K: the excess of the plain route sum over C
        e_w = ref.pattern_vectors(net.offsets[layer - 1], n)
        e_r = ref.pattern_vectors(net.offsets[layer - 2], n)
        ptr = con.sparse_indptr[layer - 1]
        K = np.zeros((n, n))
        for k in range(n):
            K[k, con.sparse_indices[ptr[k]:ptr[k + 1]]] = con.sparse_values[ptr[k]:ptr[k + 1]]
        np.testing.assert_array_equal(K, e_w.T @ e_r - C_lit)
        assert set(np.unique(C)) <= {0.0, 1.0}
        assert C.sum() <= T * S * S
        assert con.kappa[layer - 1] >= 0.0
        np.testing.assert_allclose(con.kappa[layer - 1], kappa, rtol=1e-12, atol=0)


@given(st.integers(2, 40), st.integers(2, 4), st.integers(0, 2**16), st.integers(1, 64))
def test_linked_pairs_below_counts_the_literal_pair_sum(T, S, seed, chunk):
    rng = np.random.default_rng(seed)
    n = 12
    off_w = np.sort(np.stack([rng.choice(n, S, replace=False) for _ in range(T)]), axis=1)
    off_r = np.sort(np.stack([rng.choice(n, S, replace=False) for _ in range(T)]), axis=1)
    ptr, idx = capped_offsets(off_w, off_r, n)
    e_w, e_r = ref.pattern_vectors(off_w, n), ref.pattern_vectors(off_r, n)
    C = np.minimum(1.0, e_w.T @ e_r)
    want = sum(e_w[t] @ C @ e_r[u] for t in range(T) for u in range(t + 1, T))
    assert linked_pairs_below(off_w, off_r, n, ptr, idx) == int(round(want))
    # expanded a few triples at a time (down to one circuit-offset per chunk): the same count
    assert linked_pairs_below(off_w, off_r, n, ptr, idx, chunk=chunk) == int(round(want))


def test_linked_pairs_below_holds_a_bounded_expansion():
    """The (u, m, k) triples (~T^2 S^3 / n: 5 10^7 here, 10^9 at D = 16000 and T_max) are
    expanded in chunks: unchunked this count held ~720 MB at its peak (the sweep of
    experiments/construction_capacity.toml needs T up to 134000 at n = 4000)."""
    import tracemalloc

    T, n = 8000, 1000
    net = build_network(D=4 * n, T=T, L=2, seed=0)
    off_w, off_r = net.offsets[1], net.offsets[0]
    ptr, idx = capped_offsets(off_w, off_r, n)
    tracemalloc.start()
    try:
        X = linked_pairs_below(off_w, off_r, n, ptr, idx)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6, peak
    assert X == linked_pairs_below(off_w, off_r, n, ptr, idx, chunk=1 << 24)


@given(small_nets())
def test_read_out_inverts_the_embedding_for_every_construction(params):
    net = build_network(**params)
    for layer in range(1, net.L + 1):
        for t in range(net.T):
            U = net.unembed_matrix(t, layer)
            want = np.kron(np.eye(net.d), ref.literal_readout_vector(
                params["construction"], net.offsets[layer - 1], net.n, t, read_c=net.read_c))
            np.testing.assert_allclose(U, want, atol=1e-15)
            np.testing.assert_allclose(U @ net.embed_matrix(t, layer), np.eye(net.d), atol=1e-12)


def test_capped_kappa_balances_linked_and_unlinked_pairs():
    """kappa = X/(P - X) makes the capped offset part C - kappa(1 1^T - C) sum to zero over the
    pairs t < u (kappa_scale 1): the mean weight adds no mean cross-talk between circuits."""
    net = build_network(D=4 * 60, d=4, S=4, T=80, L=3, family="rotation",
                        construction="ris-capped")
    con = net.construction
    for layer in (2, 3):
        C = ref.cap_matrix(con, layer, net.n)
        Ct = C - con.kappa[layer - 1] * (1.0 - C)
        e_w = ref.pattern_vectors(net.offsets[layer - 1], net.n)
        e_r = ref.pattern_vectors(net.offsets[layer - 2], net.n)
        M = e_w @ Ct @ e_r.T  # (T, T)
        assert abs(np.triu(M, 1).sum()) < 1e-9 * np.abs(M).sum()
        assert 0.0 < con.kappa[layer - 1] < 1.0


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(construction="ris"), r"construction='ris' is not one of"),
        (dict(construction="ris-split", variant="corrected"), r"variant='corrected' cannot"),
        (dict(kappa_scale=-1.0), r"kappa_scale=-1.0 must be >= 0"),
        (dict(family="rotation", d=5, D=500), r"d=5 must be 3 or 4 for family 'rotation'"),
        (dict(family="rotation", rot_bias=-1.0), r"rot_bias=-1.0 must be >= 0"),
    ],
    ids=["unknown", "corrected", "kappa", "rotation width", "rot bias"],
)
def test_bad_construction_parameters_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        build_network(**{"D": 400, "d": 4, "S": 5, "T": 50, "L": 2, **params})


def test_a_single_circuit_has_no_pairs_and_kappa_zero():
    """T = 1: p = c = 0, kappa = 0 and every construction builds."""
    for con in CONSTRUCTIONS:
        net = build_network(D=40, d=4, S=3, T=1, L=2, construction=con)
        assert np.all(net.construction.kappa == 0.0) and net.construction.c == 0.0


def test_write_correction_is_clamped_below_full_use_of_the_offsets():
    """T S < n: S(TS/n - 1)/(T - 1) < 0, which no expected overlap can be; c is 0 then."""
    net = build_network(D=4 * 30, d=4, S=3, T=5, L=2, construction="ris-split")
    assert net.construction.p == 0.0 and net.construction.c == 0.0 and net.read_c == 0.0
    more = build_network(D=4 * 30, d=4, S=3, T=40, L=2, construction="ris-split")
    assert more.construction.p > 0.0 and more.read_c == more.construction.c > 0.0


def _offset_major(A: np.ndarray, d: int, n: int) -> np.ndarray:
    """(b, D) block-major rows -> (D, b) offset-major columns (neuron (i, k) at row k*d + i)."""
    return np.ascontiguousarray(A.reshape(-1, d, n).transpose(2, 1, 0).reshape(n * d, -1))


@given(small_nets(), st.integers(0, 2**16))
def test_numba_layer_of_a_construction_equals_the_numpy_layer(params, seed):
    from kernel.engines import net_arrays

    net = build_network(**params)
    con, d, n = net.construction, net.d, net.n
    rec = net_arrays(net, "float64")
    A = np.maximum(np.random.default_rng(seed).standard_normal((3, net.D)), 0.0)
    for layer in range(2, net.L + 1):
        li = layer - 1
        An = np.zeros((net.D, 3))
        ref.apply_layer_cols(_offset_major(A, d, n), An, net.offsets[li - 1], net.offsets[li],
                             rec, li)
        want = ref.apply_layer(con, net.offsets, n, layer, A)
        np.testing.assert_allclose(An, _offset_major(want, d, n), rtol=1e-12, atol=1e-12)


@given(small_nets(), st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**16))
def test_compiled_decomposition_handles_every_construction(params, z, size, seed):
    """kernel.decompose (compiled) against the NumPy oracle with the literal W^l of each
    construction, and its total error against the dense engine."""
    net = build_network(**params)
    batch = sample_batch(net, size, min(z, net.T), seed=seed)
    dec = decompose(net, batch)
    want = decompose_numpy(net, batch)
    # the literal oracle sums in another order: compare at the size of the signal (a), since an
    # exact network (errors ~1e-17) leaves nothing else to scale by
    tol = 1e-10 * max(1.0, float(np.abs(dec.a).max()) ** 2)
    np.testing.assert_allclose(dec.active_total, want.active_total, rtol=1e-9, atol=tol)
    np.testing.assert_allclose(dec.inactive_sq, want.inactive_sq, rtol=1e-9, atol=tol)
    for k in dec.active_terms:
        np.testing.assert_allclose(dec.active_terms[k], want.active_terms[k], rtol=1e-9,
                                   atol=tol, err_msg=k)
        np.testing.assert_allclose(dec.inactive_terms_sq[k], want.inactive_terms_sq[k],
                                   rtol=1e-9, atol=tol, err_msg=k)
    res = forward(net, batch, engine="dense")
    np.testing.assert_allclose(dec.active_total, res.active_error, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dec.inactive_sq, res.inactive_sq, rtol=1e-10, atol=1e-10)


@given(small_nets(), st.integers(1, 3), st.integers(1, 9), st.integers(0, 2**16))
def test_every_engine_equals_the_dense_oracle_for_every_construction(params, z, batch, seed):
    """The numba engines (factorised, sparse, auto; single samples and chunks) run every
    construction as the dense oracle does, to float64 rounding: read-outs and inactive
    statistics; and they agree with each other bit for bit. The fraction of neurons on is
    compared with the oracle only for random weights under a negative bias: a pre-activation
    that is exactly at the threshold in exact arithmetic (a cancellation of the constructions'
    terms at bias 0; the rotation circuits' values 1.5, 0.5, 2, ... against their biases) comes
    out +-1e-17 after rounding in either engine and counts as on or off by that sign, which
    changes the read-outs by no more than the rounding itself."""
    net = build_network(**params)
    b = sample_batch(net, batch, min(z, net.T), seed=seed)
    ref = forward(net, b, engine="dense", readout="all")
    first = None
    for engine in ("factorised", "sparse", "auto"):
        res = forward(net, b, engine=engine, readout="all")
        np.testing.assert_allclose(res.readout, ref.readout, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(res.inactive_sq, ref.inactive_sq, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(res.inactive_max, ref.inactive_max, rtol=1e-9, atol=1e-9)
        if params["family"] != "rotation" and params["bias"] < 0:
            np.testing.assert_array_equal(res.frac_on, ref.frac_on)
        if first is None:
            first = res
        np.testing.assert_array_equal(res.readout, first.readout)
        np.testing.assert_array_equal(res.frac_on, first.frac_on)
