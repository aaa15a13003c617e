"""Private numba loops of the measured error decomposition (no validation; see
``kernel.decompose``).

A second compiled pass over the factorised layout, one sample at a time. Per sample and layer l
it forms three large vectors, offset-major like ``kernel._jit`` (neuron (i, k), flat index
i*n + k of the docs, sits at row k*d + i, so a circuit's d neurons at one offset are adjacent):

  X = sum_{u active} E_u h_u            (ideal superposed pre-activation, a sparse scatter),
  P = W^l A^{l-1} = sum_t E_t w_t U_t A^{l-1}   (P = X at layer 1),
  A = ReLU(P + B^l),

then reads out every circuit t once: U_t A (its read-out), U_t (P - X) (propagation term) and
U_t X (pushed to the few circuits that share a neuron with an active circuit through the inverse
index; every other circuit reads -c * (block sum of X), which is 0 for the plain read-out).
eps_t = U_t A - a_t, eps_overlap = U_t X - h_t, eps_propagation = U_t (P - X) and
eps_relu = eps - eps_overlap - eps_propagation, exactly as the NumPy oracle
(``tests.reference.decompose_numpy``) defines them. Sums over a circuit's S neurons run in
increasing pattern position, as in the oracle.

Contract of ``_decompose_range`` / ``_decompose_batch``: ``net`` is the forward pass's
``NetArrays`` record in float64 (``kernel.engines.net_arrays``: offsets, weights, bias, read-out
coefficients, inverse index, the construction's extra terms, added to P = W^l A^{l-1} before the
split into terms); ``truth`` a ``Truth`` record: active (B, z) int64 distinct circuits per
sample, h, a (B, L+1, z, d) float64 ground truth of the active circuits (``run_small``).
Outputs, a ``Terms`` record (zero-filled by the caller, float64), layer axis = layers 0..L
(layer 0 stays 0 except frac_on): act_total, act_ovl, act_prop, act_relu (B, L+1, z, d) eps and
its terms of the active circuits; in_sq, in_ovl, in_prop, in_relu (B, L+1) sums over inactive
circuits of |.|^2; in_max (B, L+1) max abs component of eps over inactive circuits; in_sum
(B, L+1, d) sum over inactive circuits of eps; frac_on (B, L+1) fraction of neurons > 0
(layer 0: X of layer 1, i.e. A^0).
A sample's results depend on that sample only (never on the range or the number of workers).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from kernel._jit import _bias_relu, _block_sums, _correct, _gather, _mix, _scatter_rows
from kernel._jit_constructions import _add_extra_terms
from kernel._numba import INLINE, JIT, PARALLEL, njit, prange
from kernel._simd import load1, load4, matvec4, store

#: ground truth of a batch: active (B, z) int64, h, a (B, L+1, z, d) float64
Truth = namedtuple("Truth", ["active", "h", "a"])
#: the outputs (see the module docstring)
Terms = namedtuple("Terms", ["act_total", "act_ovl", "act_prop", "act_relu", "in_sq", "in_ovl",
                             "in_prop", "in_relu", "in_max", "in_sum", "frac_on"])
#: work buffers of one worker: X, P, A, Q (D, 1) large vectors; R, RQ, g (T, d) read-outs U_t A
#: (of the previous layer until _read_all), U_t (P - X), gathered X of the circuits touched by an
#: active circuit; slot (T,) position of t in the sample's active list or -1; mark_t (T,),
#: mark_k (n,) bool, touched (T,), kept (z S,) int64 lists; bsA, bsX, bsQ, bs_prev (d, 1) block
#: sums; rho, ca (d, 1) buffers of the construction terms; cnt (1,) int64 neurons on
DWork = namedtuple("DWork", ["X", "P", "A", "Q", "R", "RQ", "g", "slot", "mark_t", "mark_k",
                             "touched", "kept", "bsA", "bsX", "bsQ", "bs_prev", "rho", "ca",
                             "cnt"])


@njit(**JIT)
def _new_dwork(T, d, n, z, S):
    D = d * n
    return DWork(np.zeros((D, 1)), np.zeros((D, 1)), np.zeros((D, 1)), np.zeros((D, 1)),
                 np.zeros((T, d)), np.zeros((T, d)), np.zeros((T, d)),
                 np.full(T, -1, dtype=np.int64), np.zeros(T, dtype=np.bool_),
                 np.zeros(n, dtype=np.bool_), np.empty(T, dtype=np.int64),
                 np.empty(z * S, dtype=np.int64), np.zeros((d, 1)), np.zeros((d, 1)),
                 np.zeros((d, 1)), np.zeros((d, 1)), np.zeros((d, 1)), np.zeros((d, 1)),
                 np.zeros(1, dtype=np.int64))


@njit(**JIT)
def _embed_active(X, s, layer, off, truth):
    """X <- sum over active u of E_u h_u^layer (X zeroed first)."""
    X[:] = 0.0
    S = off.shape[1]
    d = truth.h.shape[3]
    for j in range(truth.active.shape[1]):
        u = truth.active[s, j]
        for i in range(d):
            v = truth.h[s, layer, j, i]
            for q in range(S):
                X[off[u, q] * d + i, 0] += v


@njit(**JIT)
def _propagate(P, off, w, R):
    """P <- sum_t E_t w_t R_t, with R (T, d) the read-outs of the previous layer. Each neuron
    receives its circuits in increasing t, as in the oracle's scatter. The forward pass's
    helpers with C = 1: 4-wide vector steps when d = 4, else one neuron at a time."""
    P[:] = 0.0
    T, d = R.shape
    if d == 4:
        for t in range(T):
            _scatter_rows(P, off, t, (0, 4, 1, 0), matvec4(w, t * 16, load4(R, t * 4)))
        return
    for t in range(T):
        for i in range(d):
            _scatter_rows(P, off, t, (i, d, 1, 0), _mix(load1, R, w, t, (i, d, 1, t * d)))


@njit(**INLINE)
def _read_all(load, groups, wk, off, k):
    """R[t] = U_t A and RQ[t] = U_t Q for every circuit t: the forward pass's ``_gather`` and
    ``_correct`` with C = 1, ``groups`` vectors of ``load``'s width per circuit (one 4-wide
    when d = 4, else d of one)."""
    d = k[1]
    for t in range(off.shape[0]):
        for i in range(groups):
            at = (i, d, 1, 0)
            store(wk.R, t * d + i, _correct(load, _gather(load, wk.A, off, t, at), wk.bsA, at, k))
            store(wk.RQ, t * d + i,
                  _correct(load, _gather(load, wk.Q, off, t, at), wk.bsQ, at, k))


@njit(**JIT)
def _push_active_neurons(wk, s, off, active, indptr, inv):
    """g[t] += the X values at every neuron circuit t shares with an active circuit (each neuron
    once). Returns the number of circuits touched (listed in ``touched``); the offsets visited are
    listed in ``kept`` (their count is returned second) so the caller can clear the marks."""
    S = off.shape[1]
    X, g, mark_k, mark_t, touched, kept = wk.X, wk.g, wk.mark_k, wk.mark_t, wk.touched, wk.kept
    d = g.shape[1]
    m = 0
    nk = 0
    for j in range(active.shape[1]):
        u = active[s, j]
        for q in range(S):
            k = off[u, q]
            if mark_k[k]:
                continue
            mark_k[k] = True
            kept[nk] = k
            nk += 1
            for p in range(indptr[k], indptr[k + 1]):
                t = inv[p]
                if not mark_t[t]:
                    mark_t[t] = True
                    touched[m] = t
                    m += 1
                for i in range(d):
                    g[t, i] += X[k * d + i, 0]
    return m, nk


@njit(**JIT)
def _layer_terms(s, layer, net, truth, wk):
    """Forms X, P, A, Q of ``layer`` for sample s (A holds A^{layer-1} on entry, R its
    read-outs) and returns the fraction of neurons on, then reads out every circuit (R, RQ, g)."""
    off = net.offsets[layer - 1]
    X, P, A, Q = wk.X, wk.P, wk.A, wk.Q
    D = X.shape[0]
    read_c = net.read_c[0]
    _embed_active(X, s, layer, off, truth)
    if layer == 1:
        P[:] = X
    else:
        _propagate(P, off, net.weights[layer - 1], wk.R)
        if net.ext_flags[0]:  # the construction's extra terms, from A^{l-1} (still in A)
            _block_sums(A, wk.bs_prev)
            _add_extra_terms(A, P, wk.bs_prev, net, layer - 1, 1, wk.rho, wk.ca)
    A[:] = P
    _bias_relu(A, net.bias[layer - 1], wk.cnt)
    for j in range(D):  # exactly 0 at layer 1, where P = X
        Q[j, 0] = P[j, 0] - X[j, 0]
    if read_c != 0.0:  # else the block sums stay 0
        _block_sums(A, wk.bsA)
        _block_sums(X, wk.bsX)
        _block_sums(Q, wk.bsQ)
    m, nk = _push_active_neurons(wk, s, off, truth.active, net.inv_indptr[layer - 1],
                                 net.inv_circuits[layer - 1])
    k = (1, wk.R.shape[1], off.shape[1], net.coef[0], read_c)
    if k[1] == 4:
        _read_all(load4, 1, wk, off, k)
    else:
        _read_all(load1, k[1], wk, off, k)
    return wk.cnt[0] / D, m, nk


@njit(**JIT)
def _split_terms(s, layer, net, truth, wk, out):
    """eps and its three terms for every circuit of ``layer`` (from R, RQ, g): written for the
    active circuits, summed (squares, max, sum) over the inactive ones."""
    T, d = wk.R.shape
    coef = net.coef[0]
    read_c = net.read_c[0]
    sq_tot = 0.0
    sq_ovl = 0.0
    sq_prop = 0.0
    sq_relu = 0.0
    mx = 0.0
    out.in_sum[s, layer] = 0.0
    sums = out.in_sum[s, layer]
    for t in range(T):
        j = wk.slot[t]
        if j >= 0:
            for i in range(d):
                rX = coef * wk.g[t, i] - read_c * wk.bsX[i, 0]
                eps = wk.R[t, i] - truth.a[s, layer, j, i]
                ovl = rX - truth.h[s, layer, j, i]
                out.act_total[s, layer, j, i] = eps
                out.act_ovl[s, layer, j, i] = ovl
                out.act_prop[s, layer, j, i] = wk.RQ[t, i]
                out.act_relu[s, layer, j, i] = eps - ovl - wk.RQ[t, i]
            continue
        sq_t = 0.0
        for i in range(d):
            eps = wk.R[t, i]
            rX = coef * wk.g[t, i] - read_c * wk.bsX[i, 0]
            rQ = wk.RQ[t, i]
            relu = eps - rX - rQ
            sq_t += eps * eps
            sq_ovl += rX * rX
            sq_prop += rQ * rQ
            sq_relu += relu * relu
            mx = max(mx, abs(eps))
            sums[i] += eps
        sq_tot += sq_t
    out.in_sq[s, layer] = sq_tot
    out.in_ovl[s, layer] = sq_ovl
    out.in_prop[s, layer] = sq_prop
    out.in_relu[s, layer] = sq_relu
    out.in_max[s, layer] = mx


@njit(**JIT)
def _decompose_range(s_lo, s_hi, net, truth, out):
    """Samples [s_lo, s_hi), serially; work buffers allocated once."""
    L, T, S = net.offsets.shape
    d = net.weights.shape[2]
    n = net.inv_indptr.shape[1] - 1
    active = truth.active
    z = active.shape[1]
    wk = _new_dwork(T, d, n, z, S)
    for s in range(s_lo, s_hi):
        for j in range(z):
            wk.slot[active[s, j]] = j
        for layer in range(1, L + 1):
            on, m, nk = _layer_terms(s, layer, net, truth, wk)
            if layer == 1:
                out.frac_on[s, 0] = np.count_nonzero(wk.X > 0.0) / wk.X.shape[0]
            out.frac_on[s, layer] = on
            _split_terms(s, layer, net, truth, wk, out)
            for p in range(m):
                t = wk.touched[p]
                wk.mark_t[t] = False
                wk.g[t, :] = 0.0
            for p in range(nk):
                wk.mark_k[wk.kept[p]] = False
        for j in range(z):
            wk.slot[active[s, j]] = -1


@njit(**PARALLEL)
def _decompose_batch(net, truth, out, n_workers):
    """Batch driver: worker w (prange) runs its contiguous share of the samples through
    ``_decompose_range`` (the serial driver, which the caller uses directly for one worker)."""
    B = truth.active.shape[0]
    for wk in prange(n_workers):
        _decompose_range(wk * B // n_workers, (wk + 1) * B // n_workers, net, truth, out)
