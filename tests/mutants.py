"""TEST-ONLY planted faults of the construction, to show that the property suite can fail.

What is mutated, precisely -- none of the shipped code is changed:

- **Network mutants** (``NETWORK_MUTANTS``, ``Network -> Network`` via ``dataclasses.replace``)
  tamper with the *data* of a correctly built network: its per-layer offsets and the inverse index
  rebuilt from them (``share_two_neurons``, ``no_shuffle``) or its configuration
  (``off_by_one_S``). The properties then run the **shipped** engines (the numba ``factorised``
  engine by default; ``engines_agree`` also ``sparse`` and the NumPy ``dense`` oracle) on the
  tampered network, so these faults go through the code that ships.
- **Engine mutants** (``FAULTS``, ``mutant_engine``) replace the forward pass by
  ``numpy_forward``, a NumPy **re-implementation** of the dense path written here, with one fault
  switched on. It reuses from the package only ``kernel.circuits.run_small`` (the small circuits'
  ground truth), ``Network.dense_layer`` (W^l for l >= 2) and ``kernel.engines._readout_ids``;
  the layer-0 embedding, W^1 = I, the bias embedding, the ReLU and the read-out U_t^l A^l are
  written here, and those are what the engine faults mutate. The numba kernels
  (``kernel/_jit.py``) are **not** mutated: these mutants show that the properties detect such
  faults in *a* forward pass, not that the numba kernels are free of them. That the numba
  kernels compute the same thing as the dense NumPy oracle is tested separately (``engines_agree``
  and tests/test_engines.py against tests/reference.py).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from kernel import patterns
from kernel.circuits import mean_active_norms, run_small
from kernel.engines import Batch, ForwardResult, _readout_ids
from kernel.network import Network

# ----------------------------------------------------------------------------- network mutants


def _with_offsets(net: Network, offsets: np.ndarray) -> Network:
    offsets = np.ascontiguousarray(offsets, dtype=np.int32)
    indptr, inv = patterns.inverse_index(offsets, net.n)
    return replace(net, offsets=offsets, inv_indptr=indptr, inv_circuits=inv)


def share_two_neurons(net: Network) -> Network:
    """Circuit 1 gets two of circuit 0's offsets (in every block, at every layer)."""
    if net.T < 2 or net.S < 2:
        return net
    off = net.offsets.copy()
    for layer in range(net.L):
        mine = off[layer, 0]
        keep = [int(mine[0]), int(mine[1])]
        others = [k for k in range(net.n) if k not in set(mine.tolist())]
        rest = (others + [k for k in mine[2:].tolist()])[: net.S - 2]
        off[layer, 1] = np.sort(keep + rest)
    return _with_offsets(net, off)


def no_shuffle(net: Network) -> Network:
    """Missing per-layer shuffle: every layer uses the design in the same order (pi_l = id)."""
    return _with_offsets(net, np.stack([net.design] * net.L))


def off_by_one_S(net: Network) -> Network:
    """The network believes S is one more than its patterns have (read-outs scale by 1/(S+1))."""
    return replace(net, config=replace(net.config, S=net.S + 1))


NETWORK_MUTANTS = {
    "share_two_neurons": share_two_neurons,
    "no_shuffle": no_shuffle,
    "off_by_one_S": off_by_one_S,
}

# ----------------------------------------------------------------------------- engine mutants

FAULTS = (
    "inv_S_plus_one",
    "w1_not_identity",
    "bias_per_circuit",
    "drop_copy",
    "drop_copy_renormalised",
    "readout_index_shift",
    "relu_threshold",
    "on_indicator_leak",
    None,
)

#: the ReLU threshold / on-indicator value of the faults of those names
FAULT_CONSTANT = 0.01


def _embed(net: Network, layer: int) -> np.ndarray:
    """(T, d, S) flat neuron indices of each circuit's copies at ``layer``."""
    return np.arange(net.d)[None, :, None] * net.n + net.offsets[layer - 1][:, None, :]


def _read(net: Network, A: np.ndarray, layer: int, fault: str | None) -> np.ndarray:
    """U_t^l A for all t: (B, T, d). Faults: wrong 1/S, or one of the S copies dropped."""
    idx = _embed(net, layer)
    if fault == "readout_index_shift":  # circuit t read through circuit t+1's pattern
        idx = idx[np.roll(np.arange(net.T), -1)]
    S, c = net.S, net.read_c
    scale = 1.0 / S + c
    if fault == "inv_S_plus_one":
        scale = 1.0 / (S + 1) + c
    if fault in ("drop_copy", "drop_copy_renormalised"):
        idx = idx[..., : S - 1]
        if fault == "drop_copy_renormalised":
            scale = 1.0 / (S - 1) + c
    r = A[:, idx].sum(axis=-1) * scale
    if c:
        r -= c * A.reshape(A.shape[0], net.d, net.n).sum(axis=-1)[:, None, :]
    return r


def numpy_forward(
    net: Network,
    batch: Batch,
    readout: Any = None,
    *,
    fault: str | None = None,
    threshold_fraction: float = 0.1,
) -> ForwardResult:
    """The dense forward pass (docs/construction.md, "The large network") re-implemented in
    NumPy, with an optional planted ``fault`` (see FAULTS):

    - ``inv_S_plus_one``: read-out averages with 1/(S+1);
    - ``w1_not_identity``: the input is embedded as a^0 (not w^1 a^0) and layer 1 applies
      W^1 = sum_t E_t^1 w_t^1 U_t^1 like the other layers;
    - ``bias_per_circuit``: each circuit's bias is embedded through E_t, so a neuron gets
      b times its load: B^l = sum_t E_t^l b^l;
    - ``drop_copy`` / ``drop_copy_renormalised``: read-out uses S-1 of the S copies, divided by
      S / by S-1;
    - ``readout_index_shift``: circuit t is read through circuit t+1's pattern (an index bug);
    - ``relu_threshold``: every large ReLU is ReLU(x + B - 0.01) (a hard-coded threshold);
    - ``on_indicator_leak``: every active circuit adds 0.01 to its layer-0 neurons whatever its
      input (an on-indicator not gated by the input).
    """
    assert fault in FAULTS, fault
    B, d, n, L, T = batch.size, net.d, net.n, net.L, net.T
    ids = _readout_ids(net, readout)
    h, a = run_small(net.circuits, batch.active, batch.inputs)
    thr = threshold_fraction * mean_active_norms(net.circuits)
    if fault == "bias_per_circuit":
        bias = np.zeros((L, net.D))
        for layer in range(1, L + 1):
            load = np.bincount(net.offsets[layer - 1].ravel(), minlength=n)
            bias[layer - 1] = np.kron(net.circuits.bias[layer - 1], load)
    else:
        bias = np.repeat(net.circuits.bias, n, axis=1)
    rows = _embed(net, 1)[batch.active]  # (B, z, d, S)
    A = np.zeros((B, net.D))
    placed = batch.inputs if fault == "w1_not_identity" else h[:, 1]
    if fault == "on_indicator_leak":
        placed = placed + FAULT_CONSTANT
    if fault == "relu_threshold":
        bias = bias - FAULT_CONSTANT
    np.add.at(A, (np.arange(B)[:, None, None, None], rows), placed[..., None])
    on = np.zeros((B, L + 1))
    on[:, 0] = (A > 0).mean(axis=1)
    if fault == "w1_not_identity":
        w1 = net.circuits.weights[0]
        idx = _embed(net, 1)
        r = A[:, idx].sum(axis=-1) / net.S  # U_t^1 A^0
        y = np.einsum("tij,btj->bti", w1, r)
        A = np.zeros((B, net.D))
        np.add.at(
            A,
            (np.arange(B)[:, None, None, None], np.broadcast_to(idx, (B, *idx.shape))),
            np.broadcast_to(y[..., None], (B, *idx.shape)),
        )
    A = np.maximum(A + bias[0], 0.0)
    R = np.zeros((B, L + 1, T, d))
    R[np.arange(B)[:, None], 0, batch.active] = batch.inputs
    for layer in range(1, L + 1):
        on[:, layer] = (A > 0).mean(axis=1)
        R[:, layer] = _read(net, A, layer, fault)
        if layer < L:
            A = np.maximum(A @ net.dense_layer(layer + 1).T + bias[layer], 0.0)
    inactive = np.ones((B, T), dtype=bool)
    inactive[np.arange(B)[:, None], batch.active] = False
    sq = (R**2).sum(-1) * inactive[:, None, :]
    act = np.take_along_axis(R, np.broadcast_to(batch.active[:, None, :, None], a.shape), axis=2)
    return ForwardResult(
        engine=f"mutant:{fault}",
        batch=batch,
        h=h,
        a=a,
        active_readout=act,
        readout_ids=ids,
        readout=R[:, :, ids] if ids.size else None,
        inactive_sq=sq.sum(-1),
        inactive_max=(np.abs(R) * inactive[:, None, :, None]).max(axis=(2, 3)),
        inactive_false=(sq > thr[:, None] ** 2).sum(-1) * (np.arange(L + 1) > 0)[None, :],
        frac_on=on,
        thresholds=thr,
    )


def mutant_engine(fault: str | None):
    """An Engine (``properties.engines``) running ``numpy_forward`` with ``fault``."""
    run = partial(numpy_forward, fault=fault)
    run.__name__ = f"mutant_{fault}"  # type: ignore[attr-defined]
    return run
