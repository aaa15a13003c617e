"""The capacity inverse problem (SPEC §4 capacity) against measurement.

The cavity inverse (``bounds.capacity.cavity_largest_T``) predicts the largest T whose layer-L
active MSE stays within a budget from the small circuits and the pattern design only; here the
large network is run (``kernel.measure.run``, same seed, so the same circuits and design) at that
T and at twice it. The post's closed-form inverse (``largest_T``) is run too: at beta = 0 it is
optimistic and its T exceeds the budget when measured.
"""

from __future__ import annotations

import pytest

from bounds.capacity import cavity_active_mse, cavity_largest_T, inverse_problem, largest_T, t_max
from kernel.measure import run

# signed, D = 2000 (n = 500, T_max = 2101), S = 6, z = 2, L = 3, beta = 0 (z S^2 d/D = 0.144)
CFG = {"D": 2000, "d": 4, "z": 2, "L": 3, "S": 6}
BUDGET = 0.025
BATCH = 2000


def _measure(T: int):
    res = run(D=CFG["D"], d=CFG["d"], S=CFG["S"], T=T, L=CFG["L"], z=CFG["z"], family="signed",
              bias=0.0, variant="plain", batch=BATCH, seed=0)
    return res.layers[CFG["L"]].active


@pytest.fixture(scope="module")
def cavity_answer():
    return cavity_largest_T(BUDGET, CFG["D"], CFG["d"], CFG["z"], CFG["L"], CFG["S"])


def test_cavity_prediction_is_monotone_in_T():
    """The bisection's assumption: the predicted layer-L active MSE grows with T."""
    ts = (100, 400, 800, 1200, 1600, 2101)
    preds = [cavity_active_mse(T, CFG["D"], CFG["d"], CFG["z"], CFG["L"], CFG["S"]) for T in ts]
    for (m0, s0), (m1, s1) in zip(preds, preds[1:]):
        assert m1 > m0 - 3 * max(s0, s1), preds


def test_cavity_largest_T_holds_against_measurement(cavity_answer):
    T_star = cavity_answer["largest_T"]
    cap = t_max(CFG["D"] // CFG["d"], CFG["S"])
    assert cavity_answer["monotone"] and cavity_answer["in_regime"]
    assert 0.1 * cap < T_star < 0.9 * cap  # well inside (0, T_max)
    # the bisection is tight: T* within budget, T* + 1 predicted over it
    assert cavity_answer["predicted_mse"] <= BUDGET
    over, _ = cavity_active_mse(T_star + 1, CFG["D"], CFG["d"], CFG["z"], CFG["L"], CFG["S"])
    assert over > BUDGET
    at = _measure(T_star)
    # at T*: the measurement is consistent with being within the budget (95% CI reaches it) and
    # agrees with the prediction to 10% (measured 0.0249 [0.0240, 0.0258] at T* = 698;
    # 2 T* = 1396: 0.0718 [0.0695, 0.0740])
    assert at.mse_ci[0] <= BUDGET, (T_star, at)
    assert at.mse == pytest.approx(cavity_answer["predicted_mse"], rel=0.1)
    # at 2 T*: clearly over the budget (whole 95% CI above it)
    T_big = min(2 * T_star, cap)
    big = _measure(T_big)
    assert big.mse_ci[0] > BUDGET, (T_big, big)


def test_post_inverse_is_optimistic_at_beta0(cavity_answer):
    """The post's closed form allows more circuits than the budget holds for (beta = 0)."""
    T_post = min(largest_T(BUDGET, CFG["D"], CFG["d"], CFG["z"], CFG["L"]),
                 t_max(CFG["D"] // CFG["d"], CFG["S"]))
    assert T_post > cavity_answer["largest_T"]
    post = _measure(T_post)
    assert post.mse_ci[0] > BUDGET, (T_post, post)  # T = 1187: 0.0557 [0.0539, 0.0575]


def test_inverse_problem_reports_both_methods():
    out = inverse_problem(BUDGET, CFG["D"], CFG["d"], CFG["z"], CFG["L"], S=CFG["S"],
                          samples=2000)
    assert out["largest_T"] == out["largest_T_cavity"]
    assert out["largest_T_post"] == largest_T(BUDGET, CFG["D"], CFG["d"], CFG["z"], CFG["L"])
    assert out["largest_T_cavity"] < out["largest_T_post"]
    assert inverse_problem(BUDGET, CFG["D"], CFG["d"], CFG["z"], CFG["L"], S=CFG["S"],
                           method="post")["largest_T"] == out["largest_T_post"]
