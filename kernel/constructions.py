"""How the large weights W^l (l >= 2) are formed: ours (``cis2``) and the follow-up's three.

Every construction acts on a layer as the ``cis2`` pass plus a few cheap terms, which is all an
engine needs (never a D x D matrix):

1. per circuit t: the read-out ``r_t = U_t^{l-1} A`` (``u = (1/S + read_c) e - read_c 1`` per
   block), then ``y_t = M_t r_t`` scattered onto t's neurons e_t^l (``cis2``: M_t = w_t);
2. a write-offset term: neuron (i, k) receives ``(N_k bs)_i`` (bs_j the sum of block j of A);
3. a rank-one term: every neuron of block i receives
   ``rho_i = sum_m (G_m A_(., m))_i + (R bs)_i``;
4. ``ris-capped`` only: a sparse n x n matrix K^l applied in every block: block i receives
   ``sum_j sparse_weight_ij (K^l A_j)``.

N (n, d, d), G (n, d, d) and R (d, d) are per-layer sums over circuits, so terms 2-4 cost
O(n d^2 + nnz(K) d) per sample against the pass's O(T d (S + d)).

With block (i, j) mapping small neuron j to small neuron i, ``e_t^l`` circuit t's offsets at
layer l, ``acc_t = (e_t^{l-1})^T A_j`` the raw sums, ``w_bar`` the mean of the circuits' weights
over circuits and ``dw_t = w_t - w_bar``:

- ``cis2``: ``W = sum_t E_t w_t U_t``; read_c the variant's (0 for plain); no extra terms.
- ``ris-uncapped``: ``W_ij = sum_t w_t,ij u_t e_t^T`` with ``u_t = (1/S + c) e_t - c 1``; its
  read-out is u_t, so ``(1/S + c) acc_t = r_t + c bs``: M_t = w_t, ``N_k = c sum_{t: k in e_t^l}
  w_t`` and ``G_m = -c sum_{t: m in e_t^{l-1}} w_t``.
- ``ris-split``: ``W_ij = w_bar_ij sum_t u_t e_t^T + (1/S) sum_t dw_t,ij e_t e_t^T``; read-out u_t;
  with ``M0_t = w_t/S + c w_bar``: M_t = M0_t/(1/S + c), ``N_k = c sum_{t: k in e_t^l} M_t``,
  ``G_m = -c load_m w_bar`` (load_m the circuits using offset m at layer l-1).
- ``ris-capped``: ``W_ij = (1/S)[sum_t dw_t,ij e_t e_t^T + w_bar_ij (C - kappa (1 1^T - C))]``;
  plain read-out. ``C = sum_t e_t e_t^T - K`` with K the excess multiplicity of the offset
  pairs routed by two or more circuits (far fewer than C's ones), so the ones of C ride on the
  per-circuit pass: M_t = w_t + kappa w_bar, ``R = -(kappa/S) w_bar`` and sparse_weight
  ``-(1 + kappa) w_bar/S`` on K. C itself is kept (``cap_*``) for checks and the dense form.

Here ``p = max(0, S(T S/n - 1)/(T - 1))``, ``c = p/((S - p) S)``, ``C^l = min(1, sum_t e_t^l
(e_t^{l-1})^T)`` and ``kappa^l = kappa_scale * X/(P - X)`` with X the number of pairs t < u
(circuit index after the layer's shuffle) of a neuron of t at layer l and one of u at layer l-1
linked by C^l, and P = S^2 T (T - 1)/2 all such pairs. Layer 0 and layer 1 are the same for
every construction: ``A^0 = sum_active E_t w_t^1 a_t^0`` and ``W^1 = I``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kernel import patterns, validate

#: construction name -> one-line description; ``cis2`` is the default
CONSTRUCTIONS: dict[str, str] = {
    "cis2": "sum_t E_t w_t U_t (read-out per the variant)",
    "ris-uncapped": "write-side correction u_t e_t^T on the whole weight; read-out u_t",
    "ris-split": "write-side correction on the mean weight only; read-out u_t",
    "ris-capped": "mean weight through the capped offset matrix C - kappa (1 1^T - C); plain read",
}


@dataclass(frozen=True, eq=False)
class Construction:
    """Everything the engines need to apply W^l, stacked over layers (index l-1 holds layer l;
    index 0, layer 1, is W^1 = I: its weights are the circuits' w^1 used by the embedding and its
    extra terms are zero).

    Attributes
    ----------
    name : one of ``CONSTRUCTIONS``.
    p, c : mean pair overlap S(TS/n - 1)/(T - 1) and c = p/((S - p) S) (ris-uncapped, ris-split;
        0 for cis2).
    kappa_scale : factor on kappa (1: the follow-up's default, 1.15 its "more suppression").
    read_c : c of the read-out u_t = (1/S + read_c) e_t - read_c 1 (every layer).
    wbar : (L, d, d) mean weight over circuits per layer.
    weights : (L, T, d, d) per-circuit weights M_t applied to the read-outs r_t.
    write_offset : (L, n, d, d) N_k; read_offset : (L, n, d, d) G_m; rank_bs : (L, d, d) R.
    cap_indptr : (L, n+1) int64 CSR of C^l, rows = offsets at layer l, positions into
        ``cap_indices`` (one array over all layers; empty unless ris-capped).
    cap_indices : (nnz,) int32 columns = offsets at layer l-1.
    sparse_indptr, sparse_indices, sparse_values : the same CSR layout for K^l (values > 0).
    sparse_weight : (L, d, d) the block weights of K^l.
    kappa : (L,) kappa^l actually used (times kappa_scale; 0 unless ris-capped).
    """

    name: str
    p: float
    c: float
    kappa_scale: float
    read_c: float
    wbar: np.ndarray
    weights: np.ndarray
    write_offset: np.ndarray
    read_offset: np.ndarray
    rank_bs: np.ndarray
    cap_indptr: np.ndarray
    cap_indices: np.ndarray
    sparse_indptr: np.ndarray
    sparse_indices: np.ndarray
    sparse_values: np.ndarray
    sparse_weight: np.ndarray
    kappa: np.ndarray

    @property
    def has_extra(self) -> bool:
        """Whether any term beyond the per-circuit pass is nonzero."""
        return bool(np.any(self.write_offset) or np.any(self.read_offset)
                    or np.any(self.rank_bs) or self.has_sparse)

    @property
    def has_sparse(self) -> bool:
        return self.sparse_indices.size > 0

    def weights_as(self, dtype: Any) -> np.ndarray:
        """``weights`` in ``dtype``, C-contiguous; converted once, cached."""
        dtype = np.dtype(dtype)
        cache = self.__dict__.setdefault("_weights_cache", {})
        if dtype not in cache:
            cache[dtype] = np.ascontiguousarray(self.weights, dtype=dtype)
        return cache[dtype]

    def kernel_args(self, dtype: Any = np.float64) -> tuple[np.ndarray, ...]:
        """The extra terms as the compiled passes take them (``kernel._jit_constructions``):
        (N, G, R, sparse_indptr, sparse_indices, sparse_values, sparse_weight, flags) with
        flags = (has_extra, has_sparse); float arrays in ``dtype``."""
        dt = np.dtype(dtype)
        return (
            np.ascontiguousarray(self.write_offset, dtype=dt),
            np.ascontiguousarray(self.read_offset, dtype=dt),
            np.ascontiguousarray(self.rank_bs, dtype=dt),
            self.sparse_indptr,
            self.sparse_indices,
            np.ascontiguousarray(self.sparse_values, dtype=dt),
            np.ascontiguousarray(self.sparse_weight, dtype=dt),
            np.array([self.has_extra, self.has_sparse], dtype=np.int64),
        )


# ----------------------------------------------------------------------------- capped offsets


def capped_offsets(off_w: np.ndarray, off_r: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of C = min(1, sum_t e_t^w (e_t^r)^T): indptr (n+1,) int64, indices (nnz,) int32.

    Row k (an offset of the writing layer) lists, sorted, the offsets m of the reading layer that
    some circuit routes to k; at most T S^2 ones, built from the T S^2 pairs without an n x n
    array.
    """
    T, S = off_w.shape
    rows = np.repeat(off_w.astype(np.int64), S, axis=1).ravel()  # (T*S*S,) k of (t, q, r)
    cols = np.tile(off_r.astype(np.int64), (1, S)).ravel()  # m of (t, q, r)
    keys = np.unique(rows * n + cols)
    indptr = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * n).astype(np.int64)
    return indptr, (keys % n).astype(np.int32)


def repeated_routes(
    off_w: np.ndarray, off_r: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K = sum_t e_t^w (e_t^r)^T - C: the offset pairs (k, m) routed by two or more circuits,
    with value (number of circuits - 1). CSR: indptr (n+1,) int64, indices int32, values
    float64."""
    T, S = off_w.shape
    rows = np.repeat(off_w.astype(np.int64), S, axis=1).ravel()
    cols = np.tile(off_r.astype(np.int64), (1, S)).ravel()
    keys, counts = np.unique(rows * n + cols, return_counts=True)
    many = counts > 1
    keys, extra = keys[many], (counts[many] - 1).astype(np.float64)
    indptr = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * n).astype(np.int64)
    return indptr, (keys % n).astype(np.int32), extra


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def linked_pairs_below(
    off_w: np.ndarray, off_r: np.ndarray, n: int, indptr: np.ndarray, indices: np.ndarray,
    chunk: int = 1 << 21,
) -> int:
    """X = sum_{t<u} (e_t^w)^T C e_u^r: pairs (neuron of t at the writing layer, neuron of u at the
    reading layer), t < u by circuit index, that C links.

    Counted as sum over u, m in e_u^r, k with C_km = 1 of #{t < u : k in e_t^w}, by binary search
    in the sorted (offset, circuit) list: O(T S^2 load log T), no loop over pairs of circuits.
    The (u, m, k) triples number about T^2 S^3 / n (10^9 at T = 134000, n = 4000), so they are
    expanded ``chunk`` at a time (a few of their int64 arrays at once); the count is the same.
    """
    T, S = off_w.shape
    # columns of C: CSC from the CSR (rows k per column m)
    counts = np.diff(indptr)
    row_of = np.repeat(np.arange(n, dtype=np.int64), counts)
    order = np.argsort(indices, kind="stable")
    col_rows = row_of[order]
    col_ptr = np.searchsorted(indices[order], np.arange(n + 1))
    # (u, m) for every circuit u and m in e_u^r, expanded over the rows k of column m
    u = np.repeat(np.arange(T, dtype=np.int64), S)
    m = off_r.ravel().astype(np.int64)
    per = col_ptr[m + 1] - col_ptr[m]
    # #{t < u : k in e_t^w} from the sorted keys k*T + t
    keys = np.sort((off_w.astype(np.int64) * T + np.arange(T)[:, None]).ravel())
    ends = np.cumsum(per)
    cuts = np.searchsorted(ends, np.arange(chunk, ends[-1] if ends.size else 0, chunk),
                           side="right")
    total = 0
    for lo, hi in zip([0, *cuts], [*cuts, per.size]):
        p = per[lo:hi]
        u_rep = np.repeat(u[lo:hi], p)
        start = np.repeat(col_ptr[m[lo:hi]], p)
        within = np.arange(p.sum()) - np.repeat(np.cumsum(p) - p, p)
        k = col_rows[start + within]
        total += int((np.searchsorted(keys, k * T + u_rep) - np.searchsorted(keys, k * T)).sum())
    return total


def kappa_of(X: int, T: int, S: int) -> float:
    """kappa = X/(P - X) with P = S^2 T (T - 1)/2 (0 when there are no pairs)."""
    P = S * S * T * (T - 1) / 2
    return 0.0 if P - X <= 0 else X / (P - X)


# ----------------------------------------------------------------------------- building


def write_correction(n: int, S: int, T: int) -> tuple[float, float]:
    """(p, c) of the follow-up's write-side correction: p = max(0, S(TS/n - 1)/(T - 1)),
    c = p/((S - p) S). The formula assumes every offset in use (T S >= n); below that it turns
    negative, which no overlap can be, so it is clamped at 0 (then c = 0)."""
    p = max(0.0, patterns.pair_overlap_mean(n, S, T))
    return p, patterns.read_correction(S, p)


def _offset_sums(M: np.ndarray, off: np.ndarray, n: int) -> np.ndarray:
    """(n, d, d): sum of M_t (T, d, d) over the circuits t using each offset (off (T, S))."""
    T, S = off.shape
    out = np.zeros((n, *M.shape[1:]))
    np.add.at(out, off.ravel(), np.repeat(M, S, axis=0))
    return out


def build_construction(
    name: str,
    weights: np.ndarray,
    offsets: np.ndarray,
    n: int,
    *,
    read_c: float = 0.0,
    kappa_scale: float = 1.0,
    c: float | None = None,
    wbar: np.ndarray | None = None,
) -> Construction:
    """The data of construction ``name`` for circuits ``weights`` (L, T, d, d) on patterns
    ``offsets`` (L, T, S) in blocks of n.

    Parameters
    ----------
    read_c : the variant's read-out constant (``cis2`` only; 0 for plain).
    kappa_scale : factor on kappa (``ris-capped``), >= 0.
    c, wbar : override the write-side constant and the mean weight ((L, d, d)); default from the
        pattern counts and the mean over circuits (the overrides exist for identities such as
        "c = 0 and w_bar = 0 reduce ris-uncapped and ris-split to cis2").
    """
    name = validate.choice("construction", name, CONSTRUCTIONS)
    kappa_scale = validate.real("kappa_scale", kappa_scale, low=0.0)
    L, T, d, _ = weights.shape
    S = offsets.shape[2]
    if name == "cis2":
        # no write-side correction, and no override of it (n = S, where its formula divides by
        # zero, is a valid cis2 network); the read-out keeps the variant's own c
        p, c, out_read_c = 0.0, 0.0, read_c
    else:
        p, c_formula = write_correction(n, S, T)
        c = c_formula if c is None else float(c)
        out_read_c = c
    wbar = weights.mean(axis=1) if wbar is None else np.asarray(wbar, dtype=np.float64)
    # cis2 keeps the circuits' own array (no copy: T may be 10^6)
    M = weights if name == "cis2" else np.array(weights, dtype=np.float64, copy=True)
    N = np.zeros((L, n, d, d))
    G = np.zeros((L, n, d, d))
    R = np.zeros((L, d, d))
    sp_w = np.zeros((L, d, d))
    kappa = np.zeros(L)
    cap_ptr = np.zeros((L, n + 1), dtype=np.int64)
    cap_idx: list[np.ndarray] = []
    sp_ptr = np.zeros((L, n + 1), dtype=np.int64)
    sp_idx: list[np.ndarray] = []
    sp_val: list[np.ndarray] = []
    for layer in range(2, L + 1):
        li = layer - 1
        off_w, off_r = offsets[li], offsets[li - 1]
        if name == "ris-uncapped":
            N[li] = c * _offset_sums(weights[li], off_w, n)
            G[li] = -c * _offset_sums(weights[li], off_r, n)
        elif name == "ris-split":
            M[li] = (weights[li] / S + c * wbar[li]) / (1.0 / S + c)
            N[li] = c * _offset_sums(M[li], off_w, n)
            load = np.bincount(off_r.ravel(), minlength=n).astype(np.float64)
            G[li] = -c * load[:, None, None] * wbar[li]
        elif name == "ris-capped":
            ptr, idx = capped_offsets(off_w, off_r, n)
            X = linked_pairs_below(off_w, off_r, n, ptr, idx)
            kap = kappa_scale * kappa_of(X, T, S)
            kappa[li] = kap
            M[li] = weights[li] + kap * wbar[li]
            R[li] = -kap * wbar[li] / S
            sp_w[li] = -(1.0 + kap) * wbar[li] / S
            cap_ptr[li] = ptr + sum(a.size for a in cap_idx)
            cap_idx.append(idx)
            kptr, kidx, kval = repeated_routes(off_w, off_r, n)
            sp_ptr[li] = kptr + sum(a.size for a in sp_idx)
            sp_idx.append(kidx)
            sp_val.append(kval)
    if name == "ris-capped":
        out_read_c = 0.0
    return Construction(
        name=name,
        p=float(p),
        c=float(c),
        kappa_scale=kappa_scale,
        read_c=float(out_read_c),
        wbar=np.ascontiguousarray(wbar),
        weights=np.ascontiguousarray(M),
        write_offset=N,
        read_offset=G,
        rank_bs=R,
        cap_indptr=cap_ptr,
        cap_indices=_joined(cap_idx, np.int32),
        sparse_indptr=sp_ptr,
        sparse_indices=_joined(sp_idx, np.int32),
        sparse_values=_joined(sp_val, np.float64),
        sparse_weight=sp_w,
        kappa=kappa,
    )


# ----------------------------------------------------------------------------- dense form


def dense_weight(con: Construction, offsets: np.ndarray, n: int, layer: int) -> np.ndarray:
    """W^l (D x D) assembled from the construction's data (small D: the ``dense`` engine)."""
    L, T, d, _ = con.weights.shape
    S = offsets.shape[2]
    D = d * n
    li = layer - 1
    off_r, off_w = offsets[layer - 2], offsets[layer - 1]
    M = con.weights[li]
    coef, rc = 1.0 / S + con.read_c, con.read_c
    rows = np.arange(d)[None, :, None] * n + off_w[:, None, :]  # (T, d, S)
    cols = np.arange(d)[None, :, None] * n + off_r[:, None, :]  # (T, d, S)
    flat = rows[:, :, None, :, None] * D + cols[:, None, :, None, :]  # (T, d, d, S, S)
    vals = np.broadcast_to((M * coef)[:, :, :, None, None], flat.shape)
    W = np.bincount(flat.ravel(), weights=vals.ravel(), minlength=D * D).reshape(D, D)
    Wb = W.reshape(d, n, d, n)  # (i, k, j, m) view
    # the -read_c 1 part of the read-out: row (i, k in e_t) gets -read_c M_t[i, j] on block j;
    # the write-offset term N_k bs: row (i, k) gets N_k[i, j] on all of block j
    per_row = con.write_offset[li].transpose(1, 0, 2).copy()  # (i, k, j)
    if rc:
        per_row -= rc * _offset_sums(M, off_w, n).transpose(1, 0, 2)
    Wb += per_row[:, :, :, None]
    # rho = sum_m G_m A_m + R bs on every row of block i
    Wb += (con.read_offset[li].transpose(1, 2, 0) + con.rank_bs[li][:, :, None])[:, None, :, :]
    if con.has_sparse:
        ptr = con.sparse_indptr[li]
        K = np.zeros((n, n))
        for k in range(n):
            sl = slice(ptr[k], ptr[k + 1])
            K[k, con.sparse_indices[sl]] = con.sparse_values[sl]
        Wb += np.einsum("ij,km->ikjm", con.sparse_weight[li], K)
    return W
