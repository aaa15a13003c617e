"""SPEC §4: the measured error decomposition eps = eps_overlap + eps_propagation + eps_relu.

An instrumented forward pass (factorised, NumPy) that keeps, per layer, the three vectors whose
read-outs give the exact SPEC §4 terms:

- ``X^l = sum_{u active} E_u^l h_u^l`` (the ideal superposed pre-activation),
- ``P^l = W^l A^{l-1}`` (the realised pre-activation; ``P^1 = A^0 = X^1``),
- ``A^l = ReLU(P^l + B^l)``.

Since ``sum_u E_u w_u eps_u^{l-1} = W^l A^{l-1} - sum_{u active} E_u w_u a_u^{l-1} = P^l - X^l``:

- eps_overlap ("ring" eps) ``= U_t X^l - [t active] h_t^l``,
- eps_propagation ("tilde" eps) ``= U_t (P^l - X^l)`` (0 at layer 1),
- eps_relu ("double-dot" eps) ``= eps_t^l - eps_overlap - eps_propagation``,
  with ``eps_t^l = U_t A^l - a_t^l``.

For the follow-up's constructions (``kernel.constructions``) ``P^l`` is their W^l A^{l-1}; the
propagation term then holds everything their W^l adds beyond the ideal ``X^l`` (the three terms
still sum to eps exactly). This is exact for every variant (``U_t E_t = I`` holds for plain,
corrected and random) and agrees with ``kernel.engines.forward`` to float64 rounding. Cost per
layer and sample ``O(T d (S + d))``; memory ``O(chunk * T * d * S)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel import validate
from kernel.circuits import run_small
from kernel.constructions import apply_layer
from kernel.engines import Batch
from kernel.network import Network

#: names of the three SPEC §4 terms, in the order they are stored
TERMS = ("overlap", "propagation", "relu")


@dataclass(frozen=True)
class Decomposition:
    """Measured SPEC §4 terms of one batch. Layer axes run over layers 0..L (layer 0 is exact: 0).

    Attributes
    ----------
    h, a : (B, L+1, z, d) ground truth of the active circuits (as ``ForwardResult``).
    active_total : (B, L+1, z, d) eps of the active circuits (read-out minus ground truth).
    active_terms : dict term -> (B, L+1, z, d), the three terms of the active circuits.
    inactive_sq : (B, L+1) sum over the T - z inactive circuits of |eps|^2.
    inactive_terms_sq : dict term -> (B, L+1) sum over inactive circuits of |term|^2.
    inactive_max : (B, L+1) max abs component of eps over inactive circuits.
    inactive_sum : (B, L+1, d) sum over inactive circuits of eps (its mean shows rectification).
    frac_on : (B, L+1) fraction of large neurons > 0 (layer 0: A^0).
    n_inactive : T - z.
    """

    h: np.ndarray
    a: np.ndarray
    active_total: np.ndarray
    active_terms: dict[str, np.ndarray]
    inactive_sq: np.ndarray
    inactive_terms_sq: dict[str, np.ndarray]
    inactive_max: np.ndarray
    inactive_sum: np.ndarray
    frac_on: np.ndarray
    n_inactive: int

    def active_ms(self, layer: int, term: str | None = None) -> float:
        """Mean over samples and active circuits of |term|^2 (``None``: the total eps)."""
        x = self.active_total if term is None else self.active_terms[term]
        return float((x[:, layer] ** 2).sum(-1).mean())

    def inactive_ms(self, layer: int, term: str | None = None) -> float:
        """Mean over samples and inactive circuits of |term|^2 (``None``: the total eps)."""
        if not self.n_inactive:
            return float("nan")
        x = self.inactive_sq if term is None else self.inactive_terms_sq[term]
        return float(x[:, layer].mean() / self.n_inactive)


def _flat_index(net: Network, layer: int) -> np.ndarray:
    """(T, d, S) flat neuron indices i*n + k of every circuit's pattern at ``layer`` (1-based)."""
    return np.arange(net.d)[None, :, None] * net.n + net.offsets[layer - 1][:, None, :]


def _readout(net: Network, V: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """U_t V for all t and every row of V (b, D): returns (b, T, d)."""
    r = V[:, idx].sum(axis=-1) * (1.0 / net.S + net.read_c)
    if net.read_c:
        r -= net.read_c * V.reshape(V.shape[0], net.d, net.n).sum(axis=-1)[:, None, :]
    return r


def _scatter(net: Network, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """sum_t E_t y_t for rows y (b, T', d) with indices idx (T', d, S): returns (b, D)."""
    b = y.shape[0]
    D = net.D
    flat = (np.arange(b)[:, None, None, None] * D + idx[None]).ravel()
    vals = np.broadcast_to(y[..., None], (b, *idx.shape)).ravel()
    return np.bincount(flat, weights=vals, minlength=b * D).reshape(b, D)


def decompose(net: Network, batch: Batch, *, chunk: int | None = None) -> Decomposition:
    """Run the batch through an instrumented factorised forward pass and return the SPEC §4 terms.

    Parameters
    ----------
    net : the network.
    batch : the batch (``sample_batch`` / ``make_batch``).
    chunk : samples per chunk (default: keeps the gather buffer near 2e7 numbers).
    """
    if batch.inputs.shape[2] != net.d or batch.active.max(initial=0) >= net.T:
        raise validate.ConfigError("batch does not belong to this network (check d and T)")
    B, z, d, L, T = batch.size, batch.z, net.d, net.L, net.T
    if chunk is None:
        chunk = max(1, int(2e7 // (T * d * net.S)))
    chunk = validate.integer("chunk", chunk, low=1)
    h, a = run_small(net.circuits, batch.active, batch.inputs)
    weights = net.circuits.weights
    bias = np.repeat(net.circuits.bias, net.n, axis=1)  # (L, D)
    idx = [None] + [_flat_index(net, layer) for layer in range(1, L + 1)]

    act_total = np.zeros((B, L + 1, z, d))
    act_terms = {k: np.zeros((B, L + 1, z, d)) for k in TERMS}
    in_sq = np.zeros((B, L + 1))
    in_terms = {k: np.zeros((B, L + 1)) for k in TERMS}
    in_max = np.zeros((B, L + 1))
    in_sum = np.zeros((B, L + 1, d))
    frac_on = np.zeros((B, L + 1))

    for lo in range(0, B, chunk):
        sl = slice(lo, min(B, lo + chunk))
        act = batch.active[sl]
        b = act.shape[0]
        rows = np.arange(b)[:, None]
        inactive = np.ones((b, T), dtype=bool)
        inactive[rows, act] = False
        A_prev = None
        for layer in range(1, L + 1):
            il = idx[layer]
            # X^l: the active circuits' ideal pre-activations, embedded
            X = _scatter_active(net, h[sl, layer], act, il)
            if layer == 1:
                P = X
                frac_on[sl, 0] = (X > 0).mean(axis=1)
            elif net.config.construction != "cis2":  # the follow-up's W^l (kernel.constructions)
                P = apply_layer(net.construction, net.offsets, net.n, layer, A_prev)
            else:
                r = _readout(net, A_prev, idx[layer - 1])  # (b, T, d)
                y = np.einsum("tij,btj->bti", weights[layer - 1], r)
                P = _scatter(net, y, il)
            A = np.maximum(P + bias[layer - 1], 0.0)
            frac_on[sl, layer] = (A > 0).mean(axis=1)
            rA = _readout(net, A, il)
            rX = _readout(net, X, il)
            rPX = _readout(net, P - X, il) if layer > 1 else np.zeros_like(rA)
            truth_a = np.zeros_like(rA)
            truth_h = np.zeros_like(rA)
            truth_a[rows, act] = a[sl, layer]
            truth_h[rows, act] = h[sl, layer]
            eps = rA - truth_a
            terms = {"overlap": rX - truth_h, "propagation": rPX}
            terms["relu"] = eps - terms["overlap"] - terms["propagation"]
            act_total[sl, layer] = eps[rows, act]
            mask = inactive[..., None]
            in_sq[sl, layer] = ((eps**2).sum(-1) * inactive).sum(-1)
            in_max[sl, layer] = np.where(mask, np.abs(eps), 0.0).max(axis=(1, 2))
            in_sum[sl, layer] = (eps * mask).sum(axis=1)
            for k in TERMS:
                act_terms[k][sl, layer] = terms[k][rows, act]
                in_terms[k][sl, layer] = ((terms[k] ** 2).sum(-1) * inactive).sum(-1)
            A_prev = A
    return Decomposition(h, a, act_total, act_terms, in_sq, in_terms, in_max, in_sum, frac_on,
                         T - z)


def _scatter_active(net: Network, hl: np.ndarray, act: np.ndarray, il: np.ndarray) -> np.ndarray:
    """sum_{u active} E_u^l h_u^l per sample: hl (b, z, d), act (b, z) -> (b, D)."""
    b = act.shape[0]
    sub = il[act]  # (b, z, d, S)
    flat = (np.arange(b)[:, None, None, None] * net.D + sub).ravel()
    vals = np.broadcast_to(hl[..., None], sub.shape).ravel()
    return np.bincount(flat, weights=vals, minlength=b * net.D).reshape(b, net.D)
