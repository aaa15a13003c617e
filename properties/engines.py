"""How checks run a network: an *engine* is any ``f(net, batch, readout=None) -> ForwardResult``.

Checks take an engine argument so that they can be pointed at something other than the kernel's
engines (a user's implementation, or a test-only mutant with a planted fault).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kernel.engines import Batch, ForwardResult, forward
from kernel.network import Network

Engine = Callable[..., ForwardResult]

KERNEL_ENGINES = ("dense", "factorised", "sparse")


def kernel_engine(name: str) -> Engine:
    """The kernel's engine ``name`` as an Engine."""

    def run(net: Network, batch: Batch, readout: Any = None) -> ForwardResult:
        return forward(net, batch, engine=name, readout=readout)

    run.__name__ = f"kernel_{name}"
    return run


def resolve(engine: Engine | str | None, default: str = "factorised") -> Engine:
    """An Engine from a callable, a kernel engine name, or None (the default kernel engine)."""
    if engine is None:
        return kernel_engine(default)
    if isinstance(engine, str):
        return kernel_engine(engine)
    return engine


def full_readout(res: ForwardResult) -> np.ndarray:
    """The read-outs of every circuit in ``res``, an engine's result for ``readout="all"``.

    Raises ``ValueError`` if the engine returned none (a broken engine, not a failed check).
    """
    if res.readout is None:
        raise ValueError("the engine returned no read-outs although readout='all' was asked for")
    return res.readout


def full_truth(res: ForwardResult, T: int) -> np.ndarray:
    """(B, L+1, T, d) ground truth of every one of the ``T`` circuits beside ``full_readout``:
    the small circuit's activation a_t^l for the circuits active in a sample, 0 for the others."""
    B, L1, z, d = res.a.shape
    truth = np.zeros((B, L1, T, d))
    idx = np.broadcast_to(res.batch.active[:, None, :, None], res.a.shape)
    np.put_along_axis(truth, idx, res.a, axis=2)
    return truth
