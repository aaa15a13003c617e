"""Bound sandwiches (SPEC §4 worst case; STYLE item 9): measured error <= rigorous bound.

The rigorous layer-1 bound of SPEC §4 (ReLU is 1-Lipschitz):

    |eps_t^1[i]| <= (1/S) * sum_{u active, u != t} o_tu * |h_u^1[i]|
                 <= (z_t / S) * max_u |h_u^1[i]|          (second form needs o_tu <= 1)

for every circuit t, active or inactive, every component i, any shared bias b <= 0.

``bounds/`` (SPEC §4, ``bounds/worst_case.py``) was not written when this module was; the bound
is computed here by ``layer1_overlap_bound``. For the ``corrected`` read-out u_t = (1/S + c) e_t
- c 1 the same argument gives coefficient g_tu = sum_{k in e_u} |u_t[k]| = |1/S + c| o_tu +
|c| (S - o_tu) in place of o_tu / S (equal to it when c = 0) [N].
"""

from __future__ import annotations

import numpy as np

from kernel.engines import Batch
from kernel.network import Network
from properties.engines import Engine, resolve
from properties.result import ROUNDING, CheckResult, compare


def overlaps(net: Network, layer: int = 1) -> np.ndarray:
    """(T, T) integer o_tu^l = |e_t^l ∩ e_u^l| (diagonal S)."""
    off = net.offsets[layer - 1]
    T, S = off.shape
    inc = np.zeros((T, net.n), dtype=np.int64)
    np.add.at(inc, (np.repeat(np.arange(T), S), off.ravel()), 1)
    return inc @ inc.T


def read_coefficients(net: Network, layer: int = 1) -> np.ndarray:
    """(T, T) g_tu = sum_{k in e_u} |u_t[k]|, the worst-case read-through of u's copies by t."""
    o = overlaps(net, layer).astype(np.float64)
    c = net.read_c
    return abs(1.0 / net.S + c) * o + abs(c) * (net.S - o)


def layer1_overlap_bound(net: Network, batch: Batch, h1: np.ndarray) -> np.ndarray:
    """(B, T, d) bound sum_{u active, u != t} g_tu |h_u^1[i]| on |eps_t^1[i]| (SPEC §4).

    h1 : (B, z, d) the active circuits' pre-activations w_u^1 a_u^0.
    """
    g = read_coefficients(net, 1)
    gA = g[:, batch.active].transpose(1, 0, 2).copy()  # (B, T, z)
    b_idx = np.arange(batch.size)[:, None]
    gA[b_idx, batch.active, np.arange(batch.z)[None, :]] = 0.0  # u != t
    return np.einsum("btz,bzd->btd", gA, np.abs(h1))


def layer1_max_bound(net: Network, batch: Batch, h1: np.ndarray) -> np.ndarray:
    """(B, T, d) the coarser (z_t / S) max_u |h_u^1[i]| (valid when o_tu <= 1, c = 0)."""
    B, z = batch.active.shape
    is_active = np.zeros((B, net.T), dtype=bool)
    is_active[np.arange(B)[:, None], batch.active] = True
    z_t = np.where(is_active, z - 1, z)  # other active circuits
    return z_t[:, :, None] / net.S * np.abs(h1).max(axis=1)[:, None, :]


def _measured(net: Network, batch: Batch, engine: Engine | str | None):
    res = resolve(engine)(net, batch, readout="all")
    truth = np.zeros((batch.size, net.T, net.d))
    np.put_along_axis(truth, np.broadcast_to(batch.active[:, :, None], res.a[:, 1].shape),
                      res.a[:, 1], axis=1)
    return res, np.abs(res.readout[:, 1] - truth)


def _sandwich(name: str, err: np.ndarray, bound: np.ndarray, what: str) -> CheckResult:
    """Passes iff err <= bound + rounding everywhere, i.e. max err / (bound + rounding) <= 1;
    value is that max ratio (1 = tight), slack 1 - ratio; numbers at the tightest component."""
    tol = ROUNDING * max(float(bound.max(initial=0.0)), 1.0)
    ratio = err / (bound + tol)
    if ratio.size == 0:
        return compare(name, 0.0, 1.0, what)
    k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return compare(name, float(ratio[k]), 1.0, what, error=float(err[k]), bound_value=float(bound[k]),
                   gap=float(bound[k] - err[k]), max_error=float(err.max()),
                   max_bound=float(bound.max()))


def layer1_worst_case_sandwich(net: Network, batch: Batch,
                               engine: Engine | str | None = None) -> CheckResult:
    """0 <= |eps_t^1[i]| <= sum_u g_tu |h_u^1[i]| for every circuit, component and sample; the
    reported value/bound are at the component closest to (or furthest past) its bound."""
    res, err = _measured(net, batch, engine)
    bound = layer1_overlap_bound(net, batch, res.h[:, 1])
    return _sandwich("layer1_worst_case_sandwich", err, bound,
                     "max over t, i of |eps_t^1[i]| / ((1/S) sum_u o_tu |h_u^1[i]|)")


def layer1_max_sandwich(net: Network, batch: Batch,
                        engine: Engine | str | None = None) -> CheckResult:
    """|eps_t^1[i]| <= (z_t / S) max_u |h_u^1[i]| (needs o_tu <= 1 and c = 0: plain variant)."""
    if net.read_c:
        raise ValueError("layer1_max_sandwich applies to the plain/random read-out (c = 0)")
    res, err = _measured(net, batch, engine)
    bound = layer1_max_bound(net, batch, res.h[:, 1])
    return _sandwich("layer1_max_sandwich", err, bound,
                     "max over t, i of |eps_t^1[i]| / ((z_t/S) max_u |h_u^1[i]|)")


SANDWICH = {f.__name__: f for f in (layer1_worst_case_sandwich, layer1_max_sandwich)}
