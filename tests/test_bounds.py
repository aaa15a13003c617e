"""bounds/: every formula against a slow, obviously correct reference; the rigorous bounds on
Hypothesis-generated networks (docs/error-terms.md)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from hypothesis import assume, given, note, settings, target
from hypothesis import strategies as st

from bounds import capacity, cavity, leading, refined, worst_case
from bounds.moments import circuit_moments, small_forward
from kernel import build_network, forward, make_circuits, sample_batch
from kernel.patterns import read_correction
from properties import strategies as cst
from tests.reference import prime_step_design
from tests.test_network import small_networks

# ----------------------------------------------------------------------------- references


def affine_plane_design(q: int) -> np.ndarray:
    """Lines of AG(2, q), q prime: n = q^2 points, S = q, T = q^2 + q, every point on q + 1
    lines (perfectly load balanced), two lines share <= 1 point."""
    lines = [[x * q + (m * x + b) % q for x in range(q)] for m in range(q) for b in range(q)]
    lines += [[c * q + y for y in range(q)] for c in range(q)]
    return np.sort(np.array(lines), axis=1)


def brute_overlaps(design: np.ndarray) -> np.ndarray:
    """o_tu for all ordered pairs t != u, by set intersection: the test oracle of the library's
    overlap computations (``kernel.patterns``), deliberately written another way."""
    sets = [set(r) for r in design.tolist()]
    return np.array([len(sets[t] & sets[u]) for t in range(len(sets)) for u in range(len(sets))
                     if t != u], dtype=float)


@pytest.mark.nojit
def test_overlap_moments_closed_form_equals_brute_force_on_a_balanced_design():
    design = affine_plane_design(7)
    n, S, T = 49, 7, 56
    o = brute_overlaps(design)
    assert o.max() == 1
    m1, m2 = refined.realised_overlap_moments(design, n)
    np.testing.assert_allclose(m1, (o / S).mean(), rtol=1e-12)
    np.testing.assert_allclose(m2, ((o / S) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(refined.overlap_mean(n, S, T), m1, rtol=1e-12)
    np.testing.assert_allclose(refined.overlap_second_moment(n, S, T), m2, rtol=1e-12)


@pytest.mark.nojit
@pytest.mark.parametrize(("n", "S", "T"), [(60, 5, 70), (100, 6, 120), (40, 3, 200)])
def test_realised_overlap_moments_equal_brute_force_on_the_prime_step_design(n, S, T):
    design = np.array(prime_step_design(n, S)[:T])
    o = brute_overlaps(design)
    m1, m2 = refined.realised_overlap_moments(design, n)
    np.testing.assert_allclose(m1, (o / S).mean(), rtol=1e-12)
    np.testing.assert_allclose(m2, ((o / S) ** 2).mean(), rtol=1e-12)


@pytest.mark.nojit
def test_corrected_coefficient_has_zero_mean_and_the_brute_force_square():
    design = np.array(prime_step_design(100, 6)[:150])
    o = brute_overlaps(design)
    S = 6
    p = o.mean()
    c = read_correction(S, p)
    kappa = (1 / S + c) * o - c * S  # U_t E_u = kappa I (docs/construction.md)
    m, m2 = refined.corrected_coefficient_moments(S, c, p)
    assert abs(kappa.mean()) < 1e-12 and abs(m) < 1e-12
    np.testing.assert_allclose(m2, (kappa**2).mean(), rtol=1e-10)


@pytest.mark.nojit
def test_leading_formulas_equal_their_layer_by_layer_statement():
    # docs/error-terms.md: L1 (z-1)(d/D)|a|^2; L2 2(z-1)(d/D)|a|^2 + zT(d/D)^2|wa|^2;
    # L3 3(..) + 2 zT(..)
    z, T, D, d, a2, wa2 = 3, 500, 2000, 4, 0.7, 0.4
    x = d / D
    by_layer = [0.0, (z - 1) * x * a2, 2 * (z - 1) * x * a2 + z * T * x * x * wa2,
                3 * (z - 1) * x * a2 + 2 * z * T * x * x * wa2]
    for layer, want in enumerate(by_layer):
        np.testing.assert_allclose(
            leading.active_mse(layer, z, T, D, d, [a2] * 4, [0.0] + [wa2] * 3), want, rtol=1e-12)
        np.testing.assert_allclose(leading.post_active_mse(layer, z, T, D, d, a2, wa2), want,
                                   rtol=1e-12)
    np.testing.assert_allclose(leading.inactive_mse(z, D, d, a2), z * x * a2)
    # the propagation term at l is the whole error of l-1 plus one fresh push
    np.testing.assert_allclose(
        leading.active_propagation(3, z, T, D, d, [a2] * 4, [0.0] + [wa2] * 3),
        by_layer[2] + z * T * x * x * wa2)


@pytest.mark.nojit
def test_circuit_moments_equal_explicit_loops():
    c = make_circuits("gaussian", 40, 3, 4, bias=-0.02, seed=3)
    mom = circuit_moments(c.weights, c.bias, c.inputs, pairs=20000, seed=1)
    h, a = small_forward(c.weights, c.bias, c.inputs)
    for layer in range(1, 4):
        h2 = np.mean([h[layer, t] @ h[layer, t] for t in range(40)])
        a2 = np.mean([a[layer, t] @ a[layer, t] for t in range(40)])
        np.testing.assert_allclose(mom.h2[layer], h2)
        np.testing.assert_allclose(mom.a2[layer], a2)
        # <|w_u a_v|^2> over all ordered pairs u != v (Monte Carlo: 20000 pairs, 5 sigma)
        vals = np.array([np.sum((c.weights[layer - 1, u] @ a[layer - 1, v]) ** 2)
                         for u in range(40) for v in range(40) if u != v])
        assert abs(mom.wa2[layer] - vals.mean()) < 5 * vals.std() / math.sqrt(20000)


def _all_pairs_layer1(h1: np.ndarray, beta: np.ndarray, S: int, z: int, p: float
                      ) -> tuple[float, float]:
    """Layer 1 of docs/error-terms.md by explicit loops over all pairs and triples of circuits."""
    T = h1.shape[0]
    relu = lambda x: np.maximum(x + beta, 0.0)  # noqa: E731
    delta = {(t, u): relu(h1[t] + h1[u]) - relu(h1[t])
             for t in range(T) for u in range(T) if t != u}
    pair = np.mean([delta[k] @ delta[k] for k in delta])
    triple = np.mean([delta[t, u] @ delta[t, v] for t in range(T) for u in range(T)
                      for v in range(T) if len({t, u, v}) == 3])
    act = (z - 1) * p / S**2 * pair + (z - 1) * (z - 2) * (p / S) ** 2 * triple
    r_pair = np.mean([relu(h1[u]) @ relu(h1[u]) for u in range(T)])
    r_cross = np.mean([relu(h1[u]) @ relu(h1[v]) for u in range(T) for v in range(T)])
    ina = z * p / S**2 * r_pair + z * (z - 1) * (p / S) ** 2 * r_cross
    return float(act), float(ina)


@pytest.mark.parametrize("family", ["signed", "gaussian"])
def test_layer1_exact_and_the_cavity_agree_with_an_all_pairs_reference(family):
    net = build_network(D=800, S=5, T=60, L=1, family=family, bias=-0.02, seed=4)
    h1 = small_forward(net.circuits.weights, net.circuits.bias, net.circuits.inputs)[0][1]
    m1, _ = refined.realised_overlap_moments(net.design, net.n)
    ref_act, ref_in = _all_pairs_layer1(h1, net.circuits.bias[0], 5, 3, m1 * 5)
    act, ina = refined.layer1_exact(h1, net.circuits.bias[0], 5, 3, m1 * 5, pairs=400000)
    assert act == pytest.approx(ref_act, rel=0.02)  # Monte Carlo over 4e5 pairs / triples
    # inactive: exact pair mean; the cross term's mean over u != v vs all (u, v): O(1/T)
    assert ina == pytest.approx(ref_in, rel=2 / 60)
    c = net.circuits
    pred = cavity.cavity_recursion(c.weights, c.bias, c.inputs, net.design, net.n, 3,
                                   samples=60000, seed=2)[1]
    # independent implementation (pattern loads + pools): 4 sigma of its Monte Carlo error plus
    # the relative O(z p / S) of the double overlaps (same neuron) that the reference drops
    slack = 3 * m1  # z p / S with p = S m1
    assert slack < 0.05
    for got, se, want in ((pred.active["mse"], pred.active_se, ref_act),
                          (pred.inactive["mse"], pred.inactive_se, ref_in)):
        assert abs(got - want) <= 4 * se + slack * want, (got, se, want)


@pytest.mark.nojit
def test_rectified_factor_equals_a_direct_gaussian_average():
    rng = np.random.default_rng(0)
    S = 6
    N = rng.standard_normal((400000, S))
    eps = np.maximum(N, 0).mean(axis=1)
    assert refined.rectified_factor(S) == pytest.approx((eps**2).mean(), rel=0.01)
    growth = refined.inactive_feedback_growth(18, 2, S)
    assert growth == pytest.approx(18 * 2 * (eps**2).mean(), rel=0.01)
    rec = refined.inactive_feedback_recursion([0.0, 0.002, 0.002], 18, 2.0, S)
    assert rec[2] == pytest.approx(refined.inactive_feedback_growth(18, 2.0, S) * 0.002 + 0.002)


@pytest.mark.nojit
def test_tail_estimate_matches_simulated_gaussian_maxima():
    rng = np.random.default_rng(1)
    d, count, mse = 4, 2000, 0.01
    maxima = [np.abs(rng.normal(0, math.sqrt(mse / d), (count, d))).max() for _ in range(200)]
    # the sqrt(2 ln N) form is the leading term; within 10% at N = 8000
    assert worst_case.tail_max_estimate(mse, d, count) == pytest.approx(np.mean(maxima), rel=0.1)


# ----------------------------------------------------------------------------- capacity


@pytest.mark.nojit
@pytest.mark.parametrize(("budget", "D", "d", "z", "L"),
                         [(0.05, 4000, 4, 2, 4), (0.2, 2000, 4, 3, 3), (0.01, 8000, 8, 2, 2)])
def test_inverse_problem_is_tight_against_the_forward_formula(budget, D, d, z, L):
    T = capacity.largest_T(budget, D, d, z, L)
    mse = leading.post_active_mse
    assert mse(L, z, T, D, d) <= budget < mse(L, z, T + 1, D, d)
    Dmin = capacity.smallest_D(budget, T, d, z, L)
    assert Dmin % d == 0
    assert leading.post_active_mse(L, z, T, Dmin, d) <= budget
    assert leading.post_active_mse(L, z, T, Dmin - d, d) > budget


@pytest.mark.nojit
def test_largest_T_scales_with_the_square_of_D():
    # docs/capacity.md, prediction 1: at a fixed budget, largest T grows ~ D^2 (overlap part small)
    t1 = capacity.largest_T(0.05, 20000, 4, 2, 4)
    t2 = capacity.largest_T(0.05, 40000, 4, 2, 4)
    assert t2 / t1 == pytest.approx(4.0, rel=0.02)


@pytest.mark.nojit
def test_capacity_helpers_reproduce_the_design_and_packing():
    assert capacity.t_max(250, 6) == 557 and capacity.t_max(1000, 6) == 8243
    assert capacity.packing_bound(250, 6) == 250 * 249 // 30
    assert capacity.t_max(250, 6) == len(prime_step_design(250, 6))
    assert capacity.tlogt_condition(3000, 4, 4000) == pytest.approx(3000 * math.log(3000) / 1e6)
    assert capacity.largest_T(1e-6, 1000, 4, 3, 4) == 0  # overlap alone exceeds the budget


# ----------------------------------------------------------------------------- rigorous bounds


@pytest.mark.nojit
@settings(max_examples=3 * settings.default.max_examples)
@given(params=small_networks, bias=st.sampled_from([0.0, -0.01, -0.1]), z=st.integers(1, 5),
       batch_seed=st.integers(0, 2**16))
def test_layer1_bound_is_never_violated(params, bias, z, batch_seed):
    net = build_network(**{**params, "L": 1}, bias=bias)
    z = min(z, net.T)
    batch = sample_batch(net, 4, z, seed=batch_seed)
    res = forward(net, batch, engine="factorised", readout="all")
    h1 = small_forward(net.circuits.weights, net.circuits.bias, net.circuits.inputs)[0][1]
    o_max = net.S if net.config.variant == "random" else 1
    err = res.readout[:, 1].copy()  # (B, T, d): inactive circuits' read-out is their error
    is_act = np.zeros((4, net.T), dtype=bool)
    is_act[np.arange(4)[:, None], batch.active] = True
    for b in range(4):
        for j, t in enumerate(batch.active[b]):
            err[b, t] = res.active_error[b, 1, j]
    # global bound: z_t (coefficient) max |h^1|
    max_h = np.abs(h1).max()
    for name, cls_mask, z_other in (("active", is_act, z - 1), ("inactive", ~is_act, z)):
        if not cls_mask.any():
            continue
        bound = worst_case.layer1_bound(z_other, max_h, net.S, net.read_c, o_max)
        worst = np.abs(err[cls_mask]).max()
        note(f"class z_other={z_other}: max |eps| {worst:.4g} <= bound {bound:.4g}")
        target(float(worst - bound), label=f"layer-1 bound slack used, {name}")
        assert worst <= bound * (1 + 1e-12) + 1e-15
    # the sharper per-sample, per-circuit bound with the realised overlaps
    e = np.zeros(net.n)
    for b in range(4):
        for t in range(net.T):
            e[:] = 0
            e[net.offsets[0, t]] = 1
            others = [u for u in batch.active[b] if u != t]
            if not others:
                assert np.abs(err[b, t]).max() <= 1e-15
                continue
            o = np.array([e[net.offsets[0, u]].sum() for u in others])
            bnd = worst_case.layer1_bound_pairs(h1[others], o, net.S, net.read_c)
            assert np.all(np.abs(err[b, t]) <= bnd * (1 + 1e-12) + 1e-15)


@pytest.mark.nojit
def test_layer1_bound_is_attained_by_the_prime_step_design():
    # a pinned near-tight case: permutation circuits (h >= 0, the ReLU never cuts), z = 2; the
    # inactive circuits' read-outs are their errors
    net = build_network(D=4 * 30, S=3, L=1, family="permutation", seed=1)
    h1 = small_forward(net.circuits.weights, net.circuits.bias, net.circuits.inputs)[0][1]
    batch = sample_batch(net, 400, 2, seed=0)
    res = forward(net, batch, engine="factorised", readout="all")
    inactive = np.ones((400, net.T), dtype=bool)
    inactive[np.arange(400)[:, None], batch.active] = False
    worst = np.abs(res.readout[:, 1][inactive]).max()
    bound = worst_case.layer1_bound(2, np.abs(h1).max(), net.S)
    assert worst <= bound
    assert worst >= 0.5 * bound  # not vacuous: two overlaps on one circuit happen


@pytest.mark.nojit
def test_worst_case_coefficients():
    assert worst_case.layer1_coefficient(5) == pytest.approx(0.2)
    assert worst_case.layer1_coefficient(5, c=0.01) == pytest.approx(max(0.05, 0.2 + 0.04))
    assert worst_case.inactive_overlap_bound(3, 0.9, 6) == pytest.approx(0.45)


@pytest.mark.nojit
def test_combinations_helper_is_consistent():
    # brute_overlaps sanity: every pair counted once per order
    design = affine_plane_design(3)
    assert brute_overlaps(design).size == len(design) * (len(design) - 1)
    assert all(len(set(a) & set(b)) <= 1 for a, b in combinations(design.tolist(), 2))


@settings(max_examples=settings.default.max_examples)
@given(cfg=cst.network_configs(families=("permutation", "signed", "gaussian"), variants=("plain",),
                               d=st.just(4), n=st.integers(40, 120), S=st.integers(5, 7),
                               L=st.just(3), T_min=2,
                               bias=st.sampled_from([-0.1, -0.15, -0.2, -0.3])),
       z=st.integers(1, 3))
def test_a2_conditional_bound_holds_whenever_its_regime_is_predicted(cfg, z):
    """docs/error-terms.md: (z/S) max |h^l| bounds an inactive circuit's error while A2 holds;
    the regime is decided from the prediction (no noise-only neuron switched on in the cavity
    Monte Carlo).

    Large S and a negative bias, so that A2 can hold while some signal survives (with these
    draws: ~half the layers in regime, a few with a nonzero error; outside the regime the bound
    is violated in ~45% of the layers, so the regime condition is not decorative)."""
    from bounds.predict import predict

    net = build_network(cfg)
    seed = cfg.seed
    z = min(z, net.T - 1)
    preds = predict(net, z, samples=3000, seed=seed)
    in_regime = [layer for layer in range(2, net.L + 1) if preds[layer]["inactive"].bound.in_regime]
    assume(in_regime)
    res = forward(net, sample_batch(net, 8, z, seed=seed), engine="factorised")
    used = 0.0
    for layer in in_regime:
        b = preds[layer]["inactive"].bound.value
        worst = float(res.inactive_max[:, layer].max())
        note(f"layer {layer}: max inactive |eps| {worst:.4g} <= bound {b:.4g}")
        used = max(used, worst / b if b > 0 else 0.0)
        assert worst <= b * (1 + 1e-12) + 1e-15
    target(used, label="fraction of the A2 bound used")


@pytest.mark.nojit
@pytest.mark.parametrize("family", ["signed", "gaussian"])
def test_on_weighting_equals_the_explicit_per_component_weighting(family):
    # reference: weight each component i of the noise h_u[i]^2 by t's on-indicator, pair by pair
    c = make_circuits(family, 60, 2, 4, seed=2)
    mom = circuit_moments(c.weights, c.bias, c.inputs, pairs=20000, seed=0)
    h, a = small_forward(c.weights, c.bias, c.inputs)
    explicit = np.mean([np.sum((a[1, t] > 0) * h[1, u] ** 2) for t in range(60) for u in range(60)
                        if t != u])
    assert mom.h2_on[1] == pytest.approx(explicit, rel=0.02)  # Monte Carlo over 20000 pairs
    # on_weighted assumes isotropic noise and on-sets independent of it: exact for signed (by
    # symmetry), ~1% for gaussian (measured 0.8%)
    assert refined.on_weighted(mom.h2[1], mom.frac_on[1]) == pytest.approx(explicit, rel=0.02)
