"""The post's leading-order mean-square estimates, term by term and layer by layer.

Derivation: docs/error-terms.md, "Leading-order estimates".

All functions are closed forms in the moments of the small circuits (``bounds.moments``).
Shared regime (the post): A1 (z << D/d), A2 (inactive circuits stay off: these formulas drop
the inactive noise that re-enters through W), A4, A5 (gamma = 1), and every neuron of an active
circuit on (so eps_relu ~ 0 and |h| = |a|; true for ``permutation``, not for ``signed`` or
``gaussian``, whose ReLUs cut about half). d/D stands for E[(o/S)^2] (finite-size version in
``bounds.refined``).

Measured (D = 4000, S = 6, T = 3000, z = 2, ``signed``, beta = 0, docs/bounds.md): layer 1 active
overlap term within the statistical error; the active *total* at layer 1 is ~2.3x too high
(ReLU cuts, fixed by on-weighting / ``bounds.cavity``); from layer 2 on the formulas miss the
inactive feedback and are off by factors 3-60 (too low).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: a per-layer moment indexed by layer (entry 0 unused): a list or a 1-d array
PerLayer = Sequence[float] | np.ndarray


def overlap_term_active(z: int, D: int, d: int, h2: float) -> float:
    """E|eps_overlap|^2 of an active circuit at one layer: (z-1) (d/D) <|h^l|^2>.

    Regime: A1, A4; the d/D is the leading order of E[(o/S)^2] (error ~ S^2 d/D relative, see
    ``bounds.refined.overlap_second_moment``).

    >>> overlap_term_active(2, 1000, 4, 1.0)
    0.004
    """
    return (z - 1) * (d / D) * h2


def overlap_term_inactive(z: int, D: int, d: int, h2: float) -> float:
    """E|eps_overlap|^2 of an inactive circuit at one layer: z (d/D) <|h^l|^2>.

    Regime: A1, A4 (the z active circuits each overlap it with probability ~ S^2 d/D).
    """
    return z * (d / D) * h2


def propagation_step(z: int, T: int, D: int, d: int, wa2: float) -> float:
    """One layer's fresh propagation error of an active circuit: z T (d/D)^2 <|w_u a_v|^2>.

    The read-out errors of the T inactive circuits (each ~ z (d/D) |a|^2, A2) are
    pushed through their weights and read back with weight E[(o/S)^2] ~ d/D. Regime: A1, A2, A4.
    """
    return z * T * (d / D) ** 2 * wa2


def active_mse(layer: int, z: int, T: int, D: int, d: int, h2: PerLayer,
               wa2: PerLayer) -> float:
    """Leading-order E|eps_t^l|^2 of an active circuit (see docs/error-terms.md).

    ``sum_{k=1..l} (z-1)(d/D) <|h^k|^2> + sum_{k=2..l} z T (d/D)^2 <|w_u^k a_v^{k-1}|^2>``;
    ``h2[k]``, ``wa2[k]`` indexed by layer (entry 0 unused). Regime: as the module (A1, A2, A4,
    A5 with gamma = 1, all active neurons on). Layer 0: 0.

    >>> active_mse(2, 2, 1000, 1000, 4, [0, 1.0, 1.0], [0, 1.0, 1.0])
    0.04
    """
    if layer <= 0:
        return 0.0
    fresh = sum(overlap_term_active(z, D, d, h2[k]) for k in range(1, layer + 1))
    prop = sum(propagation_step(z, T, D, d, wa2[k]) for k in range(2, layer + 1))
    return fresh + prop


def active_propagation(layer: int, z: int, T: int, D: int, d: int, h2: PerLayer,
                       wa2: PerLayer) -> float:
    """Leading-order E|eps_propagation|^2 of an active circuit at layer l (see docs/error-terms.md).

    With A5 (gamma = 1) the own error of layer l-1 is passed on unchanged, so the propagation term
    at layer l is the whole error of layer l-1 plus the fresh push: ``active_mse(l-1) +
    z T (d/D)^2 <|w a|^2>`` (0 at layer 1). Regime: as ``active_mse``.
    """
    if layer <= 1:
        return 0.0
    return active_mse(layer - 1, z, T, D, d, h2, wa2) + propagation_step(z, T, D, d, wa2[layer])


def inactive_mse(z: int, D: int, d: int, a2: float) -> float:
    """Leading-order E|eps_t^l|^2 of an inactive circuit: z (d/D) <|a^l|^2>.

    No accumulation with depth *if* A2 holds (negative bias margin; the noise pushed into an
    inactive circuit's neurons is cut by its ReLU). Regime: A1, A2, A4. Measured: exact to the
    finite-size factor at layer 1; at beta = 0 it misses the feedback from layer 2 on (factor ~9
    at layer 2 for ``signed``, D = 4000, T = 3000).

    >>> inactive_mse(2, 4000, 4, 1.0)
    0.002
    """
    return z * (d / D) * a2


def post_active_mse(layer: int, z: int, T: int, D: int, d: int, a2: float = 1.0,
                    wa2: float = 1.0) -> float:
    """The post's equal-magnitude form ``l (z-1)(d/D)|a|^2 + (l-1) z T (d/D)^2 |wa|^2``.

    Regime: as ``active_mse`` with every layer's moments equal.

    >>> round(post_active_mse(3, 2, 1000, 1000, 4, 1.0, 1.0), 6)
    0.076
    """
    if layer <= 0:
        return 0.0
    return layer * (z - 1) * (d / D) * a2 + (layer - 1) * z * T * (d / D) ** 2 * wa2
