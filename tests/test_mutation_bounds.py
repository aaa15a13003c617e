"""Tests added after a mutation-testing run over ``bounds/`` (docs/testing.md): each pins a
formula, a boundary or a pass-through that a surviving mutant changed without any test failing.

Expected values come from hand computation, from the documented formula written out here, or from
an independent route (a brute-force scan, the forward formula of ``bounds.leading``), never from
the function's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bounds import capacity, worst_case
from bounds.cavity import cavity_recursion
from bounds.leading import post_active_mse
from kernel.network import build_network
from kernel.validate import ConfigError

pytestmark = pytest.mark.nojit  # closed forms and tiny cavity runs: also run without the JIT

# ----------------------------------------------------------------------------- worst case


def test_layer1_bound_pairs_by_hand():
    # coef_u = o_u/S + c (S - o_u): S = 4, c = 0.1, o = (1, 0) -> (0.25 + 0.3, 0 + 0.4)
    h_other = np.array([[1.0, -2.0], [3.0, 0.5]])
    overlaps = np.array([1.0, 0.0])
    got = worst_case.layer1_bound_pairs(h_other, overlaps, 4, 0.1)
    np.testing.assert_allclose(got, [0.55 * 1 + 0.4 * 3, 0.55 * 2 + 0.4 * 0.5])
    # plain read-out (c = 0 by default): only the overlapping circuit counts, with weight 1/S
    np.testing.assert_allclose(worst_case.layer1_bound_pairs(h_other, overlaps, 4), [0.25, 0.5])


def test_tail_max_estimate_edges():
    assert worst_case.tail_max_estimate(0.5, 4, 0) == 0.0  # no vectors: no maximum
    assert worst_case.tail_max_estimate(0.0, 4, 10) == 0.0
    # one vector of d = 4 components of variance 0.5/4: sqrt(2 * 0.125 * ln 4)
    assert worst_case.tail_max_estimate(0.5, 4, 1) == pytest.approx(math.sqrt(0.25 * math.log(4)))


# ----------------------------------------------------------------------------- post's inverse


@pytest.mark.parametrize(("a2", "wa2"), [(2.0, 0.5), (0.5, 3.0)])
def test_post_inverses_with_unequal_moments_invert_the_forward_formula(a2, wa2):
    budget, d, z, L = 0.08, 4, 2, 3
    T_star = capacity.largest_T(budget, 4000, d, z, L, a2, wa2)
    assert T_star > 0
    assert post_active_mse(L, z, T_star, 4000, d, a2, wa2) <= budget
    assert post_active_mse(L, z, T_star + 1, 4000, d, a2, wa2) > budget
    D_star = capacity.smallest_D(budget, 3000, d, z, L, a2, wa2)
    assert D_star % d == 0
    assert post_active_mse(L, z, 3000, D_star, d, a2, wa2) <= budget
    assert post_active_mse(L, z, 3000, D_star - d, d, a2, wa2) > budget


def test_largest_T_without_propagation_is_the_packing_bound_at_S_2():
    # n = 1000/4 = 250 neurons per block: at most n (n-1)/2 = 31125 pairs with overlap <= 1
    assert capacity.largest_T(0.1, 1000, 4, 2, 1) == 31125  # L = 1
    assert capacity.largest_T(0.1, 1000, 4, 2, 3, wa2=0.0) == 31125  # no propagation term


@pytest.mark.parametrize(("T", "z", "L", "a2", "wa2"), [
    (100, 2, 1, 0.5, 1.0),  # L = 1: only the overlap term, x = budget / (L (z-1) a2)
    (1, 1, 2, 1.0, 0.5),  # z = 1: only the propagation term, with a coefficient below 1
])
def test_smallest_D_with_one_term_inverts_the_forward_formula(T, z, L, a2, wa2):
    budget, d = 0.01, 4
    D_star = capacity.smallest_D(budget, T, d, z, L, a2, wa2)
    assert post_active_mse(L, z, T, D_star, d, a2, wa2) <= budget
    assert post_active_mse(L, z, T, D_star - d, d, a2, wa2) > budget


def test_smallest_D_edges():
    # one circuit active and one layer: no error term at all, the smallest D is one block of d
    assert capacity.smallest_D(0.01, 100, 4, 1, 1) == 4
    with pytest.raises(ConfigError, match=r"^budget=0.0 must be > 0"):
        capacity.smallest_D(0.0, 100, 4, 2, 3)


def test_tlogt_condition_of_one_circuit_is_zero():
    assert capacity.tlogt_condition(1, 4, 4000) == 0.0  # log 1 = 0
    assert capacity.tlogt_condition(2, 4, 400) == pytest.approx(2 * math.log(2) * 16 / 400**2)


# ----------------------------------------------------------------------------- cavity inverse

# a non-default configuration in every argument, so that a dropped pass-through changes the answer
TINY = {"D": 160, "d": 2, "z": 2, "L": 3, "S": 3}
OTHER = {"bias": -0.05, "family": "gaussian", "variant": "corrected", "seed": 3}
SAMPLES = 300


def _direct_mse(T: int, D: int = TINY["D"], cavity_seed: int = 5) -> float:
    """The layer-L cavity prediction composed by hand: the network ``cis run`` would build, then
    the recursion on its small circuits and design."""
    net = build_network(D=D, d=TINY["d"], S=TINY["S"], T=T, L=TINY["L"], **OTHER)
    c = net.circuits
    pred = cavity_recursion(c.weights, c.bias, c.inputs, net.design, net.n, TINY["z"],
                            read_c=net.read_c, samples=SAMPLES, seed=cavity_seed)
    return pred[TINY["L"]].active["mse"]


def test_cavity_active_mse_passes_every_setting_through():
    got, se = capacity.cavity_active_mse(30, TINY["D"], TINY["d"], TINY["z"], TINY["L"],
                                         TINY["S"], samples=SAMPLES, cavity_seed=5, **OTHER)
    assert got == _direct_mse(30)
    assert se > 0


def test_cavity_largest_T_passes_every_setting_through():
    budget = 0.5 * (_direct_mse(20) + _direct_mse(50))
    ans = capacity.cavity_largest_T(budget, **TINY, samples=SAMPLES, cavity_seed=5, **OTHER)
    T_star = ans["largest_T"]
    assert ans["predicted_mse"] == _direct_mse(T_star) <= budget
    assert _direct_mse(T_star + 1) > budget
    # the regime number is z S^2 d / D, written out: 2 * 9 * 2 / 160
    assert ans["zS2d_over_D"] == pytest.approx(36 / 160) and ans["in_regime"]


def test_cavity_smallest_D_passes_every_setting_through():
    T = 30
    budget = _direct_mse(T)  # met at D = 160 by construction
    kw = {k: TINY[k] for k in ("d", "z", "L", "S")}
    D_star = capacity.cavity_smallest_D(budget, T, samples=SAMPLES, cavity_seed=5, **kw, **OTHER)
    assert 0 < D_star <= TINY["D"]
    assert _direct_mse(T, D_star) <= budget
    n = D_star // TINY["d"]
    assert capacity.t_max(n - 1, TINY["S"]) < T or _direct_mse(T, D_star - TINY["d"]) > budget


def test_cavity_regime_flag_at_its_edge():
    # z S^2 d / D = 2 * 9 * 4 / 60 = 1.2 exactly: still in regime (<= 1.2); D = 56 is not
    edge = capacity.cavity_largest_T(10.0, 60, 4, 2, 1, 3, samples=50)
    assert edge["zS2d_over_D"] == pytest.approx(1.2) and edge["in_regime"]
    assert not capacity.cavity_largest_T(10.0, 56, 4, 2, 1, 3, samples=50)["in_regime"]


def test_cavity_largest_T_allows_z_equal_to_T_max():
    cap = capacity.t_max(10, 3)  # D = 20, d = 2: n = 10
    ans = capacity.cavity_largest_T(10.0, 20, 2, cap, 1, 3, samples=50)
    assert ans["largest_T"] == ans["T_max"] == cap
    with pytest.raises(ConfigError, match=r"^z=.* exceeds T_max"):
        capacity.cavity_largest_T(10.0, 20, 2, cap + 1, 1, 3, samples=50)


def test_cavity_inverses_refuse_random_overlaps():
    with pytest.raises(ConfigError, match="variant plain or corrected"):
        capacity.cavity_largest_T(0.1, 160, 4, 2, 2, 3, variant="random")
    with pytest.raises(ConfigError, match="variant plain or corrected"):
        capacity.cavity_smallest_D(0.1, 30, 4, 2, 2, 3, variant="random")


# ----------------------------------------------------------------------------- inverse_problem


def test_inverse_problem_post_passes_the_moments_through():
    out = capacity.inverse_problem(0.08, 4000, 4, 2, 3, T=3000, a2=2.0, wa2=0.5, method="post")
    assert out["largest_T"] == out["largest_T_post"] == out["largest_T_budget_post"]
    assert out["largest_T"] == capacity.largest_T(0.08, 4000, 4, 2, 3, 2.0, 0.5)
    assert out["smallest_D_post"] == capacity.smallest_D(0.08, 3000, 4, 2, 3, 2.0, 0.5)
    assert out["T"] == 3000 and "S" not in out and out["method"].startswith("post")
    assert out["tlogt_condition"] == capacity.tlogt_condition(out["largest_T"], 4, 4000)


def test_inverse_problem_caps_the_post_answer_by_T_max_when_S_is_given():
    out = capacity.inverse_problem(10.0, 160, 4, 2, 2, S=3, method="post")
    n = 40
    assert out["S"] == 3 and out["T_max"] == capacity.t_max(n, 3)
    assert out["packing_bound"] == n * (n - 1) // 6
    assert out["largest_T_post"] == out["T_max"] < out["largest_T_budget_post"]


def test_inverse_problem_cavity_defaults_to_S_6_and_passes_settings_through():
    out = capacity.inverse_problem(0.02, 240, 4, 2, 2, samples=SAMPLES, bias=-0.05,
                                   family="gaussian", variant="corrected", seed=3)
    assert out["S"] == 6 and out["T_max"] == capacity.t_max(60, 6)
    cav = capacity.cavity_largest_T(0.02, 240, 4, 2, 2, 6, samples=SAMPLES, bias=-0.05,
                                    family="gaussian", variant="corrected", seed=3)
    assert out["largest_T"] == out["largest_T_cavity"] == cav["largest_T"]
    assert out["predicted_mse_at_largest_T"] == cav["predicted_mse"]
    assert (out["bias"], out["family"], out["variant"]) == (-0.05, "gaussian", "corrected")


def test_layer1_bound_by_hand():
    # z_t * max_o (o/S + c (S - o)) * max|h|: plain read-out, S = 6, two others, max|h| = 3
    assert worst_case.layer1_bound(2, 3.0, 6) == pytest.approx(2 * (1 / 6) * 3)
    # corrected read-out, c = 0.05: o = 1 gives 1/6 + 0.25 > o = 0 gives 0.3
    assert worst_case.layer1_bound(1, 2.0, 6, 0.05) == pytest.approx((1 / 6 + 0.25) * 2)
    # a large c: the o = 0 term c S = 2 beats o = 1, 1/4 + 0.5 * 3 = 1.75
    assert worst_case.layer1_coefficient(4, c=0.5) == pytest.approx(2.0)


# every public inverse names its bad parameter (a dropped or renamed check fails here)
_INVERSE_ARGS = {
    "largest_T": (capacity.largest_T, {"budget": 0.05, "D": 4000, "d": 4, "z": 2, "L": 4}),
    "smallest_D": (capacity.smallest_D, {"budget": 0.05, "T": 3000, "d": 4, "z": 2, "L": 4}),
    "cavity_largest_T": (capacity.cavity_largest_T,
                         {"budget": 0.05, "D": 160, "d": 4, "z": 2, "L": 2, "S": 3}),
    "cavity_smallest_D": (capacity.cavity_smallest_D,
                          {"budget": 0.05, "T": 30, "d": 4, "z": 2, "L": 2, "S": 3}),
}


@pytest.mark.parametrize(("func", "param"), [(f, p) for f, (_, kw) in _INVERSE_ARGS.items()
                                             for p in kw])
def test_capacity_inverses_name_a_bad_parameter(func, param):
    call, kw = _INVERSE_ARGS[func]
    bad, rule = (-1.0, ">= 0.0") if param == "budget" else (0, ">= 1")
    with pytest.raises(ConfigError, match=rf"^{param}={bad} must be {rule}$"):
        call(**{**kw, param: bad}, **({"samples": 50} if func.startswith("cavity") else {}))


def test_cavity_of_a_single_circuit_predicts_no_error_and_keys_layer_zero():
    # one circuit alone in the large network is computed exactly: no error at any layer (up to
    # float rounding)
    net = build_network(D=40, d=4, S=3, T=1, L=3, seed=0)
    c = net.circuits
    pred = cavity_recursion(c.weights, c.bias, c.inputs, net.design, net.n, 1, samples=200)
    assert [p.active["mse"] for p in pred] == pytest.approx([0.0] * 4, abs=1e-20)
    assert pred[0].inactive["mse"] == 0.0  # layer 0 (the input) has the same keys as the rest


def test_cavity_uses_each_layers_own_bias():
    # a bias that differs per layer: the compiled recursion must still agree with the NumPy oracle
    from tests.reference import cavity_recursion_numpy

    net = build_network(D=120, d=4, S=3, T=30, L=3, bias=-0.02, seed=4)
    c = net.circuits
    bias = c.bias + np.array([0.0, -0.1, -0.3])[:, None]
    kw = dict(read_c=net.read_c, samples=300, seed=1)
    got = cavity_recursion(c.weights, bias, c.inputs, net.design, net.n, 2, **kw)
    want = cavity_recursion_numpy(c.weights, bias, c.inputs, net.design, net.n, 2, **kw)
    for p, q in zip(got, want, strict=True):
        assert p.active["mse"] == pytest.approx(q.active["mse"], rel=1e-12, abs=1e-15)
        assert p.inactive["mse"] == pytest.approx(q.inactive["mse"], rel=1e-12, abs=1e-15)


def test_cavity_smallest_D_when_the_smallest_block_already_meets_the_budget():
    from kernel.patterns import smallest_block

    assert capacity.cavity_smallest_D(10.0, 30, 4, 2, 2, 3, samples=50) == 4 * smallest_block(30, 3)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: capacity.inverse_problem(0.05, 4000, 4, 2, 4, method="exact"), r"^method='exact'"),
    (lambda: capacity.inverse_problem(0.05, 4001, 4, 2, 4, S=6, method="post"),
     r"^D=4001 must be divisible by d=4"),
    (lambda: capacity.cavity_largest_T(0.05, 161, 4, 2, 2, 3), r"^D=161 must be divisible by d=4"),
])
def test_inverse_problem_names_a_bad_method_or_D(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_inverse_problem_with_no_room_has_a_zero_tlogt_condition():
    out = capacity.inverse_problem(1e-6, 4000, 4, 2, 4, method="post")
    assert out["largest_T"] == 0 and out["tlogt_condition"] == 0.0


def test_inverse_problem_passes_every_setting_to_the_cavity_smallest_D():
    kw = dict(bias=-0.05, family="gaussian", variant="corrected", seed=3, samples=SAMPLES)
    out = capacity.inverse_problem(0.02, 240, 4, 2, 2, S=3, T=30, **kw)
    assert out["smallest_D_cavity"] == capacity.cavity_smallest_D(0.02, 30, 4, 2, 2, 3, **kw)
