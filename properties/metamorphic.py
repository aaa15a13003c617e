"""Metamorphic checks: transform the input, predict the output change.

``relabel`` is also useful on its own: the same network with circuits renamed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kernel import patterns
from kernel.circuits import Circuits
from kernel.engines import Batch, ForwardResult
from kernel.network import Network
from properties.engines import Engine, full_readout, resolve
from properties.result import CheckResult, close


def relabel(net: Network, perm: np.ndarray) -> Network:
    """The network with circuit ``j`` renamed from old circuit ``perm[j]`` (weights, inputs and
    patterns move together; the large network is unchanged)."""
    perm = np.asarray(perm)
    c = net.circuits
    circ = Circuits(np.ascontiguousarray(c.weights[:, perm]), c.bias,
                    np.ascontiguousarray(c.inputs[perm]), c.family)
    offsets = np.ascontiguousarray(net.offsets[:, perm])
    indptr, inv = patterns.inverse_index(offsets, net.n)
    return replace(net, circuits=circ, design=np.ascontiguousarray(net.design[perm]),
                   offsets=offsets, inv_indptr=indptr, inv_circuits=inv)


def _scale(res: ForwardResult) -> float:
    """Magnitude of the numbers compared: read-outs, ground truth, inactive norms."""
    return max(float(np.abs(res.active_readout).max(initial=0.0)),
               float(np.abs(res.a).max(initial=0.0)),
               float(np.sqrt(res.inactive_sq.max(initial=0.0))), 1.0)


def relabelling_invariance(net: Network, batch: Batch, perm: np.ndarray,
                           engine: Engine | str | None = None) -> CheckResult:
    """Renaming circuits (``relabel``) and renaming the batch's active circuits the same way leaves
    every active error and the inactive sum of squares unchanged."""
    run = resolve(engine)
    perm = np.asarray(perm)
    inv = np.argsort(perm)
    base = run(net, batch)
    moved = run(relabel(net, perm), Batch(inv[batch.active], batch.inputs))
    scale = _scale(base)
    dev = max(float(np.abs(moved.active_error - base.active_error).max(initial=0.0)),
              float(np.abs(moved.inactive_sq - base.inactive_sq).max(initial=0.0)) / scale)
    return close("relabelling_invariance", dev, scale, "errors after relabelling vs before")


def input_scaling(net: Network, batch: Batch, c: float,
                  engine: Engine | str | None = None) -> CheckResult:
    """With b = 0 the network is positively homogeneous: inputs times c > 0 give every active
    error times c and every inactive |read-out|^2 times c^2."""
    if c <= 0 or np.any(net.circuits.bias != 0):
        raise ValueError("input_scaling needs c > 0 and zero bias")
    run = resolve(engine)
    base = run(net, batch)
    scaled = run(net, Batch(batch.active, batch.inputs * c))
    scale = _scale(base) * max(c, 1.0)
    dev = max(float(np.abs(scaled.active_error - c * base.active_error).max(initial=0.0)),
              float(np.abs(scaled.inactive_sq - c * c * base.inactive_sq).max(initial=0.0))
              / scale)
    return close("input_scaling", dev, scale, f"errors(c x) vs c errors(x), c={c:.4g}", c=c)


def zero_input_circuit_changes_nothing(net: Network, batch: Batch, extra: np.ndarray,
                                       engine: Engine | str | None = None) -> CheckResult:
    """Adding to each sample one more active circuit ``extra[b]`` (inactive before) with zero
    input changes no read-out of any circuit (its h is 0, and b <= 0 keeps it off)."""
    run = resolve(engine)
    extra = np.asarray(extra).reshape(-1, 1)
    if np.any(batch.active == extra):
        raise ValueError("extra circuits must be inactive in their sample")
    more = Batch(np.concatenate([batch.active, extra], axis=1),
                 np.concatenate([batch.inputs, np.zeros((batch.size, 1, net.d))], axis=1))
    base = full_readout(run(net, batch, readout="all"))
    plus = full_readout(run(net, more, readout="all"))
    scale = max(float(np.abs(base).max(initial=0.0)), 1.0)
    dev = float(np.abs(plus - base).max(initial=0.0))
    return close("zero_input_circuit_changes_nothing", dev, scale,
                 "read-outs with an extra zero-input circuit vs without")


METAMORPHIC = {f.__name__: f for f in (relabelling_invariance, input_scaling,
                                        zero_input_circuit_changes_nothing)}
