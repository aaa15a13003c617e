"""Bound sandwiches (docs/error-terms.md, "Worst case"): measured error <= rigorous bound.

The rigorous layer-1 bound (ReLU is 1-Lipschitz):

    |eps_t^1[i]| <= (1/S) * sum_{u active, u != t} o_tu * |h_u^1[i]|
                 <= (z_t / S) * max_u |h_u^1[i]|          (second form needs o_tu <= 1)

for every circuit t, active or inactive, every component i, any shared bias b <= 0. For the
``corrected`` read-out u_t = (1/S + c) e_t - c 1 (u_t[k] = 1/S on e_t, -c elsewhere) the
coefficient of u is o_tu/S + c (S - o_tu) (c >= 0).

The bound is taken from ``bounds.worst_case`` (``layer1_bound_pairs``, ``layer1_bound``); the
tests compare it with an independent vectorised oracle (``tests/reference.py``).
"""

from __future__ import annotations

import numpy as np

from bounds import worst_case
from kernel.engines import Batch
from kernel.network import Network
from kernel.patterns import pair_overlaps
from properties.engines import Engine, full_readout, full_truth, resolve
from properties.result import ROUNDING, CheckResult, compare


def overlaps(net: Network, layer: int = 1) -> np.ndarray:
    """(T, T) integer o_tu^l = |e_t^l ∩ e_u^l| (diagonal S): ``kernel.patterns.pair_overlaps``
    of the network's layer-``layer`` patterns."""
    return pair_overlaps(net.offsets[layer - 1], net.n)


def _others(net: Network, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """(B, T, z) overlaps o_tu with the active u of each sample, and a mask of u != t."""
    o = overlaps(net, 1)[:, batch.active].transpose(1, 0, 2)  # (B, T, z)
    other = np.ones(o.shape, dtype=bool)
    other[np.arange(batch.size)[:, None], batch.active, np.arange(batch.z)[None, :]] = False
    return o, other


def layer1_overlap_bound(net: Network, batch: Batch, h1: np.ndarray) -> np.ndarray:
    """(B, T, d) bound sum_{u active, u != t} (o_tu/S + c (S - o_tu)) |h_u^1[i]| on |eps_t^1[i]|
    from ``bounds.worst_case.layer1_bound_pairs``.

    h1 : (B, z, d) the active circuits' pre-activations w_u^1 a_u^0.
    """
    o, other = _others(net, batch)
    out = np.zeros((batch.size, net.T, net.d))
    for b in range(batch.size):
        for t in range(net.T):
            m = other[b, t]
            out[b, t] = worst_case.layer1_bound_pairs(
                h1[b, m], o[b, t, m].astype(np.float64), net.S, net.read_c
            )
    return out


def layer1_max_bound(net: Network, batch: Batch, h1: np.ndarray) -> np.ndarray:
    """(B, T, d) the coarser z_t * max_o(o/S + c (S - o)) * max_u |h_u^1[i]|, o <= 1
    (``bounds.worst_case.layer1_bound``; valid for the prime-step design)."""
    B, z = batch.active.shape
    is_active = np.zeros((B, net.T), dtype=bool)
    is_active[np.arange(B)[:, None], batch.active] = True
    z_t = np.where(is_active, z - 1, z)[:, :, None]  # other active circuits
    max_h = np.abs(h1).max(axis=1)[:, None, :]
    return np.asarray(worst_case.layer1_bound(z_t, max_h, net.S, net.read_c, 1))


def _measured(net: Network, batch: Batch, engine: Engine | str | None):
    res = resolve(engine)(net, batch, readout="all")
    return res, np.abs(full_readout(res)[:, 1] - full_truth(res, net.T)[:, 1])


def _sandwich(name: str, err: np.ndarray, bound: np.ndarray, what: str) -> CheckResult:
    """Passes iff err <= bound + rounding everywhere, i.e. max err / (bound + rounding) <= 1;
    value is that max ratio (1 = tight), slack 1 - ratio; numbers at the tightest component."""
    tol = ROUNDING * max(float(bound.max(initial=0.0)), 1.0)
    ratio = err / (bound + tol)
    if ratio.size == 0:
        return compare(name, 0.0, 1.0, what)
    k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return compare(
        name,
        float(ratio[k]),
        1.0,
        what,
        error=float(err[k]),
        bound_value=float(bound[k]),
        gap=float(bound[k] - err[k]),
        max_error=float(err.max()),
        max_bound=float(bound.max()),
    )


def layer1_worst_case_sandwich(
    net: Network, batch: Batch, engine: Engine | str | None = None
) -> CheckResult:
    """0 <= |eps_t^1[i]| <= sum_u g_tu |h_u^1[i]| for every circuit, component and sample; the
    reported value/bound are at the component closest to (or furthest past) its bound."""
    res, err = _measured(net, batch, engine)
    bound = layer1_overlap_bound(net, batch, res.h[:, 1])
    return _sandwich(
        "layer1_worst_case_sandwich",
        err,
        bound,
        "max over t, i of |eps_t^1[i]| / (sum_u (o_tu/S + c(S-o_tu)) |h_u^1[i]|)",
    )


def layer1_max_sandwich(
    net: Network, batch: Batch, engine: Engine | str | None = None
) -> CheckResult:
    """|eps_t^1[i]| <= z_t max_{o<=1}(o/S + c(S-o)) max_u |h_u^1[i]|

    (= (z_t/S) max_u |h_u^1[i]| for the plain read-out); needs o_tu <= 1 (prime-step design,
    not ``random``)."""
    if net.config.variant == "random":
        raise ValueError("layer1_max_sandwich needs overlaps <= 1 (not the random variant)")
    res, err = _measured(net, batch, engine)
    bound = layer1_max_bound(net, batch, res.h[:, 1])
    return _sandwich(
        "layer1_max_sandwich",
        err,
        bound,
        "max over t, i of |eps_t^1[i]| / (z_t max_o(o/S + c(S-o)) max_u |h_u^1[i]|)",
    )


SANDWICH = {f.__name__: f for f in (layer1_worst_case_sandwich, layer1_max_sandwich)}
