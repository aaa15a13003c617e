"""Statistical checks (docs/error-terms.md): measured MSE against the predicted value, with a
derandomised batch and a confidence interval instead of a tolerance.

Layer-1 inactive estimate, in its regime. Leading order: E|eps_t^1|^2 ~ z (d/D) <|a^1|^2> for
inactive t, with the finite-size refinement "use the realised overlap moment". Regime where it is
exact to the order given here: shared bias b = 0 and non-negative layer-1 pre-activations
h_u^1 >= 0 for every circuit (e.g. the ``permutation`` family), so that the ReLU never cuts and
eps_t^1 = sum_{u active} G_tu h_u^1 with G_tu = u_t . e_u = (1/S + c) o_tu - c S (o_tu / S for
the plain read-out). Averaging over uniform active sets and inactive t:

    E[MSE_inactive^1] = z/(T(T-1)) sum_{t != u} G_tu^2 |h_u|^2                      (leading)
                      + z(z-1)/(T(T-1)(T-2)) sum_{t, u != v distinct} G_tu G_tv h_u.h_v  (cross)

The leading term is z <G^2 |h|^2> (= z <(o/S)^2> <|a^1|^2> when |a^1| is the same for all
circuits); the cross term is the next order, (z-1) S^2/n relative to it, and is NOT negligible
for small n, so the prediction carries it (computed from the realised design, not approximated).
"""

from __future__ import annotations

import numpy as np

from kernel.engines import Batch
from kernel.measure import inactive_per_sample
from kernel.network import Network
from kernel.patterns import read_coefficient
from properties.engines import Engine, resolve
from properties.result import ROUNDING, CheckResult, compare
from properties.sandwich import overlaps

#: half-width of the confidence interval in standard errors: two-sided normal p ~ 5.7e-7, so
#: thousands of examples per run raise a false alarm with probability ~ 1e-3
Z_CI = 5.0


def layer1_inactive_prediction(net: Network, z: int) -> dict[str, float]:
    """Leading and cross terms of E[MSE_inactive^1] (module docstring) from the realised design.

    Raises ValueError outside the regime (b != 0, some h_u^1 < 0, or no inactive circuit).
    """
    T = net.T
    if z >= T:
        raise ValueError(f"z={z} leaves no inactive circuit (T={T})")
    if np.any(net.circuits.bias[0] != 0):
        raise ValueError("layer-1 inactive estimate is exact only with zero bias")
    X = np.einsum("tij,tj->ti", net.circuits.weights[0], net.circuits.inputs)  # h_u^1
    if np.any(X < 0):
        raise ValueError("layer-1 inactive estimate needs h_u^1 >= 0 for every circuit")
    o = overlaps(net, 1).astype(np.float64)
    G = np.asarray(read_coefficient(o, net.S, net.read_c))
    np.fill_diagonal(G, 0.0)
    x2 = (X**2).sum(axis=1)
    s2 = float((G**2 * x2[None, :]).sum())
    lead = z * s2 / (T * (T - 1))
    cross = 0.0
    if z >= 2 and T >= 3:
        Y = G @ X  # (T, d): sum_{u != t} G_tu h_u
        cross = z * (z - 1) * (float((Y**2).sum()) - s2) / (T * (T - 1) * (T - 2))
    m2 = float((G**2).sum()) / (T * (T - 1))
    return {
        "lead": lead,
        "cross": cross,
        "prediction": lead + cross,
        "overlap_moment": m2,
        "max_h2": float(x2.max()),
        "spec_d_over_D": z * net.d / net.D * float(x2.mean()),
        "spec_realised": z * m2 * float(x2.mean()),
    }


def layer1_inactive_mse(
    net: Network, batch: Batch, engine: Engine | str | None = None
) -> CheckResult:
    """Measured mean inactive MSE at layer 1 (mean over samples of the per-sample mean over the
    T - z inactive circuits) within ``Z_CI`` standard errors of the prediction.

    The batch must draw active sets uniformly (``sample_batch``) with the circuits' own inputs.
    """
    pred = layer1_inactive_prediction(net, batch.z)
    res = resolve(engine)(net, batch)
    per = inactive_per_sample(res.inactive_sq[:, 1], net.T - batch.z)
    mean = float(per.mean())
    se = float(per.std(ddof=1)) / np.sqrt(per.size) if per.size > 1 else 0.0
    # rounding: read-outs carry ~1e-16 |h| of float64 error, so |eps|^2 ~ 1e-32 |h|^2 even where
    # the prediction is exactly 0 (no overlaps); allow ROUNDING * max |h_u^1|^2
    allow = Z_CI * se + ROUNDING * max(pred["prediction"], mean, pred["max_h2"])
    gap = abs(mean - pred["prediction"])
    out = compare(
        "layer1_inactive_mse",
        gap,
        allow,
        f"|measured {mean:.5g} - predicted {pred['prediction']:.5g}| vs {Z_CI:g} s.e.",
        scale=max(allow, 1e-300),
        measured=mean,
        se=se,
        samples=int(per.size),
        **pred,
    )
    return out


STATISTICAL = {"layer1_inactive_mse": layer1_inactive_mse}
