"""Private numba loops of the cavity recursion (no validation; see ``bounds.cavity``).

``bounds.cavity`` draws every random number in NumPy, in the order its NumPy oracle
(``tests.reference.cavity_recursion_numpy``) draws them, and hands one chunk of tagged
trajectories to ``_cavity_chunk``, which forms the S neurons of each tagged circuit and reads them
out. Every sum runs in the order the oracle's reductions take (slots j increasing, then pattern
positions q increasing), so the same seed gives the same numbers to rounding.

Contract of ``_cavity_chunk(lo, draws, pools, params, errors)`` (tagged trajectories lo .. lo + m
- 1 of the pools; the records are ``kernel.cavity``'s named tuples):
  draws: others (m, S) int64 number of other circuits at each of the tagged circuit's neurons;
  u (m, S, J) float64 uniforms (slot (q, j) holds an active circuit when u < p_act and
  j < others); ia, ii (m, S, J) int pool indices of the active / inactive circuit in a slot;
  far (m, F) int pool indices of the active circuits met elsewhere (corrected read-out only);
  pools: tag_h, tag_y (M, d) the tagged circuits' own signal and pushed error; truth (M, d)
  their truth a (zeros for the inactive class); h_act, y_act, a_new, e_act (M, d) the active
  pool (signal, pushed error, new activation, previous error); y_in (M, d) the inactive pool's
  pushed error;
  params: p_act; b (d,) bias; coef = 1/S + c, read_c = c; z_other active circuits besides the
  tagged one; rest = n - S z noise-only neurons per block, noise_mean (d,) their mean
  activation; y_total (d,) = S (T - z) * mean(y_in), the inactive pushes' share of a block sum.
Outputs, errors: eps, overlap, propagation (M, d), rows lo .. lo + m - 1 written.
"""

from __future__ import annotations

import numpy as np

from kernel._numba import JIT, njit


@njit(**JIT)
def _cavity_chunk(lo, draws, pools, params, errors):
    others, u, ia, ii, far = draws
    tag_h, tag_y, truth, h_act, y_act, y_in, a_new, e_act = pools
    p_act, b, coef, read_c, z_other, rest, noise_mean, y_total = params
    eps_out, ovl_out, prop_out = errors
    m, S, J = u.shape
    d = tag_h.shape[1]
    F = far.shape[1]
    xs = np.zeros(d)  # sum over slots of the active circuits' signal
    ys = np.zeros(d)  # sum over slots of the pushed errors
    sA = np.zeros(d)  # sums over the S neurons of A, X, P
    sX = np.zeros(d)
    sP = np.zeros(d)
    met = np.zeros(d)  # corrected read-out: active circuits met, their a + eps
    xo = np.zeros(d)  # ... their signal
    xy = np.zeros(d)  # ... signal plus pushed errors of every slot
    for r in range(m):
        g = lo + r
        sA[:] = 0.0
        sX[:] = 0.0
        sP[:] = 0.0
        met[:] = 0.0
        xo[:] = 0.0
        xy[:] = 0.0
        n_act = 0
        for q in range(S):
            xs[:] = 0.0
            ys[:] = 0.0
            for j in range(min(J, others[r, q])):
                if u[r, q, j] < p_act:
                    k = ia[r, q, j]
                    n_act += 1
                    for i in range(d):
                        xs[i] += h_act[k, i]
                        ys[i] += y_act[k, i]
                    if read_c != 0.0:  # sums only the corrected read-out's block sum needs
                        for i in range(d):
                            met[i] += a_new[k, i] + e_act[k, i]
                            xo[i] += h_act[k, i]
                            xy[i] += h_act[k, i] + y_act[k, i]
                else:
                    k = ii[r, q, j]
                    for i in range(d):
                        ys[i] += y_in[k, i]
                    if read_c != 0.0:
                        for i in range(d):
                            xy[i] += y_in[k, i]
            for i in range(d):
                x = tag_h[g, i] + xs[i]
                p = x + tag_y[g, i] + ys[i]
                sX[i] += x
                sP[i] += p
                sA[i] += max(p + b[i], 0.0)
        for i in range(d):
            bA = 0.0
            bX = 0.0
            bP = 0.0
            if read_c != 0.0:
                extra = z_other - n_act  # other active circuits elsewhere in the block
                fa = 0.0
                fh = 0.0
                for f in range(min(F, max(extra, 0))):
                    k = far[r, f]
                    fa += a_new[k, i] + e_act[k, i]
                    fh += h_act[k, i]
                bA = sA[i] + (S - 1) * met[i] + S * fa + rest * noise_mean[i]
                bX = sX[i] + (S - 1) * xo[i] + S * fh
                bP = sP[i] + (S - 1) * xy[i] + S * fh + y_total[i]
            rA = coef * sA[i] - read_c * bA
            rX = coef * sX[i] - read_c * bX
            rP = coef * sP[i] - read_c * bP
            eps_out[g, i] = rA - truth[g, i]
            ovl_out[g, i] = rX - tag_h[g, i]
            prop_out[g, i] = rP - rX


@njit(**JIT)
def _noise_activations(ld, ii, y_in, b, A):
    """A[r] = ReLU(sum_{j < ld[r]} y_in[ii[r, j]] + b): m neurons that no active circuit uses,
    each carrying the pushed errors of its ld[r] (inactive) circuits. ld (m,) int64, ii (m, J)
    pool indices, y_in (M, d), b (d,); output A (m, d)."""
    m, J = ii.shape
    d = y_in.shape[1]
    p = np.zeros(d)
    for r in range(m):
        p[:] = 0.0
        for j in range(min(J, ld[r])):
            k = ii[r, j]
            for i in range(d):
                p[i] += y_in[k, i]
        for i in range(d):
            A[r, i] = max(p[i] + b[i], 0.0)
