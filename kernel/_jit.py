"""Private numba loops of the forward pass (no validation; see ``kernel.engines``).

Records. The kernels take three read-only records built in one place (``kernel.engines``):
``NetArrays`` (the network's arrays in the compute dtype), ``BatchArrays`` (active circuits,
inputs, thresholds, requested read-outs) and ``Outputs`` (zero-filled float64 results), plus one
``Work`` record of buffers per worker, allocated once per worker, never per sample or layer.

Layout. Samples are processed in *chunks* of C columns: the large layer of a chunk is one (D, C)
C-contiguous array, so the C samples of one neuron are adjacent. Inside the kernels a layer is
stored offset-major: neuron (i, k) (block i, offset k; flat index i*n + k) sits at row k*d + i, so
the d neurons of one offset, which a circuit gathers and scatters together, are adjacent.

A layer l = 1..L of a chunk is three stages:
  1. read-out pass over a list of circuits, in increasing circuit order: for each circuit t
     gather r_t = U_t^l A^l and add it to the statistics (``_read_columns``) or store it
     (``_store_flagged``, ``_add_stats``), and scatter E_t w_t^{l+1} r_t into the
     *pre-activation* of layer l+1 (``_scatter_columns``);
  2. the construction's terms that are not circuit-by-circuit (``kernel.constructions``:
     per-offset, rank-one and sparse; ``kernel._jit_constructions._add_extra_terms``), column
     by column in a fixed order, so they keep every guarantee below;
  3. bias + ReLU (``_bias_relu``), which also counts the neurons that are on.

Reproducibility (tested bit-for-bit in tests/test_engines.py). Every number a sample gets is
computed column by column: no operation mixes two columns, and within a column the operations
run in a fixed order (circuits in increasing t; a circuit's S neurons in pattern order; d-sums
in index order; no fused multiply-add, fastmath is off). Hence a sample's read-outs and
statistics do not depend on the chunk it shares, the chunk width, the number of workers or
threads. The activation-sparse mode runs the *same* pass on the sorted list of circuits with at
least one nonzero neuron in the chunk; a skipped circuit would have gathered exact zeros
(ReLU outputs are +0.0 or positive), read 0, added +-0 to its scatter rows and 0 to the
statistics, so skipping it changes no bit (the list is the union over the chunk's columns;
any superset of a column's touched circuits gives that column the same numbers).
``factorised``, ``sparse`` and ``auto`` are thus bit-identical per dtype. The single-sample
d = 4 pass uses the same helpers with 4-wide vectors: the same operations in the same order.

Vectorisation (docs/performance.md): explicit vector operations (``kernel._simd``), columns by
512-bit vectors (8 float64 or 16 float32 samples; the last C mod 8 / 16 one at a time), the
d = 4 single-sample pass the 4 neurons of an offset. The helpers get arrays; the loops are
written so that numba's reference-count pruning leaves no count inside them.

Compute dtype. The large layers, weights, bias, read-outs and scatters are in the compute dtype
(float64 or float32); the read-out coefficients come as 1-element arrays of that dtype so no
expression is silently promoted to float64. Statistics are accumulated in float64 from the
read-outs converted to float64; the embedding of the float64 inputs is summed in float64.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from kernel._jit_constructions import _add_extra_terms
from kernel._numba import INLINE, JIT, PARALLEL, njit, prange, thread_id
from kernel._simd import (
    add_into,
    count_above,
    lane,
    load1,
    load4,
    load8,
    load16,
    matvec4,
    store,
    to_float64,
    vadd,
    vmax_abs,
    vmul,
    vscale,
    vsub,
)

#: the network's arrays (compute dtype where floating): offsets (L, T, S) int32, weights
#: (L, T, d, d), bias (L, d), coef (1,) = 1/S + c, read_c (1,) = c of the corrected read-out,
#: inv_indptr (L, n+1) int64 and inv_circuits (L, T*S) int32 (CSR offset -> circuits per layer),
#: all_circuits (T,) int32 = 0..T-1 (the circuit list of the dense pass); ext_N .. ext_flags the
#: construction's terms beyond the per-circuit pass (``Construction.kernel_args``: N, G, R, the
#: sparse CSR and weights, flags = (has_extra, has_sparse)); the weights are then its M_t
NetArrays = namedtuple(
    "NetArrays",
    ["offsets", "weights", "bias", "coef", "read_c", "inv_indptr", "inv_circuits", "all_circuits",
     "ext_N", "ext_G", "ext_R", "sp_ptr", "sp_idx", "sp_val", "sp_w", "ext_flags"],
)
#: active (B, z) int64; x0 (B, z, d) float64 inputs; thr2 (L,) squared false-activation
#: thresholds; ro_ptr (T+1,) int64, ro_slot (R,) int64: CSR circuit -> read-out positions
BatchArrays = namedtuple("BatchArrays", ["active", "x0", "thr2", "ro_ptr", "ro_slot"])
#: float64 results, layer axis 1..L unless said: active (B, L, z, d), readout (B, L, R, d),
#: sq (B, L) sum over inactive circuits of |r|^2, absmax (B, L) max |component| over inactive
#: circuits, false (B, L) int64 count with |r|^2 > thr2, on (B, L+1) fraction of neurons > 0 at
#: layers 0..L (layer 0: the embedded input A^0)
Outputs = namedtuple("Outputs", ["active", "readout", "sq", "absmax", "false", "on"])
#: per-worker buffers: A, An (D, C) layers; cnt (C,) nonzeros per column; bs (d, C) block sums;
#: r (d, C) read-outs of one circuit; mark (T,) bool and touched (T,)
#: int32 for the circuit list of a sparse column; flags (T,) uint8; sq, absmax (C,) float64 and
#: nfalse (C,) int64 statistics of the current layer per column; zeros (C,) float64 zeros
Work = namedtuple("Work", ["A", "An", "cnt", "bs", "r", "mark", "touched", "flags", "sq",
                           "absmax", "nfalse", "rho", "ca", "zeros"])

# flag bits of a circuit inside a chunk
_READOUT = 1  # its full read-out is requested
_ACTIVE = 2  # it is active in some sample of the chunk


# ----------------------------------------------------------------------------- set-up stages


@njit(**JIT)
def _new_work(T, d, n, C, dtype_like, ro_ptr, ro_slot):
    """Buffers of one worker for chunks of C columns (dtype of ``dtype_like``)."""
    dt = dtype_like.dtype
    flags = np.zeros(T, dtype=np.uint8)
    if ro_slot.shape[0] > 0:
        for t in range(T):
            if ro_ptr[t + 1] > ro_ptr[t]:
                flags[t] = _READOUT
    return Work(
        np.zeros((d * n, C), dtype=dt),
        np.zeros((d * n, C), dtype=dt),
        np.zeros(C, dtype=np.int64),
        np.zeros((d, C), dtype=dt),
        np.zeros((d, C), dtype=dt),
        np.zeros(T, dtype=np.bool_),
        np.zeros(T, dtype=np.int32),
        flags,
        np.zeros(C),
        np.zeros(C),
        np.zeros(C, dtype=np.int64),
        np.zeros((d, C), dtype=dt),
        np.zeros((d, C), dtype=dt),
        np.zeros(C),
    )


@njit(**JIT)
def _set_active_flags(flags, s0, ncol, active, on):
    for s in range(ncol):
        for j in range(active.shape[1]):
            t = active[s0 + s, j]
            if on:
                flags[t] |= _ACTIVE
            else:
                flags[t] &= 0xFF ^ _ACTIVE  # ~_ACTIVE within uint8 (no-JIT: ~2 is -3)


@njit(**JIT)
def _embed(A, s0, ncol, net, bat):
    """A[:, s] += sum over active t of E_t^1 w_t^1 a_t^0 for the chunk's samples (float64 sums)."""
    w0 = net.weights[0]
    off0 = net.offsets[0]
    active = bat.active
    x0 = bat.x0
    z = active.shape[1]
    d = w0.shape[1]
    S = off0.shape[1]
    for s in range(ncol):
        for j in range(z):
            t = active[s0 + s, j]
            for i in range(d):
                acc = 0.0
                for k in range(d):
                    acc += w0[t, i, k] * x0[s0 + s, j, k]
                for q in range(S):
                    A[off0[t, q] * d + i, s] += acc


@njit(**JIT)
def _count_on(A, cnt):
    """cnt[s] = number of entries > 0 in column s."""
    D, C = A.shape
    for s in range(C):
        cnt[s] = 0
    for j in range(D):
        for s in range(C):
            if A[j, s] > 0.0:
                cnt[s] += 1


@njit(**JIT)
def _bias_relu(A, bias_l, cnt):
    """A <- ReLU(A + B^l) in place (B^l = b^l kron 1_n); cnt[s] = nonzeros left in column s."""
    D, C = A.shape
    d = bias_l.shape[0]
    for s in range(C):
        cnt[s] = 0
    for k in range(D // d):
        for i in range(d):
            b = bias_l[i]
            row = k * d + i
            for s in range(C):
                v = A[row, s] + b
                if v > 0.0:
                    A[row, s] = v
                    cnt[s] += 1
                else:
                    A[row, s] = 0.0


@njit(**JIT)
def _block_sums(A, bs):
    """bs[i, s] = 0 + the sum of block i of column s, offsets in increasing order (the -c 1 part
    of the corrected read-out; the construction terms' bs). A (D, C), bs (d, C)."""
    D, C = A.shape
    d = bs.shape[0]
    for i in range(d):
        for s in range(C):
            bs[i, s] = 0.0
    for k in range(D // d):
        for i in range(d):
            row = k * d + i
            for s in range(C):
                bs[i, s] += A[row, s]


@njit(**JIT)
def _touched_circuits(A, indptr, inv, mark, touched):
    """Sorted list (in touched[:m]) of the circuits with a nonzero neuron in some column of A,
    found through the inverse index; returns m. ``mark`` is all False on entry and exit."""
    D, C = A.shape
    d = D // (indptr.shape[0] - 1)
    m = 0
    for k in range(indptr.shape[0] - 1):
        on = False
        for j in range(k * d, (k + 1) * d):
            for s in range(C):
                if A[j, s] != 0.0:
                    on = True
        if on:
            for p in range(indptr[k], indptr[k + 1]):
                t = inv[p]
                if not mark[t]:
                    mark[t] = True
                    touched[m] = t
                    m += 1
    touched[:m].sort()
    for a in range(m):
        mark[touched[a]] = False
    return m


# ----------------------------------------------------------------------------- read-out pass


@njit(**INLINE)
def _gather(load, A, off, t, at):
    """U_t A for one vector, before the read-out's scaling: the sum over circuit t's S neurons
    in pattern order of ``load(A, (off[t, q] d + i) C + b)``, at = (i, d, C, b). With a 16-, 8-
    or 1-wide ``load``: block i of the columns of one vector from column b of a (D, C) layer;
    with a 4-wide load, C = 1 and i = b = 0: the 4 blocks of one sample (d = 4). The one gather
    of the forward pass, the single-sample pass and the decomposition."""
    i, d, C, b = at
    x = load(A, (off[t, 0] * d + i) * C + b)
    for q in range(1, off.shape[1]):
        x = vadd(x, load(A, (off[t, q] * d + i) * C + b))
    return x


@njit(**INLINE)
def _correct(load, x, bs, at, k):
    """The read-out from a gathered x: coef x - read_c (block sums at bs[i, b:]), or coef x when
    read_c is 0; at = (i, d, C, b) as in ``_gather``, k = (C, d, S, coef, read_c)."""
    i, d, C, b = at
    coef, read_c = k[3], k[4]
    if read_c != 0.0:
        return vsub(vscale(x, coef), vscale(load(bs, i * C + b), read_c))
    return vscale(x, coef)


@njit(**INLINE)
def _mix(load, r, w, t, at):
    """(w_t r)_i for one vector, d-sum in index order: sum_j w[t, i, j] * load(r, j C + b),
    at = (i, d, C, b)."""
    i, d, C, b = at
    y = vscale(load(r, b), w[t, i, 0])
    for j in range(1, d):
        y = vadd(y, vscale(load(r, j * C + b), w[t, i, j]))
    return y


@njit(**INLINE)
def _scatter_rows(An, off, t, at, y):
    """An[(off[t, q] d + i) C + b ...] += y for circuit t's S neurons (E_t y), at = (i, d, C, b)
    as in ``_gather``. The one scatter of the forward pass and the decomposition."""
    i, d, C, b = at
    for q in range(off.shape[1]):
        add_into(An, (off[t, q] * d + i) * C + b, y)


@njit(**INLINE)
def _read_columns(load, A, r, bs, off, cols, k, st):
    """Read-out of circuit t for the vectors of columns cols = (t, lo, hi, lanes) (``load``'s
    width: 16, 8 or 1): r[i, b:] = U_t A[:, b:] (``_gather``, ``_correct``: the corrected
    read-out); k = (C, d, S, coef, read_c). If ``record`` (an unflagged circuit; st = (record,
    thr2, zeros, sq_acc, mx_acc, nf_acc)), each vector is recorded into the statistics of its
    columns: |r|^2 (components in index order) added to the sum, the max abs component to the
    max, one false activation if |r|^2 > thr2 (kept in registers over the d components)."""
    t, lo, hi, lanes = cols
    C, d = k[0], k[1]
    record, thr2, zeros, sq_acc, mx_acc, nf_acc = st
    for b in range(lo, hi, lanes):
        sq = load(zeros, 0)
        mx = load(mx_acc, b)
        for i in range(d):
            x = _correct(load, _gather(load, A, off, t, (i, d, C, b)), bs, (i, d, C, b), k)
            store(r, i * C + b, x)
            if record:
                v = to_float64(x)
                sq = vadd(sq, vmul(v, v))
                mx = vmax_abs(mx, v)
        if record:
            add_into(sq_acc, b, sq)
            store(mx_acc, b, mx)
            count_above(nf_acc, b, sq, thr2)


@njit(**INLINE)
def _add_stats(r, col, thr2, sq_acc, mx_acc, nf_acc):
    """Add read-out r[:, col] of an inactive circuit to the statistics of column col: |r|^2 to
    the sum, its max abs component to the max, and one false activation if |r|^2 > thr2."""
    sq = 0.0
    mx = mx_acc[col]
    for i in range(r.shape[0]):
        v = np.float64(r[i, col])
        sq += v * v
        if abs(v) > mx:
            mx = abs(v)
    mx_acc[col] = mx
    sq_acc[col] += sq
    if sq > thr2:
        nf_acc[col] += 1


@njit(**JIT)
def _store_flagged(t, flag, r, col, s, layer, bat, out):
    """Read-out r[:, col] of a flagged circuit t for sample s, stored where requested (full
    read-out; active read-out if t is active in s). Returns whether t is active in s.

    The passes record an unflagged circuit's read-out in ``_read_columns`` (or in registers),
    a flagged one as ``per column, if not _store_flagged(...): _add_stats(...)``."""
    d = r.shape[0]
    if s >= bat.active.shape[0]:  # padding column of a last chunk
        return False
    if flag & _READOUT:
        for p in range(bat.ro_ptr[t], bat.ro_ptr[t + 1]):
            a = bat.ro_slot[p]
            for i in range(d):
                out.readout[s, layer, a, i] = r[i, col]
    if flag & _ACTIVE:
        for j in range(bat.active.shape[1]):
            if bat.active[s, j] == t:
                for i in range(d):
                    out.active[s, layer, j, i] = r[i, col]
                return True
    return False


@njit(**INLINE)
def _scatter_columns(load, An, r, off, w, t, cols, k):
    """An[:, b:] += E_t w_t r[:, b:] for the vectors of columns cols = (lo, hi, lanes)
    (``load``'s width; ``_mix``, ``_scatter_rows``); k = (C, d, ...)."""
    lo, hi, lanes = cols
    C, d = k[0], k[1]
    for b in range(lo, hi, lanes):
        for i in range(d):
            _scatter_rows(An, off, t, (i, d, C, b), _mix(load, r, w, t, (i, d, C, b)))


@njit(**INLINE)
def _layer_arrays(net, bat, at):
    """(read offsets, write offsets, weights, squared threshold) of the pass at at = (s0, layer,
    scatter): the write side is the next layer's, or the read layer's if not ``scatter``."""
    layer = at[1]
    lw = layer + 1 if at[2] else layer
    return net.offsets[layer], net.offsets[lw], net.weights[lw], bat.thr2[layer]


@njit(**JIT)
def _pass_generic(A, An, todo, at, net, bat, out, wk):
    """Stage 1 of a layer for circuits circ[:m] (todo = (circ, m)) and all C columns of the
    chunk at at = (s0, layer, scatter): gather, record, scatter (into the next layer's
    pre-activation, if ``scatter``). Columns go by 512-bit vectors
    (``kernel._simd``: 8 float64 or 16 float32 samples, partial sums in registers), the last
    C mod 8 / 16 one by one; every column gets the same operations in the same order."""
    # record fields are read once here (reading them in the circuit loop costs reference
    # counts)
    circ, m = todo
    s0, layer, scatter = at
    off, off_w, w, thr2 = _layer_arrays(net, bat, at)
    flags = wk.flags
    r, bs = wk.r, wk.bs
    d, C = r.shape
    k = (C, d, off.shape[1], net.coef[0], net.read_c[0])
    lanes = 16 if r.itemsize == 4 else 8  # 512 bits either way
    full = C - C % lanes
    for a in range(m):
        t = circ[a]
        f = flags[t]
        st = (f == 0, thr2, wk.zeros, wk.sq, wk.absmax, wk.nfalse)
        if lanes == 16:
            _read_columns(load16, A, r, bs, off, (t, 0, full, 16), k, st)
        else:
            _read_columns(load8, A, r, bs, off, (t, 0, full, 8), k, st)
        _read_columns(load1, A, r, bs, off, (t, full, C, 1), k, st)
        if f != 0:
            for s in range(C):
                if not _store_flagged(t, f, r, s, s0 + s, layer, bat, out):
                    _add_stats(r, s, thr2, wk.sq, wk.absmax, wk.nfalse)
        if scatter:
            if lanes == 16:
                _scatter_columns(load16, An, r, off_w, w, t, (0, full, 16), k)
            else:
                _scatter_columns(load8, An, r, off_w, w, t, (0, full, 8), k)
            _scatter_columns(load1, An, r, off_w, w, t, (full, C, 1), k)


@njit(**JIT)
def _pass_single_d4(A, An, todo, at, net, bat, out, wk):
    """``_pass_generic`` for one column (C = 1) and d = 4: the same gather, read-out and scatter
    (``_gather``, ``_correct``, ``_scatter_rows``) with a 4-wide load, since a circuit's 4
    neurons at one offset are adjacent (one vector step per offset; the product w_t r is
    ``matvec4``), and the statistics in registers. Per lane the same operations in the same
    order as the generic pass."""
    circ, m = todo
    s, layer, scatter = at
    off_r, off_w, w, thr2 = _layer_arrays(net, bat, at)
    r, flags = wk.r, wk.flags
    sq_tot, mx, nf = wk.sq[0], wk.absmax[0], wk.nfalse[0]
    k = (1, 4, off_r.shape[1], net.coef[0], net.read_c[0])
    for a in range(m):
        t = circ[a]
        x = _correct(load4, _gather(load4, A, off_r, t, (0, 4, 1, 0)), wk.bs, (0, 4, 1, 0), k)
        f = flags[t]
        inactive = True
        if f != 0:
            store(r, 0, x)
            inactive = not _store_flagged(t, f, r, 0, s, layer, bat, out)
        if inactive:  # _add_stats, written out
            v = to_float64(x)
            sq = 0.0
            for j in range(4):
                vj = lane(v, j)
                sq += vj * vj
                if abs(vj) > mx:  # as vmax_abs: a NaN never replaces the max
                    mx = abs(vj)
            sq_tot += sq
            nf += np.int64(sq > thr2)  # no branch: a false activation is a coin flip near thr
        if scatter:
            _scatter_rows(An, off_w, t, (0, 4, 1, 0), matvec4(w, t * 16, x))
    wk.sq[0] = sq_tot
    wk.absmax[0] = mx
    wk.nfalse[0] = nf


@njit(**JIT)
def _readout_layer(A, An, at, sparse, net, bat, out, wk):
    """Stage 1 of layer ``layer + 1`` for the chunk: every circuit read out (statistics kept per
    column in wk), and the next layer's pre-activation An scattered if ``scatter``.

    Dense mode: all circuits. Sparse mode: only the circuits with a nonzero neuron in some column
    of the chunk (identical numbers, see the module docstring)."""
    C = A.shape[1]
    d = wk.r.shape[0]
    T = net.all_circuits.shape[0]
    layer = at[1]
    for s in range(C):
        wk.sq[s] = 0.0
        wk.absmax[s] = 0.0
        wk.nfalse[s] = 0
    if sparse:
        # only circuits with a nonzero neuron in some column; the others would read 0 exactly
        circ = wk.touched
        m = _touched_circuits(A, net.inv_indptr[layer], net.inv_circuits[layer], wk.mark, circ)
    else:
        circ = net.all_circuits
        m = T
        if net.read_c[0] != 0.0:
            _block_sums(A, wk.bs)
    if C == 1 and d == 4:
        _pass_single_d4(A, An, (circ, m), at, net, bat, out, wk)
    else:
        _pass_generic(A, An, (circ, m), at, net, bat, out, wk)


# ----------------------------------------------------------------------------- drivers


@njit(**JIT)
def _chunk(s0, ncol, sparse_below, net, bat, out, wk):
    """All L layers of the chunk of samples [s0, s0 + ncol) (one worker, serial). Columns >= ncol
    are padding: zero input, their statistics are never written out."""
    L = net.offsets.shape[0]
    D = wk.A.shape[0]
    A = wk.A
    An = wk.An
    cnt = wk.cnt
    _set_active_flags(wk.flags, s0, ncol, bat.active, True)
    A[:, :] = 0.0
    _embed(A, s0, ncol, net, bat)
    _count_on(A, cnt)
    for s in range(ncol):
        out.on[s0 + s, 0] = cnt[s] / D
    _bias_relu(A, net.bias[0], cnt)
    for s in range(ncol):
        out.on[s0 + s, 1] = cnt[s] / D
    for layer in range(L):
        scatter = layer + 1 < L
        top = 0
        for s in range(ncol):
            top = max(top, cnt[s])
        sparse = net.read_c[0] == 0.0 and top < sparse_below * D
        if scatter:
            An[:, :] = 0.0
        _readout_layer(A, An, (s0, layer, scatter), sparse, net, bat, out, wk)
        for s in range(ncol):
            out.sq[s0 + s, layer] = wk.sq[s]
            out.absmax[s0 + s, layer] = wk.absmax[s]
            out.false[s0 + s, layer] = wk.nfalse[s]
        if scatter:
            # An now holds the circuit-by-circuit pre-activation of layer ``layer + 2``; the
            # construction's terms shared by a whole block or applied per offset come next
            if net.ext_flags[0]:
                _block_sums(A, wk.bs)
                _add_extra_terms(A, An, wk.bs, net, layer + 1, ncol, wk.rho, wk.ca)
            _bias_relu(An, net.bias[layer + 1], cnt)
            for s in range(ncol):
                out.on[s0 + s, layer + 2] = cnt[s] / D
            A, An = An, A
    _set_active_flags(wk.flags, s0, ncol, bat.active, False)


@njit(**JIT)
def run_chunks(c_lo, c_hi, chunk, sparse_below, net, bat, out):
    """Chunks [c_lo, c_hi) of ``chunk`` consecutive samples, serially, buffers allocated once
    (the serial driver, also the body of each worker of ``run_parallel``)."""
    L, T, S = net.offsets.shape
    d = net.weights.shape[2]
    n = net.inv_indptr.shape[1] - 1
    B = bat.active.shape[0]
    wk = _new_work(T, d, n, chunk, net.bias, bat.ro_ptr, bat.ro_slot)
    for c in range(c_lo, c_hi):
        s0 = c * chunk
        _chunk(s0, min(chunk, B - s0), sparse_below, net, bat, out, wk)


@njit(**PARALLEL)
def run_parallel(n_workers, chunk, sparse_below, net, bat, out, worker_thread):
    """Parallel driver: the ceil(B / chunk) chunks are split into ``n_workers`` contiguous shares,
    one per prange iteration (``run_chunks``); worker_thread[w] records the thread that ran
    share w. Results do not depend on the split (see the module docstring)."""
    B = bat.active.shape[0]
    n_chunks = (B + chunk - 1) // chunk
    for wk in prange(n_workers):
        worker_thread[wk] = thread_id()
        run_chunks(wk * n_chunks // n_workers, (wk + 1) * n_chunks // n_workers, chunk,
                   sparse_below, net, bat, out)
