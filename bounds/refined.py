"""Finite-size and ReLU-aware refinements of the leading-order estimates (docs/error-terms.md).

- exact overlap moments of the design, ``E[o/S]``, ``E[(o/S)^2]`` (closed form for a
  load-balanced design, and from the realised design's loads);
- the ``plain`` variant's mean shift and the ``corrected`` variant's versions;
- on-weighting of active estimates by which of t's neurons are on;
- the exact layer-1 estimate (a Monte Carlo over pairs of small circuits: the ReLU of the shared
  neuron is kept, so eps_relu is included);
- the closed-form inactive-feedback recursion (a first sketch).

The full ReLU-aware recursion over depth is ``bounds.cavity``.
"""

from __future__ import annotations

import math

import numpy as np

from kernel.patterns import pair_overlap_mean, read_coefficient, realised_pair_overlap_mean


def overlap_mean(n: int, S: int, T: int) -> float:
    """E[o/S] over pairs t != u: (T S/n - 1)/(T - 1) ~ S d/D (see docs/error-terms.md).

    Assumes a load-balanced design (every offset carries T S/n circuits). Regime: T >= 2.

    >>> overlap_mean(1000, 6, 3000)
    0.005668556185395132
    """
    return pair_overlap_mean(n, S, T) / S


def overlap_second_moment(n: int, S: int, T: int) -> float:
    """E[(o/S)^2] = (T S/n - 1)/(S (T - 1)) ~ d/D - 1/(S T) (see docs/error-terms.md); o in {0, 1}.

    Assumes overlaps <= 1 (prime-step design) and load balance. Regime: T >= 2.

    >>> round(overlap_second_moment(1000, 6, 3000) * 1000, 4)
    0.9448
    """
    return overlap_mean(n, S, T) / S


def realised_overlap_moments(design: np.ndarray, n: int) -> tuple[float, float]:
    """(E[o/S], E[(o/S)^2]) of a realised <=1-overlap design, from its loads.

    E[o] over ordered pairs = sum_k l_k (l_k - 1) / (T (T - 1)), l_k the load of offset k; with
    o in {0, 1}, E[o^2] = E[o]. Regime: overlaps <= 1 (``plain``/``corrected``; the ``random``
    variant has E[o^2] > E[o]).
    """
    S = design.shape[1]
    p = realised_pair_overlap_mean(design, n)
    return p / S, p / S**2


def corrected_coefficient_moments(S: int, c: float, p: float) -> tuple[float, float]:
    """Mean and mean square of the corrected cross-talk coefficient kappa = (1/S + c) o - c S.

    ``U_t E_u = kappa_tu I`` with u_t = (1/S + c) e_t - c 1; o in {0, 1} with
    P(o = 1) = p. With c = p/((S - p) S) the mean is 0. c = 0 gives the plain (E[o/S], E[(o/S)^2]).

    >>> m, m2 = corrected_coefficient_moments(6, 0.0, 0.036)
    >>> round(m, 6), round(m2, 6)
    (0.006, 0.001)
    """
    k1 = float(read_coefficient(1, S, c))
    k0 = float(read_coefficient(0, S, c))
    return p * k1 + (1 - p) * k0, p * k1**2 + (1 - p) * k0**2


def overlap_term_active_refined(z: int, m1: float, m2: float, h2: float,
                                h_mean_sq: float) -> float:
    """E|eps_overlap|^2 of an active circuit with exact coefficient moments.

    ``(z-1) m2 <|h|^2> + (z-1)(z-2) m1^2 |<h>|^2``: the second term is the plain variant's mean
    shift (m1 = E[o/S] ~ S d/D); it vanishes for ``corrected`` (m1 = 0) and for z = 2.
    Assumes the coefficients of different others independent (A1) and A4 for the circuits.
    """
    return (z - 1) * m2 * h2 + (z - 1) * (z - 2) * m1**2 * h_mean_sq


def overlap_term_inactive_refined(z: int, m1: float, m2: float, h2: float,
                                  h_mean_sq: float) -> float:
    """E|eps_overlap|^2 of an inactive circuit (see docs/error-terms.md):
    ``z m2 <|h|^2> + z (z-1) m1^2 |<h>|^2``."""
    return z * m2 * h2 + z * (z - 1) * m1**2 * h_mean_sq


def plain_mean_shift(z: int, S: int, D: int, d: int, a2: float) -> float:
    """The mean-shift estimate ``(z-1)^2 S^2 (d/D)^2 |a|^2`` of the ``plain`` variant.

    The square of the mean cross-talk E[o/S] ~ S d/D summed over z-1 others with a common-sign
    signal. Regime: non-negative signals (|<h>|^2 ~ |h|^2); for zero-mean h (``signed``) the
    exact version ``overlap_term_active_refined`` gives ~0.
    """
    return (z - 1) ** 2 * S**2 * (d / D) ** 2 * a2


def on_weighted(estimate: float, frac_on: float) -> float:
    """On-weighting of an active estimate: noise passes only t's on neurons.

    Assumes the noise isotropic over t's d components and independent of which are on.
    Regime: layer 1 (deeper layers also compound the cut, see ``bounds.cavity``); tolerance 30%.
    Measured (D = 4000, T = 3000, z = 2, 30000 samples): on-weighted / measured = 1.17 (signed,
    beta 0), 1.20 (signed, -0.05), 1.24 (gaussian, 0), 1.22 (gaussian, -0.05), against 2.0-2.8
    without it; the remaining ~20% is eps_relu of the shared neuron (``layer1_exact`` keeps it).
    """
    return estimate * frac_on


def layer1_exact(h1: np.ndarray, beta: np.ndarray, S: int, z: int, p: float, *,
                 pairs: int = 40000, seed: int = 0) -> tuple[float, float]:
    """Layer-1 MSE (active, inactive) keeping the ReLU of the shared neuron (``plain`` read-out).

    With overlaps <= 1 a circuit t shares one neuron per block with each other active u with
    probability p (the realised pair mean), and the change of that neuron is
    ``Delta_tu = ReLU(h_t + h_u + b) - ReLU(h_t + b)`` (``ReLU(h_u + b)`` for an inactive t), so
    ``eps_t = sum_u (o_tu/S) Delta_tu`` and, with the overlaps of different others independent,

        active   = (z-1) (p/S^2) E|Delta_tu|^2 + (z-1)(z-2) (p/S)^2 E[Delta_tu . Delta_tv]
        inactive = z (p/S^2) E|ReLU(h_u+b)|^2 + z (z-1) (p/S)^2 |E ReLU(h_u+b)|^2

    The second terms are the plain variant's mean shift (the rectified changes do not average
    out). Exact up to two others meeting t at the *same* neuron (relative O(z p / S)); the pair
    and triple expectations by Monte Carlo over the small circuits (``pairs`` draws).
    h1 : (T, d) layer-1 pre-activations of all circuits. Regime: ``plain`` variant, overlaps <= 1,
    A3 (b <= 0).
    """
    rng = np.random.default_rng(seed)
    T = h1.shape[0]
    t = rng.integers(0, T, pairs)
    u = (t + rng.integers(1, max(T, 2), pairs)) % T
    v = (t + rng.integers(1, max(T, 2), pairs)) % T
    base = np.maximum(h1[t] + beta, 0.0)
    du = np.maximum(h1[t] + h1[u] + beta, 0.0) - base
    dv = np.maximum(h1[t] + h1[v] + beta, 0.0) - base
    ok = u != v
    cross = float((du * dv).sum(-1)[ok].mean()) if ok.any() else 0.0
    active = (z - 1) * p / S**2 * float((du**2).sum(-1).mean()) + (
        (z - 1) * (z - 2) * (p / S) ** 2 * cross)
    r = np.maximum(h1 + beta, 0.0)
    inactive = z * p / S**2 * float((r**2).sum(-1).mean()) + (
        z * (z - 1) * (p / S) ** 2 * float((r.mean(axis=0) ** 2).sum()))
    return active, inactive


def rectified_factor(S: int) -> float:
    """(1/(2S) + (1 - 1/S)/(2 pi)): E[eps^2] per unit sigma^2 of an average of S rectified
    Gaussians (see docs/error-terms.md); does not vanish as S grows.

    >>> round(rectified_factor(6), 4)
    0.2159
    """
    return 1.0 / (2 * S) + (1.0 - 1.0 / S) / (2 * math.pi)


def inactive_feedback_growth(c: float, g: float, S: int) -> float:
    """Growth factor per layer of the inactive MSE at beta = 0: ``c g (1/(2S) + (1-1/S)/(2pi))``.

    First sketch (docs/error-terms.md): a noise-only neuron sums c = T S/n pushed errors w_u eps_u
    (Gaussian, variance c g I/d per component) and passes ReLU(N). Regime: beta = 0, Gaussian
    noise (many contributions), layer 2 (g measured on the layer-1 error vectors). A factor > 1:
    noise compounds. Measured: ``signed`` D = 4000, T = 3000: 0.0174 predicted at layer 2 vs 0.0180
    measured; at layers 3-4 it overshoots (g falls once eps is rectified noise) - use
    ``bounds.cavity`` there.
    """
    return c * g * rectified_factor(S)


def inactive_feedback_recursion(fresh: list[float], c: float, g: float, S: int) -> list[float]:
    """I^l = growth * I^{l-1} + fresh[l] with I^0 = 0 (the sketch); fresh[l] is the
    layer's z (d/D) <|a^l|^2>-type overlap term. Returns I^0..I^L. Regime: as
    ``inactive_feedback_growth`` (reliable at layer 2 only)."""
    growth = inactive_feedback_growth(c, g, S)
    out = [0.0]
    for layer in range(1, len(fresh)):
        out.append(growth * out[-1] + fresh[layer])
    return out
