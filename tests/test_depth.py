"""The depth law (``bounds.depth``, docs/cavity.md#the-depth-law) against the cavity recursion and
against the measured network: D = 2000, S = 6, T = 1000, z = 2, signed, plain read-out (the
configuration of experiment 2 in experiments/README.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bounds import depth
from bounds.cavity import cavity_recursion
from kernel import build_network
from kernel.measure import run

CFG = dict(D=2000, S=6, T=1000)


def test_growth_factor_at_beta0_is_one_plus_sharers_over_S_squared():
    assert depth.growth_factor(72.0, 6, 4) == pytest.approx(3.0)
    # independent of the error's size at beta = 0; below it at beta < 0, rising back with it
    lam = [depth.growth_factor(72.0, 6, 4, -0.1, Y) for Y in (1e-4, 1e-2, 1.0, 1e4)]
    assert lam == sorted(lam) and lam[0] < 1.5 and lam[-1] == pytest.approx(3.0, rel=1e-2)
    assert depth.balanced_sharers(1000, 6, 4, 2000) == pytest.approx(66.0)


def test_inactive_mse_at_beta0_by_hand_and_its_inverse():
    # beta = 0: d s^2 [1/(2S) + (1 - 1/S)(1/(2 pi) + rho/4 + rho^2/(4 pi))], s^2 = (1 + m) Y / d
    k, S, d, Y = 60.0, 6, 4, 0.3
    m = k / S
    rho = 1 / (1 + m)
    s2 = (1 + m) * Y / d
    want = d * s2 * (0.5 / S + (1 - 1 / S) * (1 / (2 * math.pi) + rho / 4
                                                + rho**2 / (4 * math.pi)))
    assert depth.inactive_mse(k, S, d, 0.0, Y) == pytest.approx(want, rel=1e-12)
    for beta in (0.0, -0.1):
        mse = depth.inactive_mse(k, S, d, beta, Y)
        assert depth.power_of_mse(k, S, d, beta, mse) == pytest.approx(Y, rel=1e-9)


def test_bad_arguments_name_the_parameter():
    from kernel.validate import ConfigError
    with pytest.raises(ConfigError, match="beta"):
        depth.growth_factor(60.0, 6, 4, beta=0.1)
    with pytest.raises(ConfigError, match="k="):
        depth.growth_factor(-1.0, 6, 4)


def test_law_against_the_cavity_at_beta0():
    # the cavity's per-layer factor of the inactive MSE from layer 5 on: within 4% of 1 + k/S^2
    net = build_network(**CFG, L=9, seed=0)
    c = net.circuits
    pred = cavity_recursion(c.weights, c.bias, c.inputs, net.design, net.n, 2, samples=8000,
                            seed=3)
    lam = depth.growth_factor(depth.sharers(net.design, net.n), 6, 4)
    ratios = [pred[i + 1].inactive["mse"] / pred[i].inactive["mse"] for i in range(4, 9)]
    np.testing.assert_allclose(np.array(ratios) / lam, 1.0, atol=0.04)


@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.0, -0.05, -0.1])
def test_law_against_measurement_at_layers_3_to_12(beta):
    """The one-layer growth of the measured inactive MSE (400 samples, seed 0) against the law's
    (from the measured MSE of the layer before). Measured agreement (ratios law / measured):
    beta = 0 and -0.05, into layers 5-12: 0.98-1.01; beta = -0.1 into layers 6-12: 0.95-0.99;
    the first layers are below (0.61-0.97 into layers 3-5: the active circuits' fresh noise,
    which the law leaves out, still counts there). At beta = 0 the measured factor is held
    against the constant 1 + k/S^2 = 2.94 directly."""
    net = build_network(**CFG, L=12, bias=beta, seed=0)
    res = run(network=net, z=2, batch=400)
    mse = np.array([res.layers[i].inactive.mse for i in range(1, 13)])
    k = depth.sharers(net.design, net.n)
    law = []
    for layer in range(2, 12):  # growth into layer + 1 (mse[layer - 1] is this layer)
        Y = depth.power_of_mse(k, 6, 4, beta, mse[layer - 1])
        Y_next = Y * depth.growth_factor(k, 6, 4, beta, Y)
        law.append(depth.inactive_mse(k, 6, 4, beta, Y_next) / mse[layer - 1])
    ratio = np.array(law) / (mse[2:] / mse[1:-1])  # index 0: growth into layer 3
    first = 2 if beta > -0.1 else 3  # into layer 5 (6 at beta = -0.1)
    lo = 0.96 if beta > -0.1 else 0.93
    assert np.all((ratio[first:] >= lo) & (ratio[first:] <= 1.04)), ratio
    assert np.all(ratio[:first] < 1.0), ratio  # the first layers: the law is below, as stated
    if beta == 0.0:
        lam = depth.growth_factor(k, 6, 4)
        np.testing.assert_allclose((mse[4:] / mse[3:-1]) / lam, 1.0, atol=0.03)


def test_capacity_exponent_against_the_cavity_continuation():
    """The depth law's local capacity exponent (beta = 0) against the cavity's T*(D) up to
    D = 1024000 (experiments/results/cavity_scaling.csv, from experiments/cavity_scaling.py):
    slopes over factor-8 windows from D = 16000 on, L = 4 and 6, within 0.06 (the cavity's own
    95% interval is about +-0.045 there; measured differences 0.005-0.045). At L = 2 and small D
    the law is low (1.97 against 2.09 over 2000-16000): the layer-1 overlap error it leaves out
    takes a D-dependent share of the budget there."""
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "results" / "cavity_scaling.csv"
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if float(r["bias"]) == 0.0]
    checked = 0
    for L in (4, 6):
        T = {int(r["D"]): int(r["T_star"]) for r in rows if int(r["L"]) == L}
        for D1 in sorted(T):
            D2 = 8 * D1
            if D1 < 16000 or D2 not in T:
                continue
            cavity = math.log(T[D2] / T[D1]) / math.log(8)
            x_mid = math.sqrt(T[D1] * 4 / D1 * T[D2] * 4 / D2)
            assert abs(depth.capacity_exponent(x_mid, L, 6) - cavity) <= 0.06, (L, D1, cavity)
            checked += 1
    assert checked >= 6
    assert depth.capacity_exponent(1e9, 2, 6) == pytest.approx(2.0, abs=1e-6)
    assert depth.capacity_exponent(1e9, 6, 6) == pytest.approx(1.2, abs=1e-6)
