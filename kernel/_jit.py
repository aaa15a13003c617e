"""Private numba loops of the forward pass (no validation; see ``kernel.engines``).

Contract shared by the drivers ``_forward_factorised`` and ``_forward_sparse``:
  offsets (L, T, S) int32 block offsets of every circuit per layer; weights (L, T, d, d) float;
  bias (L, d); n block size; read_c the c of the corrected read-out (0 for plain);
  active (B, z) int64 distinct circuits per sample; x0 (B, z, d) their inputs;
  thresholds (L,) false-activation threshold per layer 1..L; readout_ids (R,) int64.
Outputs (zero-filled by the caller), layer axis = layers 1..L unless said otherwise:
  out_active (B, L, z, d) read-outs of the active circuits; out_readout (B, L, R, d) of readout_ids;
  out_sq (B, L) sum over inactive circuits of |read-out|^2; out_max (B, L) max abs component over
  inactive circuits; out_false (B, L) count of inactive circuits with |read-out| > threshold;
  out_on (B, L+1) fraction of large neurons > 0 at layers 0..L (layer 0: the embedded input A^0).
The batch is split into n_chunks chunks (one per thread, prange); each allocates its buffers once.
"""

from __future__ import annotations

import numpy as np

from kernel._numba import JIT, PARALLEL, njit, prange


@njit(**JIT)
def _embed_inputs(A, s, active, x0, weights, offsets, n):
    """A += sum over active t of E_t^1 w_t^1 a_t^0 (layer-0 placement, SPEC §3)."""
    z = active.shape[1]
    d = weights.shape[2]
    S = offsets.shape[2]
    for j in range(z):
        t = active[s, j]
        for i in range(d):
            acc = 0.0
            for k in range(d):
                acc += weights[0, t, i, k] * x0[s, j, k]
            for q in range(S):
                A[i * n + offsets[0, t, q]] += acc


@njit(**JIT)
def _relu_bias(A, bias_l, n, nz):
    """A <- ReLU(A + B^l) in place; writes the indices of the nonzeros to nz, returns their count."""
    d = bias_l.shape[0]
    m = 0
    for i in range(d):
        b = bias_l[i]
        for k in range(n):
            v = A[i * n + k] + b
            if v > 0.0:
                A[i * n + k] = v
                nz[m] = i * n + k
                m += 1
            else:
                A[i * n + k] = 0.0
    return m


@njit(**JIT)
def _count_positive(A):
    m = 0
    for v in A:
        if v > 0.0:
            m += 1
    return m


@njit(**JIT)
def _block_sums(A, n, bs):
    d = bs.shape[0]
    for i in range(d):
        acc = 0.0
        for k in range(n):
            acc += A[i * n + k]
        bs[i] = acc


@njit(**JIT)
def _record(r, idx, m, pos, s, layer, thr, out_active, out_readout, readout_ids,
            out_sq, out_max, out_false):
    """Statistics of the read-outs r[idx[:m]] at one layer; circuits outside idx read 0."""
    d = r.shape[1]
    sq_sum = 0.0
    mx = 0.0
    nf = 0
    thr2 = thr * thr
    for a in range(m):
        t = idx[a]
        j = pos[t]
        if j >= 0:
            for i in range(d):
                out_active[s, layer, j, i] = r[t, i]
            continue
        sq = 0.0
        for i in range(d):
            v = r[t, i]
            sq += v * v
            if abs(v) > mx:
                mx = abs(v)
        sq_sum += sq
        if sq > thr2:
            nf += 1
    out_sq[s, layer] = sq_sum
    out_max[s, layer] = mx
    out_false[s, layer] = nf
    for a in range(readout_ids.shape[0]):
        for i in range(d):
            out_readout[s, layer, a, i] = r[readout_ids[a], i]


@njit(**JIT)
def _scatter(r, idx, m, w_l, offsets_l, n, An):
    """An += sum over t in idx[:m] of E_t^l (w_t^l r_t)."""
    d = w_l.shape[1]
    S = offsets_l.shape[1]
    for a in range(m):
        t = idx[a]
        for i in range(d):
            acc = 0.0
            for k in range(d):
                acc += w_l[t, i, k] * r[t, k]
            for q in range(S):
                An[i * n + offsets_l[t, q]] += acc


@njit(**PARALLEL)
def _forward_factorised(offsets, weights, bias, n, read_c, active, x0, thresholds, readout_ids,
                        out_active, out_readout, out_sq, out_max, out_false, out_on, n_chunks):
    """Factorised engine: every layer gathers r_t = U_t A for all T, then scatters E_t w_t r_t."""
    L, T, S = offsets.shape
    d = weights.shape[2]
    D = d * n
    B, z = active.shape
    coef = 1.0 / S + read_c
    for c in prange(n_chunks):
        A = np.zeros(D, dtype=weights.dtype)
        An = np.zeros(D, dtype=weights.dtype)
        r = np.zeros((T, d), dtype=weights.dtype)
        nz = np.empty(D, dtype=np.int64)
        bs = np.zeros(d, dtype=weights.dtype)
        pos = np.full(T, -1, dtype=np.int64)
        every = np.arange(T)
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            for j in range(z):
                pos[active[s, j]] = j
            A[:] = 0.0
            _embed_inputs(A, s, active, x0, weights, offsets, n)
            out_on[s, 0] = _count_positive(A) / D
            out_on[s, 1] = _relu_bias(A, bias[0], n, nz) / D
            for layer in range(L):
                if read_c != 0.0:
                    _block_sums(A, n, bs)
                for t in range(T):
                    for i in range(d):
                        acc = 0.0
                        for q in range(S):
                            acc += A[i * n + offsets[layer, t, q]]
                        r[t, i] = coef * acc - read_c * bs[i]
                _record(r, every, T, pos, s, layer, thresholds[layer], out_active, out_readout,
                        readout_ids, out_sq, out_max, out_false)
                if layer + 1 < L:
                    An[:] = 0.0
                    _scatter(r, every, T, weights[layer + 1], offsets[layer + 1], n, An)
                    out_on[s, layer + 2] = _relu_bias(An, bias[layer + 1], n, nz) / D
                    A, An = An, A
            for j in range(z):
                pos[active[s, j]] = -1


@njit(**PARALLEL)
def _forward_sparse(offsets, weights, bias, n, read_c, inv_indptr, inv_circuits, active, x0,
                    thresholds, readout_ids, out_active, out_readout, out_sq, out_max, out_false,
                    out_on, n_chunks):
    """Activation-sparse engine [N]: only nonzero neurons are gathered, through the inverse index.

    Circuits none of whose neurons is on read exactly 0 and are skipped (plain/random). With the
    corrected read-out every circuit reads -c * block sums, so all circuits are processed.
    """
    L, T, S = offsets.shape
    d = weights.shape[2]
    D = d * n
    B, z = active.shape
    coef = 1.0 / S + read_c
    for c in prange(n_chunks):
        A = np.zeros(D, dtype=weights.dtype)
        An = np.zeros(D, dtype=weights.dtype)
        g = np.zeros((T, d), dtype=weights.dtype)  # kept zero outside the touched circuits
        nz = np.empty(D, dtype=np.int64)
        touched = np.empty(T, dtype=np.int64)
        mark = np.zeros(T, dtype=np.bool_)
        bs = np.zeros(d, dtype=weights.dtype)
        pos = np.full(T, -1, dtype=np.int64)
        every = np.arange(T)
        for s in range(c * B // n_chunks, (c + 1) * B // n_chunks):
            for j in range(z):
                pos[active[s, j]] = j
            A[:] = 0.0
            _embed_inputs(A, s, active, x0, weights, offsets, n)
            out_on[s, 0] = _count_positive(A) / D
            n_nz = _relu_bias(A, bias[0], n, nz)
            out_on[s, 1] = n_nz / D
            for layer in range(L):
                m = 0
                for a in range(n_nz):
                    idx = nz[a]
                    i = idx // n
                    k = idx - i * n
                    v = A[idx]
                    for p in range(inv_indptr[layer, k], inv_indptr[layer, k + 1]):
                        t = inv_circuits[layer, p]
                        if not mark[t]:
                            mark[t] = True
                            touched[m] = t
                            m += 1
                        g[t, i] += v
                if read_c != 0.0:
                    _block_sums(A, n, bs)
                    for t in range(T):
                        for i in range(d):
                            g[t, i] = coef * g[t, i] - read_c * bs[i]
                    idx_list = every
                    m = T
                else:
                    for a in range(m):
                        t = touched[a]
                        for i in range(d):
                            g[t, i] *= coef
                    idx_list = touched
                _record(g, idx_list, m, pos, s, layer, thresholds[layer], out_active,
                        out_readout, readout_ids, out_sq, out_max, out_false)
                if layer + 1 < L:
                    An[:] = 0.0
                    _scatter(g, idx_list, m, weights[layer + 1], offsets[layer + 1], n, An)
                    n_nz = _relu_bias(An, bias[layer + 1], n, nz)
                    out_on[s, layer + 2] = n_nz / D
                    A, An = An, A
                for a in range(m):
                    t = idx_list[a]
                    mark[t] = False
                    for i in range(d):
                        g[t, i] = 0.0
            for j in range(z):
                pos[active[s, j]] = -1
