"""Slow, obviously correct NumPy oracles (STYLE item 6). Never used by the library itself."""

from __future__ import annotations

import numpy as np


def is_prime(p: int) -> bool:
    return p >= 2 and all(p % q for q in range(2, p))


def prime_step_design(n: int, S: int) -> list[list[int]]:
    """All progressions of SPEC §2's algorithm, in fill order, written straight from the text."""
    steps = []
    for k in range(1, n):
        if k * (S - 1) >= n:
            break
        if any(k % p == 0 for p in range(2, S) if is_prime(p)):
            continue
        steps.append(k)
        if not is_prime(S):
            m = k * S
            while m * (S - 1) < n:
                steps.append(m)
                m *= S
    out = []
    for k in steps:
        for r in range(k):
            start = r
            while start + (S - 1) * k < n:
                out.append([start + q * k for q in range(S)])
                start += S * k
    return out


def forward_explicit(net, active: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Read-outs (B, L+1, T, d) of every circuit by explicit E_t, U_t and W^l matrices.

    A^0 = sum_active E_t^1 w_t^1 a_t^0; A^1 = ReLU(A^0 + B^1); A^l = ReLU(W^l A^{l-1} + B^l) with
    W^l = sum_t E_t^l w_t^l U_t^{l-1}; read-out U_t^l A^l. Layer 0 holds the inputs of the active
    circuits (0 for inactive ones).
    """
    T, L, d, D = net.T, net.L, net.d, net.D
    w = net.circuits.weights
    bias = [np.kron(net.circuits.bias[layer], np.ones(net.n)) for layer in range(L)]
    E = [[net.embed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    U = [[net.unembed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    W = [None, None] + [
        sum(E[layer - 1][t] @ w[layer - 1, t] @ U[layer - 2][t] for t in range(T))
        for layer in range(2, L + 1)
    ]
    B = active.shape[0]
    out = np.zeros((B, L + 1, T, d))
    for b in range(B):
        A0 = np.zeros(D)
        for j, t in enumerate(active[b]):
            out[b, 0, t] = inputs[b, j]
            A0 += E[0][t] @ (w[0, t] @ inputs[b, j])
        A = np.maximum(A0 + bias[0], 0.0)
        for layer in range(1, L + 1):
            if layer >= 2:
                A = np.maximum(W[layer] @ A + bias[layer - 1], 0.0)
            for t in range(T):
                out[b, layer, t] = U[layer - 1][t] @ A
    return out


def decompose_explicit(net, active: np.ndarray, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """SPEC §4's terms of every circuit, (B, L+1, T, d) each, straight from the definitions.

    eps_t^l = U_t^l A^l - a_t^l (a = 0 for inactive t); overlap = sum_{u != t, u active}
    U_t^l E_u^l h_u^l; propagation = sum_u U_t^l E_u^l w_u^l eps_u^{l-1} (l >= 2, over all T
    circuits, with this oracle's own eps of layer l-1); relu = eps - overlap - propagation.
    """
    from kernel.circuits import run_small

    T, L, d = net.T, net.L, net.d
    w = net.circuits.weights
    h, a = run_small(net.circuits, active, inputs)  # (B, L+1, z, d)
    read = forward_explicit(net, active, inputs)  # (B, L+1, T, d)
    E = [[net.embed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    U = [[net.unembed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    B = active.shape[0]
    out = {k: np.zeros((B, L + 1, T, d)) for k in ("total", "overlap", "propagation", "relu")}
    for b in range(B):
        truth_a = np.zeros((L + 1, T, d))
        truth_h = np.zeros((L + 1, T, d))
        for j, t in enumerate(active[b]):
            truth_a[:, t] = a[b, :, j]
            truth_h[:, t] = h[b, :, j]
        out["total"][b] = read[b] - truth_a
        out["total"][b, 0] = 0.0
        for layer in range(1, L + 1):
            for t in range(T):
                ovl = np.zeros(d)
                for u in active[b]:
                    if u != t:
                        ovl += U[layer - 1][t] @ E[layer - 1][u] @ truth_h[layer, u]
                prop = np.zeros(d)
                if layer >= 2:
                    for u in range(T):
                        prop += U[layer - 1][t] @ E[layer - 1][u] @ (
                            w[layer - 1, u] @ out["total"][b, layer - 1, u])
                out["overlap"][b, layer, t] = ovl
                out["propagation"][b, layer, t] = prop
                out["relu"][b, layer, t] = out["total"][b, layer, t] - ovl - prop
    return out


def layer1_bound_vectorised(net, active: np.ndarray, h1: np.ndarray) -> np.ndarray:
    """(B, T, d) SPEC §4 layer-1 bound sum_{u active, u != t} (o_tu/S + c(S - o_tu)) |h_u^1[i]|,
    from the dense incidence matrix of the layer-1 patterns."""
    inc = np.zeros((net.T, net.n))
    np.put_along_axis(inc, net.offsets[0].astype(np.int64), 1.0, axis=1)
    o = (inc @ inc.T)[:, active].transpose(1, 0, 2)  # (B, T, z)
    g = o / net.S + abs(net.read_c) * (net.S - o)
    B, z = active.shape
    g[np.arange(B)[:, None], active, np.arange(z)[None, :]] = 0.0  # u != t
    return np.einsum("btz,bzd->btd", g, np.abs(h1))
