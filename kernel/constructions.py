"""How the large weights W^l (l >= 2) are formed: ours (``cis2``) and the follow-up's three.

Every construction acts on a layer as the same four pieces, which is all an engine needs
(never a D x D matrix):

1. per circuit t: gather ``x_t = gather * sum_{m in e_t^{l-1}} A_(j,m) - gather_shift * bs_j``
   (bs_j the sum of block j), then scatter ``y_t = M_t x_t`` onto t's neurons e_t^l;
2. a rank-one part: every neuron of block i receives
   ``rho_i = rank_y * (sum_t y_t)_i + (rank_x @ sum_t x_t)_i + (rank_bs @ bs)_i``;
3. ``ris-capped`` only: a sparse 0/1 offset matrix C^l (n x n, at most T S^2 ones), applied in
   every block: block i receives ``sum_j cap_weight_ij (C^l A_j)``;
4. the read-out ``u_t = (1/S + read_c) e_t - read_c 1`` of each circuit (per layer).

With block (i, j) mapping small neuron j to small neuron i, ``e_t^l`` circuit t's offsets at
layer l, ``w_bar`` the mean of the circuits' weights over circuits and ``dw_t = w_t - w_bar``:

- ``cis2``: ``W = sum_t E_t w_t U_t``; M_t = w_t, gather 1/S + c_read, shift c_read (the
  variant's read-out constant, 0 for plain).
- ``ris-uncapped``: ``W_ij = sum_t w_t,ij u_t e_t^T``; M_t = (1/S + c) w_t, gather 1, and the
  ``-c 1`` of u_t gives ``rho = -c sum_t w_t x_t = -c/(1/S + c) sum_t y_t``.
- ``ris-split``: ``W_ij = w_bar_ij sum_t u_t e_t^T + (1/S) sum_t dw_t,ij e_t e_t^T``;
  M_t = w_t/S + c w_bar, ``rho = -c w_bar sum_t x_t``.
- ``ris-capped``: ``W_ij = (1/S)[sum_t dw_t,ij e_t e_t^T + w_bar_ij (C - kappa (1 1^T - C))]``;
  M_t = dw_t/S, cap_weight (1 + kappa) w_bar/S, ``rho = -(kappa/S) w_bar bs``; plain read-out.

Here ``p = S(T S/n - 1)/(T - 1)``, ``c = p/((S - p) S)``, ``C^l = min(1, sum_t e_t^l
(e_t^{l-1})^T)`` and ``kappa^l = kappa_scale * X/(P - X)`` with X the number of pairs t < u
(circuit index after the layer's shuffle) of a neuron of t at layer l and one of u at layer l-1
linked by C^l, and P = S^2 T (T - 1)/2 all such pairs. Layer 0 and layer 1 are the same for
every construction: ``A^0 = sum_active E_t w_t^1 a_t^0`` and ``W^1 = I``.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    other entries are unused zeros).

    Attributes
    ----------
    name : one of ``CONSTRUCTIONS``.
    p, c : mean pair overlap S(TS/n - 1)/(T - 1) and c = p/((S - p) S) (ris-* write side).
    kappa_scale : factor on kappa (1: the follow-up's default, 1.15 its "more suppression").
    read_c : c of the read-out u_t = (1/S + read_c) e_t - read_c 1 (every layer).
    wbar : (L, d, d) mean weight over circuits per layer.
    weights : (L, T, d, d) effective per-circuit weights M_t.
    gather, gather_shift : (L,) coefficients of the gather x_t.
    rank_y : (L,); rank_x, rank_bs, cap_weight : (L, d, d) the rank-one and capped parts.
    cap_indptr : (L, n+1) int64 CSR of C^l, rows = offsets at layer l, positions into
        ``cap_indices`` (one array over all layers; empty unless ris-capped).
    cap_indices : (nnz,) int32 columns = offsets at layer l-1.
    kappa : (L,) kappa^l actually used (times kappa_scale; 0 unless ris-capped).
    """

    name: str
    p: float
    c: float
    kappa_scale: float
    read_c: float
    wbar: np.ndarray
    weights: np.ndarray
    gather: np.ndarray
    gather_shift: np.ndarray
    rank_y: np.ndarray
    rank_x: np.ndarray
    rank_bs: np.ndarray
    cap_weight: np.ndarray
    cap_indptr: np.ndarray
    cap_indices: np.ndarray
    kappa: np.ndarray

    @property
    def has_rank_one(self) -> bool:
        return bool(np.any(self.rank_y) or np.any(self.rank_x) or np.any(self.rank_bs))

    @property
    def has_cap(self) -> bool:
        return self.cap_indices.size > 0

    def cap_matrix(self, layer: int, n: int) -> np.ndarray:
        """C^l as a dense n x n 0/1 array (small n; tests and the dense oracle)."""
        ptr = self.cap_indptr[layer - 1]
        C = np.zeros((n, n))
        for k in range(n):
            C[k, self.cap_indices[ptr[k] : ptr[k + 1]]] = 1.0
        return C


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


def linked_pairs_below(
    off_w: np.ndarray, off_r: np.ndarray, n: int, indptr: np.ndarray, indices: np.ndarray
) -> int:
    """X = sum_{t<u} (e_t^w)^T C e_u^r: pairs (neuron of t at the writing layer, neuron of u at the
    reading layer), t < u by circuit index, that C links.

    Counted as sum over u, m in e_u^r, k with C_km = 1 of #{t < u : k in e_t^w}, by binary search
    in the sorted (offset, circuit) list: O(T S^2 load log T), no loop over pairs of circuits.
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
    u_rep = np.repeat(u, per)
    start = np.repeat(col_ptr[m], per)
    within = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    k = col_rows[start + within]
    # #{t < u : k in e_t^w} from the sorted keys k*T + t
    keys = np.sort((off_w.astype(np.int64) * T + np.arange(T)[:, None]).ravel())
    below = np.searchsorted(keys, k * T + u_rep) - np.searchsorted(keys, k * T)
    return int(below.sum())


def kappa_of(X: int, T: int, S: int) -> float:
    """kappa = X/(P - X) with P = S^2 T (T - 1)/2 (0 when there are no pairs)."""
    P = S * S * T * (T - 1) / 2
    return 0.0 if P - X <= 0 else X / (P - X)


# ----------------------------------------------------------------------------- building


def write_correction(n: int, S: int, T: int) -> tuple[float, float]:
    """(p, c) of the follow-up's write-side correction: p = S(TS/n - 1)/(T - 1),
    c = p/((S - p) S)."""
    p = patterns.pair_overlap_mean(n, S, T)
    return p, patterns.read_correction(S, p)


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
    p, c_formula = write_correction(n, S, T)
    c = c_formula if c is None else float(c)
    wbar = weights.mean(axis=1) if wbar is None else np.asarray(wbar, dtype=np.float64)
    zero_dd = np.zeros((L, d, d))
    eff = np.array(weights, dtype=np.float64, copy=True)
    gather = np.ones(L)
    shift = np.zeros(L)
    rank_y = np.zeros(L)
    rank_x, rank_bs, cap_w = zero_dd.copy(), zero_dd.copy(), zero_dd.copy()
    kappa = np.zeros(L)
    cap_ptr = np.zeros((L, n + 1), dtype=np.int64)
    cap_idx: list[np.ndarray] = []
    out_read_c = c
    if name == "cis2":
        gather[:] = 1.0 / S + read_c
        shift[:] = read_c
        out_read_c = read_c
        p, c = 0.0, 0.0
    elif name == "ris-uncapped":
        eff[1:] = (1.0 / S + c) * weights[1:]
        rank_y[1:] = -c / (1.0 / S + c)
    elif name == "ris-split":
        eff[1:] = weights[1:] / S + c * wbar[1:, None]
        rank_x[1:] = -c * wbar[1:]
    else:  # ris-capped
        out_read_c = 0.0
        eff[1:] = (weights[1:] - wbar[1:, None]) / S
        total = 0
        for layer in range(2, L + 1):
            off_w, off_r = offsets[layer - 1], offsets[layer - 2]
            ptr, idx = capped_offsets(off_w, off_r, n)
            X = linked_pairs_below(off_w, off_r, n, ptr, idx)
            kap = kappa_scale * kappa_of(X, T, S)
            kappa[layer - 1] = kap
            cap_w[layer - 1] = (1.0 + kap) * wbar[layer - 1] / S
            rank_bs[layer - 1] = -kap * wbar[layer - 1] / S
            cap_ptr[layer - 1] = ptr + total
            cap_idx.append(idx)
            total += idx.size
    return Construction(
        name=name,
        p=float(p),
        c=float(c),
        kappa_scale=kappa_scale,
        read_c=float(out_read_c),
        wbar=np.ascontiguousarray(wbar),
        weights=np.ascontiguousarray(eff),
        gather=gather,
        gather_shift=shift,
        rank_y=rank_y,
        rank_x=rank_x,
        rank_bs=rank_bs,
        cap_weight=cap_w,
        cap_indptr=cap_ptr,
        cap_indices=(
            np.concatenate(cap_idx).astype(np.int32) if cap_idx else np.zeros(0, dtype=np.int32)
        ),
        kappa=kappa,
    )


# ----------------------------------------------------------------------------- applying (NumPy)


def apply_layer(
    con: Construction, offsets: np.ndarray, n: int, layer: int, A: np.ndarray
) -> np.ndarray:
    """W^l A for rows A (b, D) in factorised form (NumPy; no D x D matrix), 2 <= layer <= L.

    The reference of what the engines compute per layer; ``kernel.decompose`` uses it for the
    realised pre-activation of every construction.
    """
    b, D = A.shape
    L, T, d, _ = con.weights.shape
    li = layer - 1
    off_r, off_w = offsets[layer - 2], offsets[layer - 1]
    blocks = A.reshape(b, d, n)
    bs = blocks.sum(axis=2)  # (b, d)
    sums = blocks[:, :, off_r].sum(axis=-1).transpose(0, 2, 1)  # (b, T, d)
    x = con.gather[li] * sums - con.gather_shift[li] * bs[:, None, :]
    y = np.einsum("tij,btj->bti", con.weights[li], x)
    rows = np.arange(d)[None, :, None] * n + off_w[:, None, :]  # (T, d, S)
    flat = (np.arange(b)[:, None, None, None] * D + rows[None]).ravel()
    vals = np.broadcast_to(y[..., None], (b, T, d, off_w.shape[1])).ravel()
    out = np.bincount(flat, weights=vals, minlength=b * D).reshape(b, d, n)
    rho = (
        con.rank_y[li] * y.sum(axis=1)
        + x.sum(axis=1) @ con.rank_x[li].T
        + bs @ con.rank_bs[li].T
    )
    out += rho[:, :, None]
    if con.has_cap:
        ptr = con.cap_indptr[li]
        row_of = np.repeat(np.arange(n), np.diff(ptr))
        cols = con.cap_indices[ptr[0] : ptr[-1]]
        CA = np.zeros((b, d, n))
        np.add.at(CA, (slice(None), slice(None), row_of), blocks[:, :, cols])
        out += np.einsum("ij,bjn->bin", con.cap_weight[li], CA)
    return out.reshape(b, D)


def dense_weight(con: Construction, offsets: np.ndarray, n: int, layer: int) -> np.ndarray:
    """W^l (D x D) assembled from the construction's data (small D: the ``dense`` engine)."""
    L, T, d, _ = con.weights.shape
    D = d * n
    li = layer - 1
    off_r, off_w = offsets[layer - 2], offsets[layer - 1]
    M = con.weights[li]
    g, sh = con.gather[li], con.gather_shift[li]
    rows = np.arange(d)[None, :, None] * n + off_w[:, None, :]  # (T, d, S)
    cols = np.arange(d)[None, :, None] * n + off_r[:, None, :]  # (T, d, S)
    flat = rows[:, :, None, :, None] * D + cols[:, None, :, None, :]  # (T, d, d, S, S)
    vals = np.broadcast_to((M * g)[:, :, :, None, None], flat.shape)
    W = np.bincount(flat.ravel(), weights=vals.ravel(), minlength=D * D).reshape(D, D)
    Wb = W.reshape(d, n, d, n)  # (i, k, j, m) view
    inc_r = np.zeros((T, n))
    np.put_along_axis(inc_r, off_r.astype(np.int64), 1.0, axis=1)
    if sh:
        # -shift * bs_j inside x_t: row (i, k in e_t) gets -shift M_t[i, j] on all of block j
        inc_w = np.zeros((T, n))
        np.put_along_axis(inc_w, off_w.astype(np.int64), 1.0, axis=1)
        Wb -= sh * np.einsum("tk,tij->ikj", inc_w, M)[:, :, :, None]
    # rho = rank_y sum_t M_t x_t + rank_x sum_t x_t + rank_bs bs, on every row of block i
    row_vec = con.rank_y[li] * np.einsum("tij,tm->ijm", M, g * inc_r - sh)
    row_vec += np.einsum("ij,m->ijm", con.rank_x[li], g * inc_r.sum(axis=0) - sh * T)
    row_vec += con.rank_bs[li][:, :, None]
    Wb += row_vec[:, None, :, :]
    if con.has_cap:
        C = con.cap_matrix(layer, n)
        Wb += np.einsum("ij,km->ikjm", con.cap_weight[li], C)
    return W
