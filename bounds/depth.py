"""The depth law: how fast the inactive error grows per layer, in closed form (docs/cavity.md).

Deep in a network the error of the inactive circuits dominates: each layer rectifies it on the
neurons it shares and pushes it on through the circuits' weights. At the cavity recursion's fixed
point this is a one-dimensional map on the **pushed power** ``Y = E|w eps|^2`` of an inactive
circuit (the power its error adds to each of its neurons at the next layer), derived in
docs/cavity.md ("The depth law"):

    Y' = Y [ (1 + m) G(t) + (S - 1) q(t)^2 ] / S ,      t = |beta| / s ,  s^2 = (1 + m) Y / d ,

with ``m = k / S`` the mean number of other circuits on one of a circuit's neurons (``k`` its
sharers), ``G(t) = 2 [(1 + t^2) Phibar(t) - t phi(t)]`` and ``q(t) = 2 Phibar(t)`` (phi, Phibar:
the standard normal density and upper tail). At beta = 0, t = 0 and the factor is a constant,

    lambda_0 = 1 + k / S^2          (k ~ T S^2 d / D - S for balanced loads),

at beta < 0 it is smaller while the error is small against the bias and climbs back to lambda_0
as the error outgrows it. The inactive MSE at a layer is ``inactive_mse(Y)`` of the power pushed
into it.

Regime: the ``signed`` family (state (y+, y-), w = [[R, -R], [-R, R]] with R orthogonal, so the
pushed error is (R delta, -R delta) with delta = eps+ - eps- and |w eps|^2 = 2 |delta|^2), the
plain read-out, a shared scalar bias beta <= 0, overlaps <= 1, z << T (the sharers are inactive)
and many sharers (m >~ 5: the neuron input is close to Gaussian). The correlation between two
neurons of one circuit (its own pushed error, rho = 1 / (1 + m)) is kept to second order. Not the
first layers: the active circuits' fresh overlap noise is left out, so the law holds once the
inactive error has built up (from layer 3 at D = 2000, T = 1000; measured in
tests/test_depth.py).
"""

from __future__ import annotations

import math

import numpy as np

from kernel.patterns import offset_loads
from kernel.validate import ConfigError, integer, real

_SQRT2 = math.sqrt(2.0)


def _phi(t: float) -> float:
    return math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def _tail(t: float) -> float:
    """Phibar(t) = P(Z > t), Z standard normal."""
    return 0.5 * math.erfc(t / _SQRT2)


def sharers(design: np.ndarray, n: int) -> float:
    """k: the mean number of other circuits a circuit shares its S neurons with (realised loads:
    sum_k load_k (load_k - 1) / T). Balanced loads give T S^2 d / D - S."""
    loads = offset_loads(design, n).astype(np.float64)
    return float((loads * (loads - 1.0)).sum() / design.shape[0])


def balanced_sharers(T: int, S: int, d: int, D: int) -> float:
    """k of balanced loads: S (T S d / D - 1) = T S^2 d / D - S."""
    return T * S * S * d / D - S


def _checked(k: float, S: int, d: int, beta: float) -> tuple[float, int, int, float]:
    k = real("k", k, low=0.0)
    S = integer("S", S, low=2)
    d = integer("d", d, low=2)
    beta = real("beta", beta, high=0.0)
    return k, S, d, beta


def growth_factor(k: float, S: int, d: int, beta: float = 0.0, power: float = 1.0) -> float:
    """lambda = Y' / Y: the per-layer factor of an inactive circuit's pushed power Y = ``power``.

    ``k`` sharers per circuit (``sharers`` or ``balanced_sharers``), S neurons, width d, shared
    bias beta <= 0. At beta = 0 it does not depend on Y: 1 + k / S^2. Regime: module docstring.

    >>> round(growth_factor(69.826, 6, 4), 4)
    2.9396
    >>> growth_factor(69.826, 6, 4, beta=-0.1, power=1e-3) < 2
    True
    """
    k, S, d, beta = _checked(k, S, d, beta)
    power = real("power", power, low=0.0)
    m = k / S
    if beta == 0.0:
        return 1.0 + m / S
    if power == 0.0:
        return 0.0
    t = -beta / math.sqrt((1.0 + m) * power / d)
    tail = _tail(t)
    G = 2.0 * ((1.0 + t * t) * tail - t * _phi(t))
    return ((1.0 + m) * G + (S - 1) * (2.0 * tail) ** 2) / S


def inactive_mse(k: float, S: int, d: int, beta: float, power: float) -> float:
    """E|eps|^2 of an inactive circuit whose neurons receive pushed power Y = ``power`` per
    circuit: each of the d components is (1/S) sum_q ReLU(X_q + beta), X_q ~ N(0, s^2) with
    s^2 = (1 + m) Y / d, two neurons correlated by rho = 1 / (1 + m) (to second order in rho).
    Regime: module docstring.

    >>> round(inactive_mse(69.826, 6, 4, 0.0, 1.0), 4)
    2.9428
    """
    k, S, d, beta = _checked(k, S, d, beta)
    power = real("power", power, low=0.0)
    if power == 0.0:
        return 0.0
    m = k / S
    s2 = (1.0 + m) * power / d
    t = -beta / math.sqrt(s2)
    rho = 1.0 / (1.0 + m)
    tail, dens = _tail(t), _phi(t)
    second = (1.0 + t * t) * tail - t * dens  # E ReLU(Z - t)^2
    first = dens - t * tail  # E ReLU(Z - t)
    cross = first**2 + rho * tail**2 + rho**2 * dens**2 / 2.0
    return d * s2 * (second / S + (1.0 - 1.0 / S) * cross)


def power_of_mse(k: float, S: int, d: int, beta: float, mse: float) -> float:
    """The pushed power Y with ``inactive_mse(Y) = mse`` (it increases with Y; bisection on
    log Y)."""
    mse = real("mse", mse, low=0.0)
    if mse == 0.0:
        return 0.0
    lo, hi = 1e-300, 1.0
    while inactive_mse(k, S, d, beta, hi) < mse:
        lo, hi = hi, hi * 16.0
        if hi > 1e300:
            raise ConfigError(f"mse={mse} is beyond the law's range")
    for _ in range(200):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if inactive_mse(k, S, d, beta, mid) < mse:
            lo = mid
        else:
            hi = mid
        if hi <= lo * (1 + 1e-12):
            break
    return hi


def depth_law(k: float, S: int, d: int, beta: float, mse: float, layers: int) -> list[float]:
    """The inactive MSE at ``layers`` further layers from a given inactive MSE ``mse`` at one
    layer: its pushed power is found (``power_of_mse``) and carried by ``growth_factor``.
    Regime: module docstring (the source from the active circuits is left out).

    >>> tuple(round(x, 3) for x in depth_law(69.826, 6, 4, 0.0, 1.0, 2))
    (2.94, 8.641)
    """
    layers = integer("layers", layers, low=0)
    Y = power_of_mse(k, S, d, beta, mse)
    out = []
    for _ in range(layers):
        Y *= growth_factor(k, S, d, beta, Y)
        out.append(inactive_mse(k, S, d, beta, Y))
    return out


def capacity_exponent(x: float, L: int, S: int) -> float:
    """Local exponent d log T* / d log D of the capacity at depth L, beta = 0, where x = T* d / D.

    From the depth law: the layer-L active error is about (k/S^2) Y_L, the pushed power Y_L is
    fed by the active circuits' overlaps at a rate ~ z d / D per layer (independent of T) and
    multiplied by lambda_0 = 1 + k / S^2 per layer, with k / S^2 = x - 1/S. A fixed budget then
    asks f(x) = (x - 1/S) sum_{j=0}^{L-2} lambda_0^j ~ D / d, and
    alpha = 1 + 1 / (d log f / d log x). As x grows alpha falls to L / (L - 1): 2 at L = 2,
    4/3 at L = 4. Regime: that of ``growth_factor`` at beta = 0 (signed, plain read-out, many
    sharers); the first layers' own overlap error and the bias are left out (at beta < 0 the
    bias cuts the small early errors, so the exponents are larger there and reach this one only
    when the errors outgrow the bias). Compared with the cavity's local slopes in
    experiments/README.md (tests/test_depth.py).

    >>> round(capacity_exponent(1e6, 4, 6), 3)
    1.333
    """
    x = real("x", x, low=0.0)
    L = integer("L", L, low=2)
    S = integer("S", S, low=2)
    g = x - 1.0 / S
    if g <= 0:
        raise ConfigError(f"x={x} must exceed 1/S={1.0 / S:.4g} (no sharers otherwise)")
    lam = 1.0 + g
    total = sum(lam**j for j in range(L - 1))
    d_total = sum(j * lam ** (j - 1) for j in range(1, L - 1))
    slope = x / g + x * d_total / total
    return 1.0 + 1.0 / slope
