"""A mean-field ("cavity") layer recursion over the small circuits.

The leading-order formulas drop two things that dominate from layer 2 on: the ReLU of
the large network (which cuts an active circuit's noise on its off neurons and rectifies the noise
on inactive neurons, so it does not average out over S) and the inactive-circuit noise that
re-enters through W ("inactive feedback"). This module carries both, layer by layer, with a small
Monte Carlo over the *small circuits* and the *pattern statistics* only; the large network is never
run.

The recursion (derivation)
--------------------------
Take a tagged circuit t at layer l. Its S neurons in block i have offsets k_1..k_S; neuron k_q is
shared with ``m_q = load(k_q) - 1`` other circuits (loads of the realised design). Two
circuits share at most one offset, so the S neurons see disjoint sets of other circuits, and with
the per-layer shuffle the circuits sharing a neuron at layer l are independent of their state at
l-1.
Since ``W^l A^{l-1} = sum_u E_u w_u (a_u^{l-1} + eps_u^{l-1})``, neuron k_q (block i) receives

    P_q = [h_t + w_t eps_t]_i + sum_{u shares k_q} [h_u + w_u eps_u]_i      (h_u = 0 if inactive)

with each sharing circuit active with probability (z - [t active]) / (T - 1). Then
``A_q = ReLU(P_q + b_i)`` and the read-out is ``(1/S + c) sum_q A_q - c * (block sum)``
(c = 0 for ``plain``). The three error terms follow by reading out X (the h's only) and P - X.
The states (h, a, eps) of the other circuits are drawn from two *pools* (M active, M inactive
trajectories) that carry the realised error vectors of layer l-1 - their changed statistics after
rectification (the g of the closed sketch) are thus exact in distribution. The tagged results form
the pools of layer l. For the ``corrected`` read-out the block sum is
``sum_q A_q + S sum_{other active v} (a_v + eps_v) + (n - z S) * mean(noise-only neuron)``.

Assumptions: overlaps <= 1 (not the ``random`` variant), circuits sharing a neuron independent
of each other given the pools (no loops: correlations of order 1/n between the error vectors of
circuits that met the same active circuit are dropped), and the overlaps of a circuit with
different active circuits independent (two active circuits on the same neuron of t are rare: A1).
Neither A2 nor A4 is assumed (the pools carry the actual pushed vectors, mean included).

Regime and measured accuracy (``cis check``; docs/bounds.md has the tables). Totals per layer and
class, cavity / measured, 800-1000 samples, 95% intervals 1-8% (layer-1 active: 15-40%):
``signed`` D = 4000, S = 6, T = 3000, z = 2, beta 0 / -0.05: 0.95-1.05 at layers 1-4 (and up
to L = 8); T = 6000 and T = T_max = 8243 (z = 3, saturated, 40-50% of neurons on): 0.98-1.08;
z = 4, 8 (z S^2 d/D = 0.29): 0.99-1.04; D = 1000 z = 8 (z S^2 d/D = 1.15) and D = 4000 z = 24:
0.96-1.04; ``corrected``: 1.02-1.05; ``gaussian`` beta 0: 0.88-1.12 at layers 1-4;
``permutation`` (A4 fails): 1.02-1.04; ``random`` (outside: overlaps > 1): 0.91-1.00.
Declared regime: z S^2 d/D <= 1.2, overlaps <= 1. The Monte Carlo's own std error is returned.

Implementation: this module draws every random number (NumPy, one generator seeded by ``seed``,
chunks of ``chunk`` tagged trajectories) and keeps the pools and the statistics; the loops over the
tagged trajectories, their S neurons and the circuits sharing them are compiled
(``kernel.cavity``) and run on a second thread while the next chunk is drawn. The order of
the draws is fixed, so the same arguments give the same numbers, equal to rounding to those of
the plain NumPy recursion kept as the test oracle.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from kernel.cavity import Draws, Errors, Params, Pools, cavity_chunk, noise_activations
from kernel.patterns import offset_loads

#: the recursion's own A1 boundary (the declared regime): measured within 5% up to
#: z S^2 d/D = 1.15 (D = 1000, z = 8) and 0.86 (D = 4000, z = 24, T = T_max); not tested beyond
A1_LIMIT = 1.2

TERMS = ("overlap", "propagation", "relu")


@dataclass(frozen=True)
class LayerPrediction:
    """Predicted mean-square |.|^2 per circuit class at one layer, with Monte Carlo std errors."""

    layer: int
    active: dict[str, float]  # "mse", "overlap", "propagation", "relu"
    inactive: dict[str, float]
    active_se: float  # std error of active["mse"]
    inactive_se: float
    frac_on_noise: float  # P(neuron used by no active circuit is on)


def cavity_recursion(
    weights: np.ndarray,
    bias: np.ndarray,
    inputs: np.ndarray,
    design: np.ndarray,
    n: int,
    z: int,
    *,
    read_c: float = 0.0,
    samples: int = 40000,
    seed: int = 0,
    chunk: int = 8000,
) -> list[LayerPrediction]:
    """Predict per layer the MSE and the three error terms for active and inactive circuits.

    Parameters
    ----------
    weights : (L, T, d, d) small-circuit weights; bias : (L, d); inputs : (T, d).
    design : (T, S) realised pattern offsets (its loads give the sharing statistics).
    n : block size D/d; z : active circuits per sample; read_c : c of the corrected read-out.
    samples : pool size M (Monte Carlo trajectories per class); seed : Monte Carlo seed.
    chunk : tagged trajectories drawn at a time. The draws' shapes depend on it, so with the seed
        it fixes the numbers.

    Returns
    -------
    list of LayerPrediction for layers 0..L (layer 0 is exact: all zeros).

    Notes
    -----
    Derivation in docs/cavity.md. Regime: overlaps <= 1 per pair (plain/corrected variants),
    A1 (z S << n); neither A2 nor A4 is assumed (module docstring). Accuracy measured in
    docs/bounds.md.
    """
    L, T, d, _ = weights.shape
    S = design.shape[1]
    rng = np.random.default_rng(seed)
    loads = offset_loads(design, n)
    M = int(samples)
    # pools: circuit ids, truth a (active only), error eps
    ca = rng.integers(0, T, M)
    a_act = inputs[ca].copy()
    e_act = np.zeros((M, d))
    ci = rng.integers(0, T, M)
    e_in = np.zeros((M, d))
    out = [LayerPrediction(0, dict.fromkeys(("mse", *TERMS), 0.0),
                           dict.fromkeys(("mse", *TERMS), 0.0), 0.0, 0.0, 0.0)]
    p_other_active = (z - 1) / (T - 1) if T > 1 else 0.0
    p_other_for_inactive = z / (T - 1) if T > 1 else 0.0
    no_far = np.zeros((min(M, chunk), 1), dtype=np.int64)  # plain read-out: nothing drawn
    # The compiled chunks run on a second thread (they release the GIL) while this one draws the
    # next chunk's random numbers, which cost as much again. The draws keep their order and every
    # chunk writes its own rows, so the numbers do not depend on the timing.
    with ThreadPoolExecutor(max_workers=1) as worker:
        for layer in range(1, L + 1):
            w = weights[layer - 1]
            b = np.ascontiguousarray(bias[layer - 1], dtype=np.float64)
            # pushed vectors of the pools: signal part h and error part w eps
            h_act = np.einsum("mij,mj->mi", w[ca], a_act)
            y_act = np.einsum("mij,mj->mi", w[ca], e_act)
            a_new = np.maximum(h_act + b, 0.0)
            y_in = np.einsum("mij,mj->mi", w[ci], e_in)  # inactive trajectories: own pushed error
            # noise-only neuron mean (for the corrected block sum) and on-probability
            noise_on, noise_mean = _noise_neuron(rng, loads, y_in, b, min(M, 20000))
            y_total = S * (T - z) * y_in.mean(axis=0)  # inactive pushes in a block (corrected)
            pending = None
            classes = {}
            for cls, tag_h, tag_y, p_act in (
                ("active", h_act, y_act, p_other_active),
                ("inactive", np.zeros((M, d)), y_in, p_other_for_inactive),
            ):
                is_active = cls == "active"
                eps_tot = np.zeros((M, d))
                terms = {k: np.zeros((M, d)) for k in TERMS}
                truth = a_new if is_active else np.zeros((M, d))
                classes[cls] = (eps_tot, terms)
                for lo in range(0, M, chunk):
                    m = min(M, lo + chunk) - lo
                    others, u, ia, ii = _chunk_draws(rng, loads, design, m, M)
                    far = (rng.integers(0, M, (m, max(1, z)), dtype=_index_dtype(M)) if read_c
                           else no_far[:m])
                    if pending is not None:
                        pending.result()
                    pending = worker.submit(
                        cavity_chunk, lo, Draws(others, u, ia, ii, far),
                        Pools(tag_h, tag_y, truth, h_act, y_act, y_in, a_new, e_act),
                        Params(p_act, b, 1.0 / S + read_c, float(read_c), z - is_active,
                               n - S * z, noise_mean, y_total),
                        Errors(eps_tot, terms["overlap"], terms["propagation"]))
            if pending is not None:
                pending.result()
            results = {}
            for cls, (eps_tot, terms) in classes.items():
                terms["relu"] = eps_tot - terms["overlap"] - terms["propagation"]
                sq = (eps_tot**2).sum(-1)
                results[cls] = (
                    {"mse": float(sq.mean()),
                     **{k: float((v**2).sum(-1).mean()) for k, v in terms.items()}},
                    float(sq.std(ddof=1) / np.sqrt(M)),
                    eps_tot,
                )
            e_act = results["active"][2]
            a_act = a_new
            e_in = results["inactive"][2]
            out.append(LayerPrediction(layer, results["active"][0], results["inactive"][0],
                                       results["active"][1], results["inactive"][1], noise_on))
    return out


def _index_dtype(M: int) -> type:
    """Pool indices < M < 2^31 are drawn as int32: the same numbers as int64, half the memory."""
    return np.int32 if M < 2**31 else np.int64


def _chunk_draws(rng: np.random.Generator, loads: np.ndarray, design: np.ndarray, m: int,
                 M: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The random numbers of one chunk of m tagged circuits, in a fixed order: the tagged circuit
    (its neurons' loads give ``others`` (m, S), the number of other circuits at each neuron), and
    per slot (q, j) with j < max(others) a uniform ``u`` (an active circuit there if u < p) and
    pool indices ``ia`` / ``ii`` of the active / inactive circuit."""
    T, S = design.shape
    rows = rng.integers(0, T, m)
    others = loads[design[rows]] - 1
    mmax = int(others.max()) if others.size else 0
    u = rng.random((m, S, mmax))
    ia = rng.integers(0, M, (m, S, mmax), dtype=_index_dtype(M))
    ii = rng.integers(0, M, (m, S, mmax), dtype=_index_dtype(M))
    return others, u, ia, ii


def _noise_neuron(rng: np.random.Generator, loads: np.ndarray, y_in: np.ndarray, b: np.ndarray,
                  m: int) -> tuple[float, np.ndarray]:
    """On-probability and mean activation (d,) of a neuron used by no active circuit."""
    M = y_in.shape[0]
    ld = loads[rng.integers(0, loads.size, m)]
    mmax = int(ld.max()) if ld.size else 0
    ii = rng.integers(0, M, (m, mmax), dtype=_index_dtype(M))
    A = np.empty((m, y_in.shape[1]))
    noise_activations(ld, ii, y_in, b, A)
    return float((A > 0).mean()), A.mean(axis=0)
