"""The true parameter components of a network: W^l = sum_t W_t^l + W_shared^l, exactly.

``W^1`` is the input embedding (D, T*d) that maps the stacked circuit inputs x (0 for inactive
circuits) onto the large neurons; ``W^l`` (D, D), l >= 2, is the large network's weight matrix
of its construction (``kernel.constructions``). Writing ``e_t^l`` for the 0/1 indicator (length n)
of circuit t's pattern at layer l and ``1`` for the all-ones vector:

- circuit t's part is ``W_t^l = (I_d kron x_t^l) w_t^l (I_d kron y_t^{l-1})^T`` with its own small
  weights w_t^l, a write vector ``x_t = a e_t + b 1`` and a read vector ``y_t = a' e_t + b' 1``;
  the four numbers (a, b, a', b') per layer are ``vector_coefficients`` (at layer 1 the read side
  is circuit t's slot of the input). So W_t^l has rank <= d, and it splits into d rank-one
  subcomponents, one per small neuron i of circuit t at layer l:
  ``(e_i kron x_t) (row i of w_t kron y_t)^T``;
- the shared part ``W_shared^l = wbar^l kron Q^l`` holds the constructions' mean-weight terms:
  ``Q^l = P^l + q_w q_r^T`` with P^l sparse (n x n) and one rank-one term. It is 0 for ``cis2``
  and ``ris-uncapped``; ``ris-split``: ``Q = c (sum_t e_t^l (e_t^{l-1})^T - 1 load^T)`` (load_m the
  number of circuits using offset m at layer l-1); ``ris-capped``:
  ``Q = (1/S) [kappa (sum_t e_t^l (e_t^{l-1})^T - 1 1^T) - (1 + kappa) K]`` (K the excess
  multiplicity of offset pairs routed by two or more circuits).

The coefficients per construction (c the construction's write-side constant, c_r the read-out
constant of the variant):

=============  ============  ==========  ============  ========
construction   a (write e)   b (write 1) a' (read e)   b' (read 1)
=============  ============  ==========  ============  ========
cis2           1             0           1/S + c_r     -c_r
ris-uncapped   1/S + c       -c          1             0
ris-split      1             0           1/S           0
ris-capped     1             0           1/S           0
=============  ============  ==========  ============  ========

The subcomponents are laid out as linear parameter-decomposition tools (APD / SPD) lay out a
layer's components: per layer two factor matrices ``V`` (d_in, C) and ``U`` (C, d_out) with
``W = (V @ U).T`` in the (d_out, d_in) orientation of ``torch.nn.Linear``, so that component c is
``outer(U[c], V[:, c])``; here C = T*d and component c = t*d + i is (circuit t, small neuron i).
The factors are dense (small D: tests, exports, scoring); the sum identity is tested against the
dense engine's W^l (``Network.dense_layer``) to 1e-12 for every construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel import validate
from kernel.network import Network

#: columns of ``vector_coefficients``
COEF_NAMES = ("write_e", "write_1", "read_e", "read_1")


def vector_coefficients(net: Network) -> np.ndarray:
    """(L, 4): per layer (a, b, a', b') of the write vector ``a e_t + b 1`` and the read vector
    ``a' e_t + b' 1`` of every circuit's part (module docstring). Row 0 (layer 1) is (1, 0, 1, 0):
    the embedding writes onto e_t^1 and reads circuit t's input slot."""
    con = net.construction
    S = net.S
    if con.name == "cis2":
        row = (1.0, 0.0, 1.0 / S + net.read_c, -net.read_c)
    elif con.name == "ris-uncapped":
        row = (1.0 / S + con.c, -con.c, 1.0, 0.0)
    else:  # ris-split, ris-capped: the circuit's own weights over S, on its own neurons
        row = (1.0, 0.0, 1.0 / S, 0.0)
    out = np.tile(np.array(row), (net.L, 1))
    out[0] = (1.0, 0.0, 1.0, 0.0)
    return out


@dataclass(frozen=True)
class Shared:
    """W_shared^l = wbar^l kron (P^l + outer(rank_write^l, rank_read^l)), layers 1..L (row 0,
    layer 1, is zero).

    Attributes
    ----------
    wbar : (L, d, d) the mean-weight factor (0 where the construction has no shared term).
    pair_layer, pair_write, pair_read : (nnz,) int64, the entries of the sparse P^l: layer
        (1..L), row (offset at layer l) and column (offset at layer l-1).
    pair_value : (nnz,) float64 their values.
    rank_write, rank_read : (L, n) the rank-one term of Q^l.
    """

    wbar: np.ndarray
    pair_layer: np.ndarray
    pair_write: np.ndarray
    pair_read: np.ndarray
    pair_value: np.ndarray
    rank_write: np.ndarray
    rank_read: np.ndarray

    def q_matrix(self, layer: int) -> np.ndarray:
        """Q^l as a dense (n, n) array."""
        Q = np.outer(self.rank_write[layer - 1], self.rank_read[layer - 1])
        sel = self.pair_layer == layer
        np.add.at(Q, (self.pair_write[sel], self.pair_read[sel]), self.pair_value[sel])
        return Q


def _route_counts(off_w: np.ndarray, off_r: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """(rows, cols, counts) of sum_t e_t^w (e_t^r)^T: the offset pairs some circuit routes."""
    S = off_w.shape[1]
    rows = np.repeat(off_w.astype(np.int64), S, axis=1).ravel()
    cols = np.tile(off_r.astype(np.int64), (1, S)).ravel()
    keys, counts = np.unique(rows * n + cols, return_counts=True)
    return keys // n, keys % n, counts.astype(np.float64)


def shared_terms(net: Network) -> Shared:
    """The shared (mean-weight) part of every layer (module docstring); O(T S^2) entries."""
    con, n, L, d, S = net.construction, net.n, net.L, net.d, net.S
    wbar = np.zeros((L, d, d))
    r_w, r_r = np.zeros((L, n)), np.zeros((L, n))
    parts: list[tuple[np.ndarray, ...]] = []
    if con.name in ("ris-split", "ris-capped"):
        for layer in range(2, L + 1):
            li = layer - 1
            rows, cols, counts = _route_counts(net.offsets[li], net.offsets[li - 1], n)
            wbar[li] = con.wbar[li]
            if con.name == "ris-split":
                values = con.c * counts
                r_w[li] = -con.c
                r_r[li] = np.bincount(net.offsets[li - 1].ravel(), minlength=n)
            else:
                kap = float(con.kappa[li])
                values = (kap * counts - (1.0 + kap) * (counts - 1.0)) / S
                r_w[li] = -kap / S
                r_r[li] = 1.0
            parts.append((np.full(rows.size, layer, dtype=np.int64), rows, cols, values))

    def joined(k: int, dtype: type) -> np.ndarray:
        return np.concatenate([p[k] for p in parts]).astype(dtype) if parts else np.zeros(
            0, dtype=dtype)

    return Shared(wbar, joined(0, np.int64), joined(1, np.int64), joined(2, np.int64),
                  joined(3, np.float64), r_w, r_r)


def component_labels(net: Network) -> np.ndarray:
    """(T*d, 2) int64: row c = t*d + i is (circuit t, small neuron i) of component c."""
    t, i = np.divmod(np.arange(net.T * net.d, dtype=np.int64), net.d)
    return np.stack([t, i], axis=1)


def _pattern_vectors(net: Network, layer: int, a: float, b: float) -> np.ndarray:
    """(T, n): a e_t^l + b 1 for every circuit."""
    out = np.full((net.T, net.n), b)
    out[np.arange(net.T)[:, None], net.offsets[layer - 1]] += a
    return out


def _check_layer(net: Network, layer: int) -> int:
    layer = validate.integer("layer", layer, low=1, high=net.L)
    if net.D > 20000:
        raise validate.ConfigError(f"D={net.D} is too large for dense components (D <= 20000)")
    return layer


def circuit_factors(net: Network, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """The rank-one subcomponents of ``sum_t W_t^l`` in the APD/SPD layout: ``V`` (d_in, T*d)
    and ``U`` (T*d, D) with ``sum_t W_t^l = (V @ U).T``; d_in = T*d at layer 1, D after.
    Component c = t*d + i (``component_labels``): ``U[c] = e_i kron x_t^l``,
    ``V[:, c] = (row i of w_t^l) kron y_t^{l-1}`` (layer 1: row i of w_t^1 in t's input slot)."""
    layer = _check_layer(net, layer)
    T, d, D = net.T, net.d, net.D
    a_w, b_w, a_r, b_r = vector_coefficients(net)[layer - 1]
    x = _pattern_vectors(net, layer, a_w, b_w)  # (T, n)
    U = np.einsum("ij,tk->tijk", np.eye(d), x).reshape(T * d, D)
    w = net.circuits.weights[layer - 1]  # (T, d, d)
    if layer == 1:  # read side: circuit t's own input slot
        V = np.einsum("tij,ts->tisj", w, np.eye(T)).reshape(T * d, T * d).T
    else:
        y = _pattern_vectors(net, layer - 1, a_r, b_r)
        V = np.einsum("tij,tk->tijk", w, y).reshape(T * d, D).T
    return np.ascontiguousarray(V), U


def shared_matrix(net: Network, layer: int) -> np.ndarray:
    """W_shared^l dense: (D, D) for l >= 2, zeros (D, T*d) at layer 1."""
    layer = _check_layer(net, layer)
    if layer == 1:
        return np.zeros((net.D, net.T * net.d))
    sh = shared_terms(net)
    return np.kron(sh.wbar[layer - 1], sh.q_matrix(layer))


def circuit_part(net: Network, circuit: int, layer: int) -> np.ndarray:
    """W_t^l dense, (D, d_in): circuit t's part of layer l (rank <= d)."""
    t = validate.integer("circuit", circuit, low=0, high=net.T - 1)
    V, U = circuit_factors(net, layer)
    sl = slice(t * net.d, (t + 1) * net.d)
    return U[sl].T @ V[:, sl].T


def layer_matrix(net: Network, layer: int) -> np.ndarray:
    """W^l dense: the input embedding (D, T*d) at layer 1, the construction's W^l (D, D) after
    (``Network.dense_layer``, the dense engine's matrix)."""
    layer = _check_layer(net, layer)
    if layer == 1:
        E = net.dense_input_embedding(1).reshape(net.D, net.T, net.d)  # [E_1^1 ... E_T^1]
        return np.einsum("Dti,tij->Dtj", E, net.circuits.weights[0]).reshape(
            net.D, net.T * net.d)
    return net.dense_layer(layer)
