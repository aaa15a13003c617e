"""The measured error decomposition eps = eps_overlap + eps_propagation + eps_relu.

An instrumented forward pass (factorised, compiled: ``kernel._jit_decompose``) that keeps, per
layer, the three vectors whose read-outs give the exact error terms (docs/error-terms.md):

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
corrected and random). The
compiled pass equals the NumPy oracle ``tests.reference.decompose_numpy`` to 1e-12 (relative to
the size of the error vectors) and the forward engines to float64 rounding (both tested). Cost
per layer and sample ``O(T d (S + d))``: two gathers (A and P - X) and one scatter per circuit,
where the forward pass does one of each; memory ``O(D + T d)`` per worker beside the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel import validate
from kernel._jit_decompose import Terms, Truth, _decompose_batch, _decompose_range
from kernel._numba import n_threads
from kernel.circuits import run_small
from kernel.engines import Batch, net_arrays
from kernel.measure import active_per_sample, inactive_per_sample
from kernel.network import Network

#: names of the three error terms, in the order they are stored
TERMS = ("overlap", "propagation", "relu")
#: the kernel's names of the TERMS (its output arrays act_<name>, in_<name>), in the same order
_SHORT = ("ovl", "prop", "relu")


@dataclass(frozen=True)
class Decomposition:
    """Measured error terms of one batch. Layer axes run over layers 0..L (layer 0 is exact: 0).

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
        return float(active_per_sample(x[:, layer]).mean())

    def inactive_ms(self, layer: int, term: str | None = None) -> float:
        """Mean over samples and inactive circuits of |term|^2 (``None``: the total eps)."""
        if not self.n_inactive:
            return float("nan")
        x = self.inactive_sq if term is None else self.inactive_terms_sq[term]
        return float(inactive_per_sample(x[:, layer], self.n_inactive).mean())


def decompose(net: Network, batch: Batch) -> Decomposition:
    """Run the batch through the instrumented factorised pass and return the three error terms.

    Parameters
    ----------
    net : the network.
    batch : the batch (``sample_batch`` / ``make_batch``).

    Returns
    -------
    Decomposition
        Per sample and layer: eps and its three terms for the active circuits, sums of squares,
        max and sum over the inactive circuits, and the fraction of neurons on.

    Raises
    ------
    ConfigError
        If the batch does not belong to the network (d or T differ).

    Notes
    -----
    Samples are shared among ``NUMBA_NUM_THREADS`` workers in contiguous ranges; a sample's
    results never depend on how many there are.
    """
    validate.network_arrays(net)  # index arrays in range before the compiled pass
    if batch.inputs.shape[2] != net.d or batch.active.max(initial=0) >= net.T:
        raise validate.ConfigError("batch does not belong to this network (check d and T)")
    B, z, d, L = batch.size, batch.z, net.d, net.L
    active = np.ascontiguousarray(batch.active, dtype=np.int64)
    h, a = run_small(net.circuits, active, batch.inputs)
    out = {
        "act_total": np.zeros((B, L + 1, z, d)),
        **{f"act_{k}": np.zeros((B, L + 1, z, d)) for k in _SHORT},
        "in_sq": np.zeros((B, L + 1)),
        **{f"in_{k}": np.zeros((B, L + 1)) for k in _SHORT},
        "in_max": np.zeros((B, L + 1)),
        "in_sum": np.zeros((B, L + 1, d)),
        "frac_on": np.zeros((B, L + 1)),
    }
    truth = Truth(active, np.ascontiguousarray(h), np.ascontiguousarray(a))
    terms = Terms(**out)
    # the forward pass's record in float64 (the construction's weights and extra terms)
    rec = net_arrays(net, "float64")
    # one worker: the serial driver (a parallel region waits for every thread, which costs much
    # more than it saves when other processes load the cores)
    n_workers = min(B, n_threads())
    if n_workers <= 1:
        _decompose_range(0, B, rec, truth, terms)
    else:
        _decompose_batch(rec, truth, terms, n_workers)
    return Decomposition(
        h, a, out["act_total"], {k: out[f"act_{s}"] for k, s in zip(TERMS, _SHORT, strict=True)},
        out["in_sq"], {k: out[f"in_{s}"] for k, s in zip(TERMS, _SHORT, strict=True)},
        out["in_max"], out["in_sum"], out["frac_on"], net.T - z)
