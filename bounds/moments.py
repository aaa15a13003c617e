"""The moments of the *small* circuits that the error formulas (docs/error-terms.md) take as input.

Everything here runs the T small circuits on their own (d x d weights, the ground truth)
or Monte Carlo pairs of them; nothing runs the large network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel.circuits import Circuits, run_small


@dataclass(frozen=True)
class CircuitMoments:
    """Per-layer moments over circuits (index = layer 0..L; layer 0 entries refer to the input).

    h2 : <|h^l|^2>, mean over circuits of the squared norm of the bias-free pre-activation.
    a2 : <|a^l|^2>, of the activation.
    wa2 : <|w_u^l a_v^{l-1}|^2> over pairs u != v (v active); 0 at layer 0.
    h_mean : (L+1, d) <h^l>, the mean pre-activation vector (for the plain mean shift).
    frac_on : fraction of components with a^l > 0 (for the on-weighting).
    h2_on : <sum_i [a_t^l[i] > 0] h_u^l[i]^2> over pairs t != u (noise weighted by t's on set).
    gain : <|w_u^l x|^2 / |x|^2> for x = a_v^{l-1} of another circuit v (the gain g
        of the inactive feedback).
    """

    h2: np.ndarray
    a2: np.ndarray
    wa2: np.ndarray
    h_mean: np.ndarray
    frac_on: np.ndarray
    h2_on: np.ndarray
    gain: np.ndarray


def small_forward(
    weights: np.ndarray, bias: np.ndarray, inputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Run every small circuit on its default input: h, a of shape (L+1, T, d).

    weights (L, T, d, d), bias (L, d), inputs (T, d); h[0] = 0, a[0] = inputs.
    """
    T = weights.shape[1]
    h, a = run_small(
        Circuits(weights, bias, inputs, "moments"), np.arange(T)[None, :], inputs[None]
    )
    return h[0], a[0]


def circuit_moments(
    weights: np.ndarray, bias: np.ndarray, inputs: np.ndarray, *, pairs: int = 20000, seed: int = 0
) -> CircuitMoments:
    """Moments the error formulas need, from the small circuits (pairs by Monte Carlo).

    Parameters
    ----------
    weights : np.ndarray
        (L, T, d, d) small-circuit weights.
    bias : np.ndarray
        (L, d) shared biases.
    inputs : np.ndarray
        (T, d) default inputs.
    pairs : int
        Number of random ordered pairs u != v for the pair moments.
    seed : int
        Seed of the pair draw.

    Notes
    -----
    Regime: the active circuits of a sample are drawn uniformly and fed their default inputs
    (``kernel.sample_batch``), so means over all T circuits are the expectations the formulas need.
    """
    L, T, d, _ = weights.shape
    h, a = small_forward(weights, bias, inputs)
    rng = np.random.default_rng(seed)
    u = rng.integers(0, T, pairs)
    v = (u + rng.integers(1, max(T, 2), pairs)) % T if T > 1 else u
    wa2 = np.zeros(L + 1)
    gain = np.zeros(L + 1)
    h2_on = np.zeros(L + 1)
    for layer in range(1, L + 1):
        x = a[layer - 1, v]
        y = np.einsum("pij,pj->pi", weights[layer - 1, u], x)
        wa2[layer] = float((y**2).sum(-1).mean())
        nx = (x**2).sum(-1)
        ok = nx > 0
        gain[layer] = float(((y**2).sum(-1)[ok] / nx[ok]).mean()) if ok.any() else 0.0
        h2_on[layer] = float(((a[layer, u] > 0) * h[layer, v] ** 2).sum(-1).mean())
    return CircuitMoments(
        h2=(h**2).sum(-1).mean(-1),
        a2=(a**2).sum(-1).mean(-1),
        wa2=wa2,
        h_mean=h.mean(axis=1),
        frac_on=(a > 0).mean(axis=(1, 2)),
        h2_on=h2_on,
        gain=gain,
    )
