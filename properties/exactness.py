"""Exactness checks: identities the forward pass must satisfy to float64 rounding."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kernel.engines import Batch, make_batch
from kernel.network import Network
from kernel.patterns import offset_loads
from properties.engines import KERNEL_ENGINES, Engine, full_readout, full_truth, resolve
from properties.result import CheckResult, close, compare


def engines_agree(net: Network, batch: Batch,
                  engines: Mapping[str, Engine | str] | None = None) -> CheckResult:
    """All engines return the same read-outs of every circuit, and the same in-kernel statistics
    (sum of squares and max over inactive circuits), to float64 rounding.

    ``engines`` maps names to Engines (default: the kernel's dense, factorised and sparse).
    """
    engines = engines or {e: e for e in KERNEL_ENGINES}
    res = {name: resolve(e)(net, batch, readout="all") for name, e in engines.items()}
    names = list(res)
    ref = res[names[0]]
    scale = max(float(np.abs(full_readout(ref)).max(initial=0.0)), 1.0)
    dev, worst = 0.0, ""
    for name in names[1:]:
        r = res[name]
        parts = {
            "readout": float(np.abs(full_readout(r) - full_readout(ref)).max(initial=0.0)),
            "active_readout": float(np.abs(r.active_readout - ref.active_readout).max(initial=0.0)),
            "inactive_sq": float(np.abs(r.inactive_sq - ref.inactive_sq).max(initial=0.0)) / scale,
            "inactive_max": float(np.abs(r.inactive_max - ref.inactive_max).max(initial=0.0)),
        }
        for part, v in parts.items():
            if v > dev:
                dev, worst = v, f"{name} vs {names[0]} ({part})"
    out = close("engines_agree", dev, scale, f"engines {', '.join(names)}")
    return out if out.passed else compare("engines_agree", dev, out.bound,
                                          f"engines disagree: {worst}", scale=out.bound)


def single_circuit_exact_at_layer_one(net: Network, engine: Engine | str | None = None,
                                      circuits: np.ndarray | None = None) -> CheckResult:
    """z = 1: A^1 = ReLU(E_t h_t + B) and U_t E_t = I, so the active read-out at layer 1 is exact
    for every circuit and any shared bias b <= 0 (no other active circuit, no error).

    Runs every circuit (or ``circuits``) alone, as one sample each.
    """
    ids = np.arange(net.T) if circuits is None else np.asarray(circuits)
    res = resolve(engine)(net, make_batch(net, ids[:, None]))
    err = float(np.abs(res.active_error[:, 1]).max(initial=0.0))
    scale = float(np.abs(res.a[:, 1]).max(initial=0.0))
    return close("single_circuit_exact_at_layer_one", err, scale, "max |eps_t^1| with z = 1",
                 circuits=int(ids.size))


def disjoint_patterns_exact(net: Network, batch: Batch,
                            engine: Engine | str | None = None) -> CheckResult:
    """No shared neurons (every o_tu = 0 at every layer, e.g. T <= n/S): each large neuron
    belongs to one circuit, so every read-out, active or inactive, is exact at every layer.

    Precondition checked here (a ``ValueError`` if violated, so that a generator bug is loud).
    """
    for layer in range(net.L):
        counts = offset_loads(net.offsets[layer], net.n)
        if counts.max() > 1:
            raise ValueError("disjoint_patterns_exact needs patterns with no shared neuron")
    res = resolve(engine)(net, batch, readout="all")
    readout = full_readout(res)
    err = float(np.abs(readout - full_truth(res, net.T)).max(initial=0.0))
    scale = float(np.abs(res.a).max(initial=0.0))
    return close("disjoint_patterns_exact", err, scale,
                 "max |read-out - ground truth| over all circuits and layers")


EXACTNESS = {f.__name__: f for f in (engines_agree, single_circuit_exact_at_layer_one,
                                      disjoint_patterns_exact)}
