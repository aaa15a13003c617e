"""Slow, literal NumPy oracle of the four ways of forming W^l (cis2 and the follow-up's three).

Every matrix is written from its formula: sums over circuits of outer products of 0/1 pattern
vectors, ``min(1, .)`` for the capped offsets and kappa from the explicit sum over pairs t < u.
Small instances only (loops over circuits and pairs). Never used by the library.
"""

from __future__ import annotations

import numpy as np

from kernel._jit import _block_sums
from kernel._jit_constructions import _add_extra_terms
from kernel._numba import njit
from tests.reference import explicit_pass


def pattern_vectors(offsets_l: np.ndarray, n: int) -> np.ndarray:
    """(T, n) 0/1 vectors e_t of one layer."""
    T = offsets_l.shape[0]
    e = np.zeros((T, n))
    for t in range(T):
        for k in offsets_l[t]:
            e[t, k] = 1.0
    return e


def p_and_c(n: int, S: int, T: int) -> tuple[float, float]:
    """p = S(T S/n - 1)/(T - 1), clamped at 0 (an expected overlap; the formula turns negative
    when T S < n), and c = p/((S - p) S)."""
    p = max(0.0, S * (T * S / n - 1) / (T - 1)) if T > 1 else 0.0
    return p, p / ((S - p) * S)


def literal_kappa(e_w: np.ndarray, e_r: np.ndarray, C: np.ndarray, S: int) -> float:
    """kappa = X/(P - X), X = sum_{t<u} e_t^w . C e_u^r, P = S^2 T(T-1)/2 (0 without pairs)."""
    T = e_w.shape[0]
    X = 0.0
    for t in range(T):
        for u in range(t + 1, T):
            X += e_w[t] @ C @ e_r[u]
    P = S * S * T * (T - 1) / 2
    return 0.0 if P - X <= 0 else X / (P - X)


def literal_layer(
    name: str,
    w: np.ndarray,
    off_w: np.ndarray,
    off_r: np.ndarray,
    n: int,
    *,
    read_c: float = 0.0,
    c: float | None = None,
    wbar: np.ndarray | None = None,
    kappa_scale: float = 1.0,
) -> np.ndarray:
    """W^l (D x D) of construction ``name`` for one layer: w (T, d, d) the layer's weights,
    off_w / off_r (T, S) the patterns of layer l (write) and l-1 (read)."""
    T, d, _ = w.shape
    S = off_w.shape[1]
    D = d * n
    e_w, e_r = pattern_vectors(off_w, n), pattern_vectors(off_r, n)
    one = np.ones(n)
    if c is None:
        c = p_and_c(n, S, T)[1]
    if wbar is None:
        wbar = w.mean(axis=0)
    u_w = (1.0 / S + c) * e_w - c * one  # write-side corrected vectors
    u_r_cis2 = (1.0 / S + read_c) * e_r - read_c * one
    C = np.minimum(1.0, sum(np.outer(e_w[t], e_r[t]) for t in range(T)))
    kappa = kappa_scale * literal_kappa(e_w, e_r, C, S)
    C_tilde = C - kappa * (np.outer(one, one) - C)
    W = np.zeros((D, D))
    for i in range(d):
        for j in range(d):
            if name == "cis2":
                block = sum(w[t, i, j] * np.outer(e_w[t], u_r_cis2[t]) for t in range(T))
            elif name == "ris-uncapped":
                block = sum(w[t, i, j] * np.outer(u_w[t], e_r[t]) for t in range(T))
            elif name == "ris-split":
                block = wbar[i, j] * sum(np.outer(u_w[t], e_r[t]) for t in range(T)) + (
                    1.0 / S
                ) * sum((w[t, i, j] - wbar[i, j]) * np.outer(e_w[t], e_r[t]) for t in range(T))
            elif name == "ris-capped":
                block = (1.0 / S) * (
                    sum((w[t, i, j] - wbar[i, j]) * np.outer(e_w[t], e_r[t]) for t in range(T))
                    + wbar[i, j] * C_tilde
                )
            else:
                raise ValueError(name)
            W[i * n : (i + 1) * n, j * n : (j + 1) * n] = block
    return W


def literal_capped(off_w: np.ndarray, off_r: np.ndarray, n: int, S: int,
                   kappa_scale: float = 1.0) -> tuple[np.ndarray, float]:
    """C = min(1, sum_t e_t^w (e_t^r)^T) (n x n) and kappa (times kappa_scale)."""
    e_w, e_r = pattern_vectors(off_w, n), pattern_vectors(off_r, n)
    C = np.minimum(1.0, sum(np.outer(e_w[t], e_r[t]) for t in range(off_w.shape[0])))
    return C, kappa_scale * literal_kappa(e_w, e_r, C, S)


def literal_readout_vector(name: str, offsets_l: np.ndarray, n: int, t: int, *,
                           read_c: float = 0.0) -> np.ndarray:
    """Circuit t's read-out vector per block: cis2 (1/S + read_c) e - read_c 1; ris-uncapped and
    ris-split (1/S + c) e - c 1 with the construction's c; ris-capped e/S."""
    T, S = offsets_l.shape
    e = pattern_vectors(offsets_l, n)[t]
    if name == "cis2":
        cc = read_c
    elif name == "ris-capped":
        cc = 0.0
    else:
        cc = p_and_c(n, S, T)[1]
    return (1.0 / S + cc) * e - cc


def literal_forward(net, name: str, active: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Read-outs (B, L+1, T, d) of every circuit, with literal W^l of ``name`` (layer 0: the
    active circuits' inputs; A^0 = sum_active E_t w_t^1 a_t^0, W^1 = I, bias on every layer)."""
    T, L, d, n = net.T, net.L, net.d, net.n
    w = net.circuits.weights
    W = [None, None] + [
        literal_layer(name, w[layer - 1], net.offsets[layer - 1], net.offsets[layer - 2], n,
                      read_c=net.read_c if name == "cis2" else 0.0,
                      kappa_scale=net.config.kappa_scale)
        for layer in range(2, L + 1)
    ]
    U = [
        [np.kron(np.eye(d), literal_readout_vector(name, net.offsets[layer - 1], n, t,
                                                   read_c=net.read_c)[None, :])
         for t in range(T)]
        for layer in range(1, L + 1)
    ]
    E1 = [np.kron(np.eye(d), pattern_vectors(net.offsets[0], n)[t][:, None]) for t in range(T)]
    return explicit_pass(net, E1, W, U, active, inputs)


def apply_layer(
    con, offsets: np.ndarray, n: int, layer: int, A: np.ndarray
) -> np.ndarray:
    """W^l A for rows A (b, D) in factorised form (NumPy; no D x D matrix), 2 <= layer <= L:
    the reference of what the engines compute per layer."""
    b, D = A.shape
    L, T, d, _ = con.weights.shape
    S = offsets.shape[2]
    li = layer - 1
    off_r, off_w = offsets[layer - 2], offsets[layer - 1]
    blocks = A.reshape(b, d, n)
    bs = blocks.sum(axis=2)  # (b, d)
    sums = blocks[:, :, off_r].sum(axis=-1).transpose(0, 2, 1)  # (b, T, d)
    r = (1.0 / S + con.read_c) * sums - con.read_c * bs[:, None, :]
    y = np.einsum("tij,btj->bti", con.weights[li], r)
    rows = np.arange(d)[None, :, None] * n + off_w[:, None, :]  # (T, d, S)
    flat = (np.arange(b)[:, None, None, None] * D + rows[None]).ravel()
    vals = np.broadcast_to(y[..., None], (b, T, d, S)).ravel()
    out = np.bincount(flat, weights=vals, minlength=b * D).reshape(b, d, n)
    out += np.einsum("kij,bj->bik", con.write_offset[li], bs)
    rho = np.einsum("mij,bjm->bi", con.read_offset[li], blocks) + bs @ con.rank_bs[li].T
    out += rho[:, :, None]
    if con.has_sparse:
        ptr = con.sparse_indptr[li]
        row_of = np.repeat(np.arange(n), np.diff(ptr))
        cols = con.sparse_indices[ptr[0] : ptr[-1]]
        vals = con.sparse_values[ptr[0] : ptr[-1]]
        KA = np.zeros((n, b, d))  # (K A_j)_k, offsets first so the rows index one axis
        np.add.at(KA, row_of, (blocks[:, :, cols] * vals).transpose(2, 0, 1))
        out += np.einsum("ij,nbj->bin", con.sparse_weight[li], KA)
    return out.reshape(b, D)


@njit
def apply_layer_cols(A, An, off_r, off_w, net, li):
    """An = W A for layer index li (0-based, >= 1) of a construction, all C columns of the
    offset-major A (D, C), serially, compiled: r_t = (1/S + c) sum_q A[(j, off_r[t, q])] -
    c bs_j, M_t r_t scattered onto off_w[t], then the kernel's ``_add_extra_terms`` (net: the
    engines' ``NetArrays`` record in float64)."""
    D, C = A.shape
    T, S = off_r.shape
    M = net.weights[li]
    d = M.shape[1]
    read_c = net.read_c[0]
    coef = net.coef[0]
    bs = np.zeros((d, C))
    r = np.zeros((d, C))
    An[:, :] = 0.0
    _block_sums(A, bs)
    for t in range(T):
        for j in range(d):
            for s in range(C):
                acc = 0.0
                for q in range(S):
                    acc += A[off_r[t, q] * d + j, s]
                r[j, s] = coef * acc - read_c * bs[j, s]
        for i in range(d):
            for s in range(C):
                y = 0.0
                for j in range(d):
                    y += M[t, i, j] * r[j, s]
                for q in range(S):
                    An[off_w[t, q] * d + i, s] += y
    _add_extra_terms(A, An, bs, net, li, C, np.zeros((d, C)), np.zeros((d, C)))


def cap_matrix(con, layer: int, n: int) -> np.ndarray:
    """C^l of a construction as a dense n x n 0/1 array (small n)."""
    ptr = con.cap_indptr[layer - 1]
    C = np.zeros((n, n))
    for k in range(n):
        C[k, con.cap_indices[ptr[k] : ptr[k + 1]]] = 1.0
    return C
