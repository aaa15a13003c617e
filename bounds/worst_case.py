"""Worst-case bounds and the log-T tail estimate (docs/error-terms.md, "Worst case").

Rigorous (no statistics involved): the layer-1 bound, for every variant. Conditional: the
per-layer overlap bound for inactive circuits, valid only while A2 holds. Estimate: the tail of the
maximum over circuits.
"""

from __future__ import annotations

import math

import numpy as np


def layer1_coefficient(S: int, c: float = 0.0, o_max: int = 1) -> float:
    """max over o in 0..o_max of ``o/S + c (S - o)``: the weight of one other active circuit in
    the layer-1 bound (extended here to the corrected read-out).

    Derivation: at layer 1, ``A_k = ReLU(sum_{u active, k in e_u} h_u + b)`` and, alone, circuit t
    would give A_k = ReLU(h_t + b) on its own neurons and ReLU(b) = 0 elsewhere (b <= 0, A3).
    ReLU is 1-Lipschitz, so each neuron moves by ``|Delta_k| <= sum_{u != t, k in e_u} |h_u|``.
    The read-out ``(1/S + c) sum_{k in e_t} A_k - c sum_{all k} A_k`` then moves by at most
    ``sum_{u != t} (o_tu/S + c (S - o_tu)) |h_u|``. o_max = 1 for the prime-step design,
    S for ``random``. Requires c >= 0 and b <= 0.

    >>> layer1_coefficient(6)
    0.16666666666666666
    >>> layer1_coefficient(6, o_max=6)
    1.0
    """
    return max(o / S + c * (S - o) for o in range(0, o_max + 1))


def layer1_bound(z_other: int, max_h: np.ndarray | float, S: int, c: float = 0.0,
                 o_max: int = 1) -> np.ndarray | float:
    """Rigorous bound on ``|eps_t^1[i]|``: ``z_t * layer1_coefficient(S, c, o_max) * max|h^1[i]|``.

    ``|eps_t^1[i]| <= (1/S) sum_{u active, u != t} o_tu |h_u^1[i]| <=
    (z_t/S) max_u |h_u^1[i]|`` for the plain read-out (c = 0, o <= 1). z_other = z_t: the number
    of *other* active circuits (z - 1 for an active t, z for an inactive t). max_h: max over the
    circuits that can be active of |h^1[i]| (per component or overall). Regime: always (A3: b <= 0;
    c >= 0); it is a bound, not an estimate.

    >>> layer1_bound(1, 1.0, 6)
    0.16666666666666666
    """
    return z_other * layer1_coefficient(S, c, o_max) * max_h


def layer1_bound_pairs(h_other: np.ndarray, overlaps: np.ndarray, S: int, c: float = 0.0
                       ) -> np.ndarray:
    """The sharper per-sample layer-1 bound with the realised overlaps (see docs/error-terms.md).

    h_other : (z_t, d) layer-1 pre-activations of the other active circuits; overlaps : (z_t,) the
    o_tu. Returns (d,) ``sum_u (o_tu/S + c (S - o_tu)) |h_u|``. Regime: always (b <= 0, c >= 0).
    """
    coef = overlaps / S + c * (S - overlaps)
    return (coef[:, None] * np.abs(h_other)).sum(axis=0)


def inactive_overlap_bound(z: int, max_h: float, S: int) -> float:
    """Per-layer bound ``(z/S) max |h^l|`` on an inactive circuit's error (see docs/error-terms.md).

    Conditional: holds while A2 holds, i.e. every large neuron that no active circuit uses stays
    off, and the neurons an inactive circuit shares with active ones carry only their signal.
    Regime: A2 (in ``cis check``: the predicted on-probability of a noise-only neuron is < 1e-6
    per neuron) and ``plain`` read-out, overlaps <= 1. Outside A2 the bound is violated by design
    (beta = 0: the inactive error grows ~9x from layer 1 to 2).
    """
    return z / S * max_h


def tail_max_estimate(mse: float, d: int, count: int) -> float:
    """Expected max abs component over ``count`` error vectors: ``sqrt(2 (mse/d) ln(count d))``.

    Over T circuits the max exceeds the root-mean-square by a sqrt(2 log T)
    factor ("the full capacity condition is that T log(T) d^2/D^2 be small"). Assumes i.i.d.
    Gaussian components of variance mse/d. Regime (``bounds.predict``): layers >= 2 with dense
    noise (>= 30% of noise-only neurons on, T S/n >= 10), A4, and circuits of equal signal norm
    (coefficient of variation of |a^l| <= 0.1, e.g. ``signed``). Tolerance: a factor 2.
    Measured (docs/bounds.md): ``signed`` max/estimate 1.0-1.5 in regime; outside it fails both
    ways: layer 1 (sparse, one overlap or none) 1.3-2.9, few circuits per neuron (T = 300 at
    D = 4000) 2.7-4.5, ``gaussian`` (unequal norms) 1.5-3.1, ``permutation`` (A4 fails, coherent
    noise) 0.25-0.35.

    >>> round(tail_max_estimate(0.004, 4, 1000), 4)
    0.1288
    """
    if mse <= 0 or count <= 0:
        return 0.0
    return math.sqrt(2.0 * (mse / d) * math.log(count * d))
