"""docs/construction.md: the prime-step design, capacity, per-layer shuffle, inverse index,
variants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kernel import patterns
from kernel.validate import ConfigError
from tests.reference import prime_step_design

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


@pytest.mark.parametrize(
    ("n", "S", "t_max"), [(250, 6, 557), (250, 5, 815), (500, 5, 3237), (1000, 6, 8243)]
)
def test_capacity_reproduces_the_authors_reference_values(n, S, t_max):
    assert patterns.capacity(n, S) == t_max
    assert t_max <= patterns.packing_bound(n, S)


@given(n=st.integers(3, 120), S=st.integers(2, 7))
def test_design_matches_the_reference_fill_order(n, S):
    assume(S <= n)
    ref = np.array(prime_step_design(n, S), dtype=np.int32).reshape(-1, S)
    assert patterns.capacity(n, S) == len(ref)
    got = patterns.prime_step_patterns(n, S, len(ref))
    np.testing.assert_array_equal(got, ref)


@given(n=st.integers(6, 90), S=st.integers(2, 7))
def test_any_two_patterns_share_at_most_one_offset(n, S):
    assume(S <= n)
    design = patterns.prime_step_patterns(n, S, patterns.capacity(n, S))
    onehot = np.zeros((len(design), n), dtype=np.int64)
    np.put_along_axis(onehot, design.astype(np.int64), 1, axis=1)
    overlap = onehot @ onehot.T
    np.fill_diagonal(overlap, 0)
    assert overlap.max(initial=0) <= 1
    assert (onehot.sum(axis=1) == S).all()  # S distinct offsets in [0, n)


def test_asking_beyond_capacity_names_t_max():
    with pytest.raises(ConfigError, match=r"T=900 exceeds .* n=250, S=6 \(T_max=557\)"):
        patterns.prime_step_patterns(250, 6, 900)


@pytest.mark.parametrize("T", [1, 557, 100_000])
def test_smallest_block_inverts_capacity(T):
    n = patterns.smallest_block(T, 6)
    assert patterns.capacity(n, 6) >= T
    assert n == 6 or patterns.capacity(n - 1, 6) < T


def test_layer_offsets_are_row_permutations_of_the_design():
    design = patterns.prime_step_patterns(100, 4, 290)
    offsets = patterns.layer_offsets(design, 3, np.random.default_rng(0))
    key = lambda a: sorted(map(tuple, a))  # noqa: E731
    for layer in offsets:
        assert key(layer) == key(design)
    assert not np.array_equal(offsets[0], offsets[1])  # independent shuffles


def test_inverse_index_lists_exactly_the_circuits_of_each_offset():
    rng = np.random.default_rng(1)
    design = patterns.random_patterns(40, 3, 50, rng)
    offsets = patterns.layer_offsets(design, 2, rng)
    indptr, inv = patterns.inverse_index(offsets, 40)
    for layer in range(2):
        for k in range(40):
            got = sorted(inv[layer, indptr[layer, k] : indptr[layer, k + 1]])
            want = sorted(np.nonzero((offsets[layer] == k).any(axis=1))[0])
            assert got == want


def test_random_variant_draws_distinct_offsets_and_can_overlap_more():
    design = patterns.random_patterns(30, 5, 400, np.random.default_rng(0))
    assert (np.diff(design, axis=1) > 0).all() and design.min() >= 0 and design.max() < 30
    onehot = np.zeros((400, 30), dtype=int)
    np.put_along_axis(onehot, design.astype(np.int64), 1, axis=1)
    overlap = onehot @ onehot.T
    np.fill_diagonal(overlap, 0)
    assert overlap.max() > 1  # what the <=1-overlap design buys


@pytest.mark.parametrize(("n", "S", "T"), [(250, 5, 815), (250, 5, 300), (120, 6, 100)])
def test_corrected_read_out_has_zero_mean_cross_talk(n, S, T):
    # c from the realised loads makes E_{u != t}[u_t . e_u] vanish exactly, whatever the loads
    design = patterns.prime_step_patterns(n, S, T)
    c = patterns.read_correction(S, patterns.realised_pair_overlap_mean(design, n))
    onehot = np.zeros((T, n))
    np.put_along_axis(onehot, design.astype(np.int64), 1.0, axis=1)
    u = (1 / S + c) * onehot - c
    cross = u @ onehot.T
    np.testing.assert_allclose(np.diag(cross), 1.0)
    off = cross[~np.eye(T, dtype=bool)]
    plain = (onehot @ onehot.T / S)[~np.eye(T, dtype=bool)]
    assert abs(off.mean()) < 1e-12
    assert plain.mean() > 0.01  # the plain read-out's mean cross-talk that the correction removes


def test_spec_overlap_formula_equals_the_realised_mean_at_uniform_load():
    # p = S(TS/n - 1)/(T - 1) assumes every offset carries TS/n circuits; the fill order's first T
    # patterns do not (loads 219..728 at T = 1e6): realised_pair_overlap_mean for the read-out.
    design = patterns.random_patterns(50, 5, 10, np.random.default_rng(0))
    design = np.concatenate([design, design])  # still non-uniform: check against brute force
    onehot = np.zeros((len(design), 50))
    np.put_along_axis(onehot, design.astype(np.int64), 1.0, axis=1)
    o = onehot @ onehot.T
    T = len(design)
    brute = (o.sum() - np.trace(o)) / (T * (T - 1))
    assert patterns.realised_pair_overlap_mean(design, 50) == pytest.approx(brute)
    uniform = np.array([[(i + j) % 10 for j in range(5)] for i in range(10)])  # load 5 each
    assert patterns.realised_pair_overlap_mean(uniform, 10) == pytest.approx(
        patterns.pair_overlap_mean(10, 5, 10)
    )


@given(n=st.integers(6, 60), S=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_pair_overlaps_equal_set_intersections(n, S, seed):
    # oracle: Python set intersection; prime-step (<= 1 overlap) and random designs (more)
    rng = np.random.default_rng(seed)
    S = min(S, n)
    T = min(patterns.capacity(n, S), 40)
    for design in (patterns.prime_step_patterns(n, S, T), patterns.random_patterns(n, S, T, rng)):
        sets = [set(r) for r in design.tolist()]
        want = np.array([[len(a & b) for b in sets] for a in sets])
        np.testing.assert_array_equal(patterns.pair_overlaps(design, n), want)
        inc = patterns.incidence(design, n)
        assert inc.shape == (T, n) and (inc.sum(axis=1) == S).all()
    repeated = np.array([[1, 1, 2]])  # a broken pattern: the repeat shows as a count of 2
    assert patterns.incidence(repeated, 4).tolist() == [[0, 2, 1, 0]]


@pytest.mark.parametrize("variant", ["plain", "corrected"])
def test_read_coefficient_is_what_one_read_out_sees_of_another_circuit(variant):
    # oracle: the dense U_t E_u of the network (kernel.network's explicit matrices)
    from kernel import build_network

    net = build_network(D=4 * 30, d=4, S=4, T=25, L=1, variant=variant)
    o = patterns.pair_overlaps(net.offsets[0], net.n)
    assert (net.read_c > 0) == (variant == "corrected")
    for t in range(0, net.T, 7):
        U = net.unembed_matrix(t, 1)
        for u in range(net.T):
            want = U @ net.embed_matrix(u, 1)
            kappa = patterns.read_coefficient(o[t, u], net.S, net.read_c)
            np.testing.assert_allclose(want, kappa * np.eye(net.d), atol=1e-12)


def test_read_correction_is_refused_when_every_circuit_uses_every_offset():
    # n = S: every random pattern is the whole block, p = S and c = p/((S - p) S) has no value
    from kernel import build_network, forward, sample_batch

    with pytest.raises(ConfigError, match=r"p=4 >= S=4: every circuit uses every offset"):
        patterns.read_correction(4, 4.0)
    # the follow-up's write-side correction needs c: its construction is refused (a ConfigError,
    # one line at the command line, not a ZeroDivisionError)
    with pytest.raises(ConfigError, match=r"\(n = S\)"):
        net = build_network(D=16, d=4, S=4, T=2, L=2, variant="random",
                            construction="ris-uncapped")
        forward(net, sample_batch(net, 1, 1))
    assert patterns.read_correction(4, 0.0) == 0.0


def test_cis2_runs_when_every_circuit_uses_every_offset():
    # cis2 has no write-side correction, so n = S (where the correction has no value) is fine
    from kernel import build_network, forward, sample_batch

    net = build_network(D=16, d=4, S=4, T=2, L=2, variant="random")
    assert net.construction.c == 0.0 and net.construction.p == 0.0
    res = forward(net, sample_batch(net, 3, 1))
    assert np.isfinite(res.active_readout).all()


def test_allowed_steps_equal_the_plain_loop_in_any_chunking():
    # issue 18: the plain loop took minutes for a block of 10^8 neurons; the vectorised steps
    # must be the same steps in the same order, for prime and composite S, in chunks of any size
    from kernel.patterns import allowed_steps
    from tests.reference import prime_steps

    for n in (2, 5, 6, 7, 10, 36, 37, 100, 250, 1000, 5003, 20000):
        for S in (2, 3, 4, 5, 6, 8, 9, 12):
            if n >= S:
                want = np.asarray(prime_steps(n, S), dtype=np.int64)
                for chunk in (1, 7, 1 << 22):
                    np.testing.assert_array_equal(allowed_steps(n, S, chunk=chunk), want)
