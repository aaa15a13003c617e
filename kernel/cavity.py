"""The compiled loops of the cavity recursion, as public entry points for ``bounds.cavity``.

``bounds.cavity`` draws every random number and keeps the pools; these two functions run the
per-trajectory loops (``kernel._jit_cavity``, where the argument contract is documented). No
validation: the caller builds every array itself. Both release the GIL, so ``bounds.cavity``
runs a chunk on a second thread while it draws the next one.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from kernel._jit_cavity import _cavity_chunk, _noise_activations

#: one chunk's draws: others, u, ia, ii, far (shapes in ``kernel._jit_cavity``)
Draws = namedtuple("Draws", ["others", "u", "ia", "ii", "far"])
#: the tagged circuits' and the pools' vectors (M, d)
Pools = namedtuple("Pools", ["tag_h", "tag_y", "truth", "h_act", "y_act", "y_in", "a_new",
                             "e_act"])
#: the layer's scalars and vectors: p_act, b, coef, read_c, z_other, rest, noise_mean, y_total
Params = namedtuple("Params", ["p_act", "b", "coef", "read_c", "z_other", "rest", "noise_mean",
                               "y_total"])
#: outputs (M, d): eps and its overlap and propagation parts
Errors = namedtuple("Errors", ["eps", "overlap", "propagation"])


#: cavity_chunk(lo, draws, pools, params, errors): form and read out the S neurons of tagged
#: trajectories lo .. lo + m - 1 (m = len(draws.u)); writes those rows of ``errors`` (M, d), the
#: total error and its overlap and propagation parts (fields: ``kernel._jit_cavity``)
cavity_chunk = _cavity_chunk


def noise_activations(ld: np.ndarray, ii: np.ndarray, y_in: np.ndarray, b: np.ndarray,
                      A: np.ndarray) -> None:
    """``A[r] = ReLU(sum_{j < ld[r]} y_in[ii[r, j]] + b)``: neurons no active circuit uses, each
    carrying the pushed errors of its ``ld[r]`` inactive circuits. ld (m,) int, ii (m, J) pool
    indices, y_in (M, d), b (d,); A (m, d) is written."""
    _noise_activations(ld, ii, y_in, b, A)
