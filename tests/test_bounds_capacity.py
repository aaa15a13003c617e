"""The capacity inverse problem (docs/capacity.md) against measurement.

The cavity inverse (``bounds.capacity.cavity_largest_T``) predicts the largest T whose layer-L
active MSE stays within a budget from the small circuits and the pattern design only; here the
large network is run (``kernel.measure.run``, same seed, so the same circuits and design) at that
T and at twice it. The post's closed-form inverse (``largest_T``) is run too: at beta = 0 it is
optimistic and its T exceeds the budget when measured.
"""

from __future__ import annotations

import pytest

from bounds.capacity import (
    cavity_active_mse,
    cavity_largest_T,
    cavity_smallest_D,
    inverse_problem,
    largest_T,
    smallest_D,
    t_max,
)
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
    # agrees with the prediction to 10% (measured 0.0249 [0.0241, 0.0258] at T* = 689;
    # 2 T* = 1378: 0.0703 [0.0682, 0.0724])
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


# ----------------------------------------------------------------------------- tiny inverses
# The defining properties of each inverse on a block small enough for the no-JIT run: the answer
# meets the budget and the next step (T + 1, or one block fewer) does not.
TINY = {"D": 160, "d": 4, "z": 2, "L": 2, "S": 3}  # n = 40, T_max = 98
TINY_SAMPLES = 400


def _tiny_mse(T: int, D: int = TINY["D"]) -> float:
    return cavity_active_mse(T, D, TINY["d"], TINY["z"], TINY["L"], TINY["S"],
                             samples=TINY_SAMPLES)[0]


@pytest.mark.nojit
def test_tiny_cavity_largest_T_meets_the_budget_and_T_plus_one_does_not():
    budget = 0.5 * (_tiny_mse(20) + _tiny_mse(60))  # a budget crossed inside (z, T_max)
    ans = cavity_largest_T(budget, **TINY, samples=TINY_SAMPLES)
    T_star = ans["largest_T"]
    assert ans["T_max"] == t_max(TINY["D"] // TINY["d"], TINY["S"])
    assert TINY["z"] <= T_star < ans["T_max"]
    assert ans["predicted_mse"] == _tiny_mse(T_star) <= budget
    assert _tiny_mse(T_star + 1) > budget
    assert (T_star, ans["predicted_mse"]) in ans["evaluated"]


@pytest.mark.nojit
def test_tiny_cavity_largest_T_at_the_ends_of_its_range():
    cap = t_max(TINY["D"] // TINY["d"], TINY["S"])
    assert cavity_largest_T(10.0, **TINY, samples=TINY_SAMPLES)["largest_T"] == cap
    assert cavity_largest_T(0.0, **TINY, samples=TINY_SAMPLES)["largest_T"] == 0


@pytest.mark.nojit
def test_tiny_cavity_smallest_D_meets_the_budget_and_one_block_fewer_does_not():
    T, d, S = 30, TINY["d"], TINY["S"]
    budget = _tiny_mse(T)  # met at D = 160 (n = 40) by construction
    kw = {k: TINY[k] for k in ("d", "z", "L", "S")}
    D_star = cavity_smallest_D(budget, T, samples=TINY_SAMPLES, **kw)
    n = D_star // d
    assert 0 < D_star <= TINY["D"] and D_star % d == 0
    assert t_max(n, S) >= T and _tiny_mse(T, D_star) <= budget
    assert t_max(n - 1, S) < T or _tiny_mse(T, D_star - d) > budget
    # a budget no block up to max_factor times the smallest one meets
    assert cavity_smallest_D(1e-12, T, samples=TINY_SAMPLES, max_factor=2, **kw) == 0


@pytest.mark.nojit
def test_post_inverses_invert_the_post_formula():
    from bounds.leading import post_active_mse

    budget, T, d, z, L = 0.05, 3000, 4, 2, 4
    D_star = smallest_D(budget, T, d, z, L)
    assert post_active_mse(L, z, T, D_star, d) <= budget < post_active_mse(L, z, T, D_star - d, d)
    T_star = largest_T(budget, 4000, d, z, L)
    assert post_active_mse(L, z, T_star, 4000, d) <= budget < post_active_mse(L, z, T_star + 1,
                                                                               4000, d)
    assert largest_T(1e-6, 4000, d, z, L) == 0  # the overlap term alone exceeds the budget


@pytest.mark.nojit
def test_tiny_inverse_problem_with_T_reports_both_smallest_D():
    kw = {"d": TINY["d"], "z": TINY["z"], "L": TINY["L"], "S": TINY["S"]}
    budget = _tiny_mse(30)
    out = inverse_problem(budget, TINY["D"], T=30, samples=TINY_SAMPLES, **kw)
    assert out["smallest_D"] == out["smallest_D_cavity"] == cavity_smallest_D(
        budget, 30, samples=TINY_SAMPLES, **kw)
    assert out["smallest_D_post"] == smallest_D(budget, 30, TINY["d"], TINY["z"], TINY["L"])
    post = inverse_problem(budget, TINY["D"], T=30, method="post", **kw)
    assert post["smallest_D"] == post["smallest_D_post"]


# ----------------------------------------------------------------------------- depth-2 bias
def _capacity_row(table: str, **where: float) -> dict[str, str]:
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "results" / table
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if all(float(r[k]) == v for k, v in where.items())]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.slow
@pytest.mark.parametrize("bias", [0.0, -0.1])
def test_cavity_at_the_measured_depth2_capacity_of_a_large_network(bias):
    """D = 16000, L = 2, budget 0.01 (experiments/capacity_l2.toml, seed 0): at the measured T*
    the cavity's layer-2 active MSE (2000 trajectories, as the sweep runs it) is inside the
    measured 95% interval (widened by 3 of the cavity's standard errors). Before a tagged
    circuit's ~620 sharers were distinct pool trajectories it predicted 2.0x the measurement
    (0.0198 against 0.0100 at beta = 0; its T* was 0.70 of the measured one)."""
    row = _capacity_row("capacity_l2.csv", D=16000, bias=bias, seed=0)
    T, a2 = int(row["T_star"]), float(row["a2_population"])
    mse, se = cavity_active_mse(T, 16000, 4, 2, 2, 6, bias=bias, samples=2000)
    lo, hi = float(row["ratio_lo"]) * a2, float(row["ratio_hi"]) * a2
    assert lo - 3 * se <= mse <= hi + 3 * se, (mse, se, lo, hi)


@pytest.mark.parametrize(("wiggle", "step", "flagged"), [(0.02, 1.0, False), (0.0, 0.7, True)])
def test_monotone_flag_compares_points_at_least_5_percent_apart(monkeypatch, wiggle, step,
                                                                flagged):
    # a prediction that rises with T, with +-2% noise between neighbouring T (not flagged: the
    # pools' scatter between T's closer than 5%) or a 30% drop past T = 600 (flagged)
    from bounds import capacity

    def fake(T, *args, **kwargs):
        return (T / 1000.0) * (1 + wiggle * (-1) ** T) * (step if T > 600 else 1.0), 1e-4

    monkeypatch.setattr(capacity, "cavity_active_mse", fake)
    out = capacity.cavity_largest_T(0.62, 2000, 4, 2, 3, 6)
    assert out["monotone"] is (not flagged), out["evaluated"]


def test_cavity_with_a_sample_of_circuits_matches_the_full_build():
    # the scaling runs draw 20000 circuits of the family instead of all T (experiments/
    # cavity_scaling.py): same statistics, so the prediction agrees within the pools' scatter
    full, se = cavity_active_mse(1000, 2000, 4, 2, 3, 6, samples=8000)
    sampled, _ = cavity_active_mse(1000, 2000, 4, 2, 3, 6, samples=8000, circuit_sample=300)
    assert sampled == pytest.approx(full, rel=0.08), (full, sampled, se)
    # a different T gives a different answer (the sample path is not a constant)
    assert cavity_active_mse(2000, 2000, 4, 2, 3, 6, samples=8000,
                             circuit_sample=300)[0] > 1.5 * sampled
