"""The compiled loops of the cavity recursion, as public entry points for ``bounds.cavity``.

``bounds.cavity`` draws every random number and keeps the pools; these two functions run the
per-trajectory loops (``kernel._jit_cavity``, where the argument contract is documented). No
validation: the caller builds every array itself. Both release the GIL, so ``bounds.cavity``
runs a chunk on a second thread while it draws the next one.
"""

from __future__ import annotations

import numpy as np

from kernel._jit_cavity import _cavity_chunk, _noise_activations


def cavity_chunk(lo: int, others: np.ndarray, u: np.ndarray, ia: np.ndarray, ii: np.ndarray,
                 far: np.ndarray, p_act: float, tag_h: np.ndarray, tag_y: np.ndarray,
                 truth: np.ndarray, h_act: np.ndarray, y_act: np.ndarray, y_in: np.ndarray,
                 a_new: np.ndarray, e_act: np.ndarray, b: np.ndarray, coef: float, read_c: float,
                 z_other: int, rest: int, noise_mean: np.ndarray, y_total: np.ndarray,
                 eps_out: np.ndarray, ovl_out: np.ndarray, prop_out: np.ndarray) -> None:
    """Form and read out the S neurons of tagged trajectories ``lo .. lo + m - 1`` (m = len(u)).

    Writes rows ``lo .. lo + m - 1`` of ``eps_out``, ``ovl_out`` and ``prop_out`` (M, d): the
    total error and its overlap and propagation parts. The arguments are described in
    ``kernel._jit_cavity``.
    """
    _cavity_chunk(lo, others, u, ia, ii, far, p_act, tag_h, tag_y, truth, h_act, y_act, y_in,
                  a_new, e_act, b, coef, read_c, z_other, rest, noise_mean, y_total, eps_out,
                  ovl_out, prop_out)


def noise_activations(ld: np.ndarray, ii: np.ndarray, y_in: np.ndarray, b: np.ndarray,
                      A: np.ndarray) -> None:
    """``A[r] = ReLU(sum_{j < ld[r]} y_in[ii[r, j]] + b)``: neurons no active circuit uses, each
    carrying the pushed errors of its ``ld[r]`` inactive circuits. ld (m,) int, ii (m, J) pool
    indices, y_in (M, d), b (d,); A (m, d) is written."""
    _noise_activations(ld, ii, y_in, b, A)
