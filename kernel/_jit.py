"""Private numba loops of the forward pass (no validation; see ``kernel.engines``).

Layout. Samples are processed in *chunks* of C columns: the large layer of a chunk is one (D, C)
C-contiguous array, so the C samples of one neuron are adjacent. A layer is one pass over the
circuits (circuit outer, samples inner): each circuit's offsets and weights are loaded once per
chunk and the inner loops over the C samples are contiguous and vectorise.

Inside the kernels a large layer is stored offset-major: neuron (i, k) (block i, offset k; SPEC's
flat index i*n + k) sits at row k*d + i, so the d neurons of one offset, which a circuit using that
offset gathers and scatters together, are adjacent (one or two cache lines instead of d). Only the
order of storage changes; every sum is taken in the same order as with the block-major layout.

Two gather modes per layer and chunk, bit-identical in the read-outs they produce:
  dense ("factorised", SPEC §3 way 2): r_t = U_t A for every circuit t, S*d loads per circuit;
  sparse ("activation-sparse", way 3): only the nonzero neurons of A are visited and pushed to
    their circuits through the inverse index (CSR offset -> circuits). Circuits none of whose
    neurons is on read exactly 0 and are skipped.
Both sum a circuit's S neurons of a block in increasing offset order from 0, so r_t agrees to the
bit. The mode is chosen per layer from the measured fraction of nonzero neurons of the chunk:
sparse when it is below ``sparse_below`` (0: always dense, > 1: always sparse).

Contract shared by the drivers ``_forward_batch`` and ``_forward_split``:
  offsets (L, T, S) int32 block offsets per layer (each row increasing); weights (L, T, d, d) of
  the compute dtype (float64 or float32); bias (L, d) same dtype; n block size; read_c the c of the
  corrected read-out (0 for plain; then only the dense mode is used); inv_indptr (L, n+1) int64,
  inv_circuits (L, T*S) int32; active (B, z) int64 distinct circuits per sample; x0 (B, z, d)
  float64 inputs; thr2 (L,) squared false-activation thresholds; ro_ptr (T+1,) int64 and
  ro_slot (R,) int64: CSR circuit -> positions in the read-out list (unused when R == 0).
Outputs (zero-filled by the caller, float64), layer axis = layers 1..L unless said otherwise:
  out_active (B, L, z, d) read-outs of the active circuits; out_readout (B, L, R, d);
  out_sq (B, L) sum over inactive circuits of |read-out|^2; out_max (B, L) max abs component over
  inactive circuits; out_false (B, L) count of inactive circuits with |read-out|^2 > thr2;
  out_on (B, L+1) fraction of large neurons > 0 at layers 0..L (layer 0: the embedded input A^0).
Work buffers are allocated once per worker (``_forward_batch``) or once per call
(``_forward_split``), never per sample or per layer.
"""

from __future__ import annotations

import numpy as np

from kernel._numba import JIT, PARALLEL, njit, prange

# flag bits of a circuit inside a chunk
_READOUT = 1  # its full read-out is requested
_ACTIVE = 2  # it is active in some sample of the chunk


@njit(**JIT)
def _embed_chunk(A, s0, ncol, active, x0, w0, off0, n):
    """A[:, s] += sum over active t of E_t^1 w_t^1 a_t^0 for the chunk's samples (SPEC §3)."""
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
def _count_cols(A, cnt):
    """cnt[s] = number of entries > 0 in column s."""
    D, C = A.shape
    for s in range(C):
        cnt[s] = 0
    for j in range(D):
        for s in range(C):
            if A[j, s] > 0.0:
                cnt[s] += 1


@njit(**JIT)
def _relu_bias_cols(A, bias_l, n, cnt):
    """A <- ReLU(A + B^l) in place; cnt[s] = number of nonzeros left in column s."""
    D, C = A.shape
    d = bias_l.shape[0]
    for s in range(C):
        cnt[s] = 0
    for k in range(n):
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
def _block_sums_cols(A, n, bs):
    """bs[i, s] = sum of block i of column s (the -c 1 part of the corrected read-out)."""
    d, C = bs.shape
    for i in range(d):
        for s in range(C):
            bs[i, s] = 0.0
    for k in range(n):
        for i in range(d):
            row = k * d + i
            for s in range(C):
                bs[i, s] += A[row, s]


@njit(**JIT)
def _readout_flags(T, ro_ptr, ro_slot):
    """Per-circuit flags, _READOUT set for the circuits whose full read-out is requested."""
    flags = np.zeros(T, dtype=np.uint8)
    if ro_slot.shape[0] > 0:
        for t in range(T):
            if ro_ptr[t + 1] > ro_ptr[t]:
                flags[t] = _READOUT
    return flags


@njit(**JIT)
def _record_inactive(r, col, slot, thr2, sq_acc, mx_acc, nf_acc):
    """Add read-out r[:, col] of an inactive circuit to the accumulators of sample slot ``slot``:
    |r|^2 to the sum, its max abs entry to the max, and a false activation if |r|^2 > thr2."""
    sq = 0.0
    mx = mx_acc[slot]
    for i in range(r.shape[0]):
        v = r[i, col]
        sq += v * v
        if abs(v) > mx:
            mx = abs(v)
    mx_acc[slot] = mx
    sq_acc[slot] += sq
    if sq > thr2:
        nf_acc[slot] += 1


@njit(**JIT)
def _special(t, r, col, s, layer, thr2, flag, active, out_active, out_readout, ro_ptr, ro_slot,
             sq_acc, mx_acc, nf_acc, acc_col):
    """Read-out r[:, col] of a flagged circuit t for sample s: store it where asked, and add it to
    the inactive statistics (slot acc_col) unless t is active in s."""
    d = r.shape[0]
    if flag & _READOUT:
        for p in range(ro_ptr[t], ro_ptr[t + 1]):
            a = ro_slot[p]
            for i in range(d):
                out_readout[s, layer, a, i] = r[i, col]
    if flag & _ACTIVE:
        for j in range(active.shape[1]):
            if active[s, j] == t:
                for i in range(d):
                    out_active[s, layer, j, i] = r[i, col]
                return
    sq = 0.0
    for i in range(d):
        v = r[i, col]
        sq += v * v
        if abs(v) > mx_acc[acc_col]:
            mx_acc[acc_col] = abs(v)
    sq_acc[acc_col] += sq
    if sq > thr2:
        nf_acc[acc_col] += 1


@njit(**JIT)
def _dense_pass(A, An, t_lo, t_hi, off_r, off_w, w, n, coef, read_c, bs, scatter, s0, ncol,
                layer, thr2, flags, active, out_active, out_readout, ro_ptr, ro_slot, r, y,
                sq_acc, mx_acc, nf_acc):
    """Factorised layer for circuits [t_lo, t_hi) of one chunk, circuit outer, samples inner:
    r_t = U_t A (all C columns), statistics, and if ``scatter``: An += E_t w_t r_t.

    Columns >= ncol are padding (zero input); their statistics are junk and ignored.
    """
    C = A.shape[1]
    S = off_r.shape[1]
    d = r.shape[0]
    for t in range(t_lo, t_hi):
        for i in range(d):
            for s in range(C):
                r[i, s] = 0.0
            for q in range(S):
                row = off_r[t, q] * d + i
                for s in range(C):
                    r[i, s] += A[row, s]
            if read_c != 0.0:
                for s in range(C):
                    r[i, s] = coef * r[i, s] - read_c * bs[i, s]
            else:
                for s in range(C):
                    r[i, s] = coef * r[i, s]
        f = flags[t]
        if f == 0:
            for s in range(C):
                _record_inactive(r, s, s, thr2, sq_acc, mx_acc, nf_acc)
        else:
            for s in range(ncol):
                _special(t, r, s, s0 + s, layer, thr2, f, active, out_active, out_readout,
                         ro_ptr, ro_slot, sq_acc, mx_acc, nf_acc, s)
        if scatter:
            for i in range(d):
                for s in range(C):
                    y[s] = 0.0
                for k in range(d):
                    wik = w[t, i, k]
                    for s in range(C):
                        y[s] += wik * r[k, s]
                for q in range(S):
                    row = off_w[t, q] * d + i
                    for s in range(C):
                        An[row, s] += y[s]


@njit(**JIT)
def _sparse_pass(A, An, col, indptr, inv, off_w, w, n, coef, scatter, s, layer, thr2, flags,
                 active, out_active, out_readout, ro_ptr, ro_slot, g, mark, touched, r,
                 sq_acc, mx_acc, nf_acc):
    """Activation-sparse layer [N] for column ``col`` (sample s), plain read-out only: visit the
    nonzero neurons, push them to their circuits (inverse index), then handle the touched
    circuits as ``_dense_pass`` does. g (T, d) and mark (T,) are zero/False on entry and exit."""
    D = A.shape[0]
    d = g.shape[1]
    S = off_w.shape[1]
    m = 0
    for j in range(D):
        v = A[j, col]
        if v != 0.0:
            k = j // d
            i = j - k * d
            for p in range(indptr[k], indptr[k + 1]):
                t = inv[p]
                if not mark[t]:
                    mark[t] = True
                    touched[m] = t
                    m += 1
                g[t, i] += v
    for a in range(m):
        t = touched[a]
        mark[t] = False
        for i in range(d):
            r[i, 0] = coef * g[t, i]
            g[t, i] = 0.0
        f = flags[t]
        if f == 0:
            _record_inactive(r, 0, col, thr2, sq_acc, mx_acc, nf_acc)
        else:
            _special(t, r, 0, s, layer, thr2, f, active, out_active, out_readout, ro_ptr,
                     ro_slot, sq_acc, mx_acc, nf_acc, col)
        if scatter:
            for i in range(d):
                acc = 0.0
                for k in range(d):
                    acc += w[t, i, k] * r[k, 0]
                for q in range(S):
                    An[off_w[t, q] * d + i, col] += acc


@njit(**JIT)
def _set_flags(flags, s0, ncol, active, bit, on):
    for s in range(ncol):
        for j in range(active.shape[1]):
            t = active[s0 + s, j]
            if on:
                flags[t] |= bit
            else:
                flags[t] &= ~bit


@njit(**JIT)
def _chunk(s0, ncol, offsets, weights, bias, n, read_c, inv_indptr, inv_circuits, active, x0,
           thr2, ro_ptr, ro_slot, sparse_below, out_active, out_readout, out_sq, out_max,
           out_false, out_on, A, An, cnt, bs, r, y, g, mark, touched, flags, sq_acc, mx_acc,
           nf_acc):
    """All L layers of the chunk of samples [s0, s0 + ncol) (one worker, serial)."""
    L, T, S = offsets.shape
    D, C = A.shape
    coef = 1.0 / S + read_c
    _set_flags(flags, s0, ncol, active, _ACTIVE, True)
    A[:, :] = 0.0
    _embed_chunk(A, s0, ncol, active, x0, weights[0], offsets[0], n)
    _count_cols(A, cnt)
    for s in range(ncol):
        out_on[s0 + s, 0] = cnt[s] / D
    _relu_bias_cols(A, bias[0], n, cnt)
    for s in range(ncol):
        out_on[s0 + s, 1] = cnt[s] / D
    for layer in range(L):
        scatter = layer + 1 < L
        lw = layer + 1 if scatter else layer
        if scatter:
            An[:, :] = 0.0
        for s in range(C):
            sq_acc[s] = 0.0
            mx_acc[s] = 0.0
            nf_acc[s] = 0
        top = 0
        for s in range(ncol):
            top = max(top, cnt[s])
        if read_c == 0.0 and top < sparse_below * D:
            for s in range(ncol):
                _sparse_pass(A, An, s, inv_indptr[layer], inv_circuits[layer], offsets[lw],
                             weights[lw], n, coef, scatter, s0 + s, layer, thr2[layer], flags,
                             active, out_active, out_readout, ro_ptr, ro_slot, g, mark, touched,
                             r, sq_acc, mx_acc, nf_acc)
        else:
            if read_c != 0.0:
                _block_sums_cols(A, n, bs)
            if C == 1:
                if r.shape[0] == 4:
                    _dense_pass1_d4(A.reshape(D), An.reshape(D), 0, T, offsets[layer],
                                    offsets[lw], weights[lw], coef, read_c, bs, scatter, s0,
                                    layer, thr2[layer], flags, active, out_active, out_readout,
                                    ro_ptr, ro_slot, r, sq_acc, mx_acc, nf_acc, 0)
                else:
                    _dense_pass1(A.reshape(D), An.reshape(D), 0, T, offsets[layer], offsets[lw],
                                 weights[lw], n, coef, read_c, bs, scatter, s0, layer,
                                 thr2[layer], flags, active, out_active, out_readout, ro_ptr,
                                 ro_slot, r, sq_acc, mx_acc, nf_acc, 0)
            elif C == _C8:
                _dense_pass8(A, An, offsets[layer], offsets[lw], weights[lw], n, coef, read_c,
                             bs, scatter, s0, ncol, layer, thr2[layer], flags, active,
                             out_active, out_readout, ro_ptr, ro_slot, r, sq_acc, mx_acc, nf_acc)
            else:
                _dense_pass(A, An, 0, T, offsets[layer], offsets[lw], weights[lw], n, coef,
                            read_c, bs, scatter, s0, ncol, layer, thr2[layer], flags, active,
                            out_active, out_readout, ro_ptr, ro_slot, r, y, sq_acc, mx_acc,
                            nf_acc)
        for s in range(ncol):
            out_sq[s0 + s, layer] = sq_acc[s]
            out_max[s0 + s, layer] = mx_acc[s]
            out_false[s0 + s, layer] = nf_acc[s]
        if scatter:
            _relu_bias_cols(An, bias[layer + 1], n, cnt)
            for s in range(ncol):
                out_on[s0 + s, layer + 2] = cnt[s] / D
            A, An = An, A
    _set_flags(flags, s0, ncol, active, _ACTIVE, False)


@njit(**JIT)
def _run_chunks(c_lo, c_hi, offsets, weights, bias, n, read_c, inv_indptr, inv_circuits, active,
                x0, thr2, ro_ptr, ro_slot, sparse_below, out_active, out_readout, out_sq, out_max,
                out_false, out_on, chunk):
    """Chunks [c_lo, c_hi) of ``chunk`` consecutive samples, serially, buffers allocated once."""
    L, T, S = offsets.shape
    d = weights.shape[2]
    D = d * n
    B = active.shape[0]
    dt = weights.dtype
    A = np.zeros((D, chunk), dtype=dt)
    An = np.zeros((D, chunk), dtype=dt)
    cnt = np.zeros(chunk, dtype=np.int64)
    bs = np.zeros((d, chunk), dtype=dt)
    r = np.zeros((d, chunk), dtype=dt)
    y = np.zeros(chunk, dtype=dt)
    g = np.zeros((T, d), dtype=dt)
    mark = np.zeros(T, dtype=np.bool_)
    touched = np.empty(T, dtype=np.int32)
    flags = _readout_flags(T, ro_ptr, ro_slot)
    sq_acc = np.zeros(chunk)
    mx_acc = np.zeros(chunk)
    nf_acc = np.zeros(chunk, dtype=np.int64)
    for c in range(c_lo, c_hi):
        s0 = c * chunk
        ncol = min(chunk, B - s0)
        _chunk(s0, ncol, offsets, weights, bias, n, read_c, inv_indptr, inv_circuits,
               active, x0, thr2, ro_ptr, ro_slot, sparse_below, out_active, out_readout,
               out_sq, out_max, out_false, out_on, A, An, cnt, bs, r, y, g, mark, touched,
               flags, sq_acc, mx_acc, nf_acc)


@njit(**PARALLEL)
def _forward_batch(offsets, weights, bias, n, read_c, inv_indptr, inv_circuits, active, x0,
                   thr2, ro_ptr, ro_slot, sparse_below, out_active, out_readout, out_sq,
                   out_max, out_false, out_on, chunk, n_workers):
    """Batch driver: the B samples form ceil(B / chunk) chunks of ``chunk`` consecutive samples;
    worker w (prange) runs the chunks of its contiguous share (``_run_chunks``, the serial twin,
    which the caller uses directly when there is one worker: a parallel region costs a wait for
    every thread, ruinous on a loaded machine).

    A sample's result depends only on its chunk, never on the number of workers or threads.
    """
    B = active.shape[0]
    n_chunks = (B + chunk - 1) // chunk
    for wk in prange(n_workers):
        _run_chunks(wk * n_chunks // n_workers, (wk + 1) * n_chunks // n_workers, offsets,
                    weights, bias, n, read_c, inv_indptr, inv_circuits, active, x0, thr2, ro_ptr,
                    ro_slot, sparse_below, out_active, out_readout, out_sq, out_max, out_false,
                    out_on, chunk)

# ----------------------------------------------------------------------------- small batches


@njit(**JIT)
def _dense_pass1(A, An, t_lo, t_hi, off_r, off_w, w, n, coef, read_c, bs, scatter, s, layer,
                 thr2, flags, active, out_active, out_readout, ro_ptr, ro_slot, r, sq_acc,
                 mx_acc, nf_acc, part):
    """``_dense_pass`` for one sample, A and An 1-D (D,): circuits [t_lo, t_hi), statistics added
    to slot ``part`` of sq_acc, mx_acc, nf_acc."""
    S = off_r.shape[1]
    d = r.shape[0]
    sq_sum = 0.0
    mx = mx_acc[part]
    nf = 0
    for t in range(t_lo, t_hi):
        for i in range(d):
            acc = A[off_r[t, 0] * d + i]
            for q in range(1, S):
                acc += A[off_r[t, q] * d + i]
            if read_c != 0.0:
                r[i, 0] = coef * acc - read_c * bs[i, 0]
            else:
                r[i, 0] = coef * acc
        f = flags[t]
        if f == 0:
            sq = 0.0
            for i in range(d):
                v = r[i, 0]
                sq += v * v
                if abs(v) > mx:
                    mx = abs(v)
            sq_sum += sq
            if sq > thr2:
                nf += 1
        else:
            sq_acc[part] += sq_sum
            mx_acc[part] = mx
            nf_acc[part] += nf
            sq_sum = 0.0
            nf = 0
            _special(t, r, 0, s, layer, thr2, f, active, out_active, out_readout, ro_ptr,
                     ro_slot, sq_acc, mx_acc, nf_acc, part)
            mx = mx_acc[part]
        if scatter:
            for i in range(d):
                acc = w[t, i, 0] * r[0, 0]
                for k in range(1, d):
                    acc += w[t, i, k] * r[k, 0]
                for q in range(S):
                    An[off_w[t, q] * d + i] += acc
    sq_acc[part] += sq_sum
    mx_acc[part] = mx
    nf_acc[part] += nf


@njit(**JIT)
def _dense_pass1_d4(A, An, t_lo, t_hi, off_r, off_w, w, coef, read_c, bs, scatter, s, layer,
                    thr2, flags, active, out_active, out_readout, ro_ptr, ro_slot, r, sq_acc,
                    mx_acc, nf_acc, part):
    """``_dense_pass1`` written out for d = 4 (the families' usual width): a circuit's 4 neurons
    at one offset are adjacent, so each gather/scatter step is one contiguous 4-wide access.
    Same order of every addition as ``_dense_pass1``, hence bit-identical results."""
    S = off_r.shape[1]
    sq_sum = 0.0
    mx = mx_acc[part]
    nf = 0
    for t in range(t_lo, t_hi):
        base = off_r[t, 0] * 4
        a0 = A[base]
        a1 = A[base + 1]
        a2 = A[base + 2]
        a3 = A[base + 3]
        for q in range(1, S):
            base = off_r[t, q] * 4
            a0 += A[base]
            a1 += A[base + 1]
            a2 += A[base + 2]
            a3 += A[base + 3]
        if read_c != 0.0:
            a0 = coef * a0 - read_c * bs[0, 0]
            a1 = coef * a1 - read_c * bs[1, 0]
            a2 = coef * a2 - read_c * bs[2, 0]
            a3 = coef * a3 - read_c * bs[3, 0]
        else:
            a0 = coef * a0
            a1 = coef * a1
            a2 = coef * a2
            a3 = coef * a3
        f = flags[t]
        if f == 0:
            sq = a0 * a0
            sq += a1 * a1
            sq += a2 * a2
            sq += a3 * a3
            mx = max(mx, abs(a0), abs(a1), abs(a2), abs(a3))
            sq_sum += sq
            if sq > thr2:
                nf += 1
        else:
            r[0, 0] = a0
            r[1, 0] = a1
            r[2, 0] = a2
            r[3, 0] = a3
            sq_acc[part] += sq_sum
            mx_acc[part] = mx
            nf_acc[part] += nf
            sq_sum = 0.0
            nf = 0
            _special(t, r, 0, s, layer, thr2, f, active, out_active, out_readout, ro_ptr,
                     ro_slot, sq_acc, mx_acc, nf_acc, part)
            mx = mx_acc[part]
        if scatter:
            wt = w[t]
            y0 = wt[0, 0] * a0 + wt[0, 1] * a1 + wt[0, 2] * a2 + wt[0, 3] * a3
            y1 = wt[1, 0] * a0 + wt[1, 1] * a1 + wt[1, 2] * a2 + wt[1, 3] * a3
            y2 = wt[2, 0] * a0 + wt[2, 1] * a1 + wt[2, 2] * a2 + wt[2, 3] * a3
            y3 = wt[3, 0] * a0 + wt[3, 1] * a1 + wt[3, 2] * a2 + wt[3, 3] * a3
            for q in range(S):
                base = off_w[t, q] * 4
                An[base] += y0
                An[base + 1] += y1
                An[base + 2] += y2
                An[base + 3] += y3
    sq_acc[part] += sq_sum
    mx_acc[part] = mx
    nf_acc[part] += nf


@njit(**PARALLEL)
def _forward_split(offsets, weights, bias, n, read_c, inv_indptr, inv_circuits, active, x0,
                   thr2, ro_ptr, ro_slot, sparse_below, out_active, out_readout, out_sq,
                   out_max, out_false, out_on, n_parts):
    """Small-batch driver: samples one after the other, each dense layer split into ``n_parts``
    circuit ranges run in parallel (prange), each scattering into its own buffer; the buffers and
    statistics are reduced serially in part order, so results do not depend on the thread count.
    Sparse layers (few neurons on) run serially."""
    L, T, S = offsets.shape
    d = weights.shape[2]
    D = d * n
    B = active.shape[0]
    P = n_parts
    dt = weights.dtype
    coef = 1.0 / S + read_c
    A2 = np.zeros((D, 1), dtype=dt)
    An_parts = np.zeros((P, D), dtype=dt)
    cnt = np.zeros(1, dtype=np.int64)
    bs = np.zeros((d, 1), dtype=dt)
    rs = np.zeros((P, d, 1), dtype=dt)
    g = np.zeros((T, d), dtype=dt)
    mark = np.zeros(T, dtype=np.bool_)
    touched = np.empty(T, dtype=np.int32)
    flags = _readout_flags(T, ro_ptr, ro_slot)
    sq_p = np.zeros(P)
    mx_p = np.zeros(P)
    nf_p = np.zeros(P, dtype=np.int64)
    sq1 = np.zeros(1)
    mx1 = np.zeros(1)
    nf1 = np.zeros(1, dtype=np.int64)
    for s in range(B):
        _set_flags(flags, s, 1, active, _ACTIVE, True)
        A2[:, :] = 0.0
        _embed_chunk(A2, s, 1, active, x0, weights[0], offsets[0], n)
        _count_cols(A2, cnt)
        out_on[s, 0] = cnt[0] / D
        _relu_bias_cols(A2, bias[0], n, cnt)
        out_on[s, 1] = cnt[0] / D
        for layer in range(L):
            scatter = layer + 1 < L
            lw = layer + 1 if scatter else layer
            An2 = An_parts[0].reshape((D, 1))
            if read_c == 0.0 and cnt[0] < sparse_below * D:
                An_parts[0, :] = 0.0
                sq1[0] = 0.0
                mx1[0] = 0.0
                nf1[0] = 0
                _sparse_pass(A2, An2, 0, inv_indptr[layer], inv_circuits[layer], offsets[lw],
                             weights[lw], n, coef, scatter, s, layer, thr2[layer], flags,
                             active, out_active, out_readout, ro_ptr, ro_slot, g, mark, touched,
                             rs[0], sq1, mx1, nf1)
                out_sq[s, layer] = sq1[0]
                out_max[s, layer] = mx1[0]
                out_false[s, layer] = nf1[0]
            else:
                if read_c != 0.0:
                    _block_sums_cols(A2, n, bs)
                A1 = A2[:, 0]
                sq_p[:] = 0.0
                mx_p[:] = 0.0
                nf_p[:] = 0
                for p in prange(P):
                    An_parts[p, :] = 0.0
                    _dense_pass1(A1, An_parts[p], T * p // P, T * (p + 1) // P, offsets[layer],
                                 offsets[lw], weights[lw], n, coef, read_c, bs, scatter, s,
                                 layer, thr2[layer], flags, active, out_active, out_readout,
                                 ro_ptr, ro_slot, rs[p], sq_p, mx_p, nf_p, p)
                sq = 0.0
                mx = 0.0
                nf = 0
                for p in range(P):
                    sq += sq_p[p]
                    mx = max(mx, mx_p[p])
                    nf += nf_p[p]
                    if p > 0 and scatter:
                        for j in range(D):
                            An_parts[0, j] += An_parts[p, j]
                out_sq[s, layer] = sq
                out_max[s, layer] = mx
                out_false[s, layer] = nf
            if scatter:
                _relu_bias_cols(An2, bias[layer + 1], n, cnt)
                out_on[s, layer + 2] = cnt[0] / D
                A2[:, :] = An2
        _set_flags(flags, s, 1, active, _ACTIVE, False)


# ----------------------------------------------------------------------------- chunks of 8
# The same pass as ``_dense_pass`` for a chunk of exactly 8 columns, written out so that each
# group of 8 adjacent loads / stores is one SIMD operation (generated text, do not edit by hand:
# the eight lanes are identical).

_C8 = 8


@njit(**JIT)
def _dense_pass8(A, An, off_r, off_w, w, n, coef, read_c, bs, scatter, s0, ncol, layer, thr2,
                 flags, active, out_active, out_readout, ro_ptr, ro_slot, r, sq_acc, mx_acc,
                 nf_acc):
    """``_dense_pass`` over all circuits for A, An of shape (D, 8); r (d, 8) work buffer."""
    T, S = off_r.shape
    d = r.shape[0]
    for t in range(T):
        for i in range(d):
            row = off_r[t, 0] * d + i
            a0 = A[row, 0]
            a1 = A[row, 1]
            a2 = A[row, 2]
            a3 = A[row, 3]
            a4 = A[row, 4]
            a5 = A[row, 5]
            a6 = A[row, 6]
            a7 = A[row, 7]
            for q in range(1, S):
                row = off_r[t, q] * d + i
                a0 += A[row, 0]
                a1 += A[row, 1]
                a2 += A[row, 2]
                a3 += A[row, 3]
                a4 += A[row, 4]
                a5 += A[row, 5]
                a6 += A[row, 6]
                a7 += A[row, 7]
            if read_c != 0.0:
                r[i, 0] = coef * a0 - read_c * bs[i, 0]
                r[i, 1] = coef * a1 - read_c * bs[i, 1]
                r[i, 2] = coef * a2 - read_c * bs[i, 2]
                r[i, 3] = coef * a3 - read_c * bs[i, 3]
                r[i, 4] = coef * a4 - read_c * bs[i, 4]
                r[i, 5] = coef * a5 - read_c * bs[i, 5]
                r[i, 6] = coef * a6 - read_c * bs[i, 6]
                r[i, 7] = coef * a7 - read_c * bs[i, 7]
            else:
                r[i, 0] = coef * a0
                r[i, 1] = coef * a1
                r[i, 2] = coef * a2
                r[i, 3] = coef * a3
                r[i, 4] = coef * a4
                r[i, 5] = coef * a5
                r[i, 6] = coef * a6
                r[i, 7] = coef * a7
        f = flags[t]
        if f == 0:
            for s in range(_C8):
                _record_inactive(r, s, s, thr2, sq_acc, mx_acc, nf_acc)
        else:
            for s in range(ncol):
                _special(t, r, s, s0 + s, layer, thr2, f, active, out_active, out_readout,
                         ro_ptr, ro_slot, sq_acc, mx_acc, nf_acc, s)
        if scatter:
            for i in range(d):
                wik = w[t, i, 0]
                y0 = wik * r[0, 0]
                y1 = wik * r[0, 1]
                y2 = wik * r[0, 2]
                y3 = wik * r[0, 3]
                y4 = wik * r[0, 4]
                y5 = wik * r[0, 5]
                y6 = wik * r[0, 6]
                y7 = wik * r[0, 7]
                for k in range(1, d):
                    wik = w[t, i, k]
                    y0 += wik * r[k, 0]
                    y1 += wik * r[k, 1]
                    y2 += wik * r[k, 2]
                    y3 += wik * r[k, 3]
                    y4 += wik * r[k, 4]
                    y5 += wik * r[k, 5]
                    y6 += wik * r[k, 6]
                    y7 += wik * r[k, 7]
                for q in range(S):
                    row = off_w[t, q] * d + i
                    An[row, 0] += y0
                    An[row, 1] += y1
                    An[row, 2] += y2
                    An[row, 3] += y3
                    An[row, 4] += y4
                    An[row, 5] += y5
                    An[row, 6] += y6
                    An[row, 7] += y7

