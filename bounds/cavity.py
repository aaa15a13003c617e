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
    stratify: bool = True,
) -> list[LayerPrediction]:
    """Predict per layer the MSE and the three error terms for active and inactive circuits.

    Parameters
    ----------
    weights : (L, T, d, d) small-circuit weights; bias : (L, d); inputs : (T, d). Fewer circuits
        than the design's T may be given (a sample of the family: the per-layer shuffle makes a
        circuit's weights independent of its pattern, so the pools only need the family).
    design : (T, S) realised pattern offsets (its loads give the sharing statistics).
    n : block size D/d; z : active circuits per sample; read_c : c of the corrected read-out.
    samples : pool size M (Monte Carlo trajectories per class; raised to twice the most sharers
        a circuit has, 2 S max(load), when that is larger); seed : Monte Carlo seed.
    chunk : tagged trajectories drawn at a time. The draws' shapes depend on it, so with the seed
        it fixes the numbers.
    stratify : sample layer 1's inactive class given an active neighbour (plain read-out,
        bias <= 0; see the code); False draws it plainly (the same expectation, more variance).

    Returns
    -------
    list of LayerPrediction for layers 0..L (layer 0 is exact: all zeros).

    Notes
    -----
    Derivation in docs/cavity.md. Regime: overlaps <= 1 per pair (plain/corrected variants),
    A1 (z S << n); neither A2 nor A4 is assumed (module docstring). Accuracy measured in
    docs/bounds.md.
    """
    L, T_w, d, _ = weights.shape
    T, S = design.shape  # T circuits; the pools draw theirs from the T_w given (T_w = T or fewer)
    rng = np.random.default_rng(seed)
    loads = offset_loads(design, n)
    # a tagged circuit's sharers are distinct pool trajectories (``distinct_slots``): the pool
    # holds at least twice the most sharers a circuit can have, so the redraws end quickly
    M = max(int(samples), 2 * S * int(loads.max(initial=1)))
    # pools: circuit ids, truth a (active only), error eps
    ca = rng.integers(0, T_w, M)
    a_act = inputs[ca].copy()
    e_act = np.zeros((M, d))
    ci = rng.integers(0, T_w, M)
    e_in = np.zeros((M, d))
    out = [LayerPrediction(0, dict.fromkeys(("mse", *TERMS), 0.0),
                           dict.fromkeys(("mse", *TERMS), 0.0), 0.0, 0.0, 0.0)]
    p_other_active = (z - 1) / (T - 1) if T > 1 else 0.0
    p_other_for_inactive = z / (T - 1) if T > 1 else 0.0
    # Layer 1, plain read-out, bias <= 0: an inactive circuit's error is exactly 0 unless an
    # active circuit shares one of its neurons (probability pi_t). The inactive class is then
    # sampled *given* such a neighbour and weighted by pi = mean_t pi_t (``_layer1_strata``):
    # at D = 16000 only ~2% of inactive circuits carry a layer-1 error, and a plain pool of 2000
    # held ~35 of them (the layer-2 prediction scattered by +-40% between seeds).
    strata = (_layer1_strata(loads, design, p_other_for_inactive)
              if stratify and read_c == 0 and np.all(bias[0] <= 0) and 0 < p_other_for_inactive < 1
              else None)
    p_err = 1.0  # fraction of the inactive pool's trajectories that stand for a nonzero error
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
            tag_in = y_in
            if p_err < 1.0:  # a stratified pool: the rest (1 - p_err) is a zero error, row M
                tag_in = y_in * (rng.random(M) < p_err)[:, None]
                y_in = np.vstack([y_in, np.zeros((1, d))])
            # noise-only neuron mean (for the corrected block sum) and on-probability
            noise_on, noise_mean = _noise_neuron(rng, loads, y_in, b, min(M, 20000), p_err)
            # inactive pushes in a block (corrected)
            y_total = S * (T - z) * p_err * y_in[:M].mean(axis=0)
            pending = None
            classes = {}
            for cls, tag_h, tag_y, p_act in (
                ("active", h_act, y_act, p_other_active),
                ("inactive", np.zeros((M, d)), tag_in, p_other_for_inactive),
            ):
                is_active = cls == "active"
                given = strata if layer == 1 and not is_active else None
                eps_tot = np.zeros((M, d))
                terms = {k: np.zeros((M, d)) for k in TERMS}
                truth = a_new if is_active else np.zeros((M, d))
                classes[cls] = (eps_tot, terms, 1.0 if given is None else given[2])
                for lo in range(0, M, chunk):
                    m = min(M, lo + chunk) - lo
                    others, u, ia, ii = _chunk_draws(rng, loads, design, m, M, p_act, given,
                                                     p_err)
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
            for cls, (eps_tot, terms, weight) in classes.items():
                terms["relu"] = eps_tot - terms["overlap"] - terms["propagation"]
                sq = (eps_tot**2).sum(-1)
                results[cls] = (
                    {"mse": weight * float(sq.mean()),
                     **{k: weight * float((v**2).sum(-1).mean()) for k, v in terms.items()}},
                    weight * float(sq.std(ddof=1) / np.sqrt(M)),
                    eps_tot,
                )
            p_err = classes["inactive"][2]
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
                 M: int, p_act: float, given: tuple[np.ndarray, np.ndarray, float] | None = None,
                 p_err: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The random numbers of one chunk of m tagged circuits, in a fixed order: the tagged circuit
    (its neurons' loads give ``others`` (m, S), the number of other circuits at each neuron), and
    per slot (q, j) with j < max(others) a uniform ``u`` (an active circuit there if u < p) and
    pool indices ``ia`` / ``ii`` of the active / inactive circuit. The pool indices of one tagged
    circuit's used slots are distinct (``distinct_slots``).

    ``given`` (``_layer1_strata``): draw the tagged circuits given at least one active circuit
    among their sharers. ``p_err < 1``: the inactive pool is stratified; an inactive slot takes a
    pool trajectory with probability p_err, else the zero row M.
    """
    T, S = design.shape
    if given is None:
        rows = rng.integers(0, T, m)
    else:
        rows = rng.choice(T, m, p=given[1])
    others = loads[design[rows]] - 1
    mmax = int(others.max()) if others.size else 0
    u = rng.random((m, S, mmax))
    ia = rng.integers(0, M, (m, S, mmax), dtype=_index_dtype(M))
    ii = rng.integers(0, M, (m, S, mmax), dtype=_index_dtype(M))
    slot = np.arange(mmax)[None, None, :] < others[:, :, None]
    if given is not None:
        _first_active(rng, u, slot, given[0][rows], p_act)
    is_act = slot & (u < p_act)
    inactive = slot & ~is_act
    if p_err < 1.0:
        zero = rng.random(ii.shape) >= p_err
        ii[zero] = M
        inactive &= ~zero
    distinct_slots(rng, ia, is_act, M)
    distinct_slots(rng, ii, inactive, M)
    return others, u, ia, ii


def _layer1_strata(loads: np.ndarray, design: np.ndarray, p: float
                   ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """For each circuit its probability pi_t = 1 - (1 - p)^k_t of at least one active circuit
    among its k_t sharers, the row weights pi_t / sum(pi) of a circuit drawn given one, and
    pi = mean_t pi_t (the weight of that stratum). None when no circuit has a sharer."""
    k = (loads[design] - 1).sum(axis=1)
    pi = -np.expm1(k * np.log1p(-p))
    total = pi.sum()
    return (pi, pi / total, float(pi.mean())) if total > 0 else None


def _first_active(rng: np.random.Generator, u: np.ndarray, slot: np.ndarray, pi: np.ndarray,
                  p: float) -> None:
    """Turn the iid slot uniforms ``u`` (m, S, J) into a draw given at least one active slot (u
    < p) among the used ``slot``s of each row: the first active slot's rank F among them has the
    truncated geometric law P(F = f) = (1 - p)^(f-1) p / pi (inverse CDF), the slots before it
    are inactive and the later ones keep their iid uniforms. In place."""
    m = u.shape[0]
    flat_u = u.reshape(m, -1)
    used = slot.reshape(m, -1)
    rank = np.cumsum(used, axis=1) - 1
    first = np.ceil(np.log1p(-rng.random(m) * pi) / np.log1p(-p)).astype(np.int64)
    first = np.clip(first, 1, used.sum(axis=1)) - 1
    flat_u[used & (rank < first[:, None])] = 1.0
    flat_u[used & (rank == first[:, None])] = 0.0


def distinct_slots(rng: np.random.Generator, idx: np.ndarray, used: np.ndarray, M: int) -> None:
    """Redraw, in place, the ``used`` entries of the pool indices ``idx`` (m, ...) until the used
    entries of each row (one tagged circuit) are distinct: its sharers are *different*
    trajectories of the pool.

    Why: a tagged circuit sums the pushed errors of k sharers (k = S m, up to ~1200 at D = 32000
    near T*). Drawn with replacement from a pool of M, they share the pool's sample mean, so the
    variance of their sum is k sigma^2 (1 + k / M) instead of k sigma^2: the predicted MSE was
    too large by a factor 1 + k / M (1.3-1.5 at D = 16000 with M = 2000; docs/cavity.md). Distinct
    members of a pool of independent trajectories are independent, which removes the factor.
    Needs at most M used entries per row (the caller sizes M). Each round redraws the later copy
    of every repeated index; the order of the draws is fixed, so a seed fixes the numbers.
    """
    m = idx.shape[0]
    flat = idx.reshape(m, -1)
    use = used.reshape(m, -1)
    if use.sum(axis=1).max(initial=0) > M:
        raise ValueError(f"a tagged circuit has more sharers than the pool holds (M={M})")
    # unused slots get keys >= M that never collide
    spare = M + np.arange(flat.shape[1], dtype=np.int64)
    # most rows hold no repeat: find those that do with a plain sort (much cheaper than the
    # stable argsort below, which only they need; the redraws and their order are unchanged)
    srt = np.sort(np.where(use, flat, spare), axis=1)
    rows = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
    while rows.size:
        key = np.where(use[rows], flat[rows], spare)
        order = np.argsort(key, axis=1, kind="stable")
        srt = np.take_along_axis(key, order, axis=1)
        dup = srt[:, 1:] == srt[:, :-1]
        r, c = np.nonzero(dup)
        if r.size == 0:
            break
        flat[rows[r], order[r, c + 1]] = rng.integers(0, M, r.size)
        rows = rows[np.unique(r)]


def _noise_neuron(rng: np.random.Generator, loads: np.ndarray, y_in: np.ndarray, b: np.ndarray,
                  m: int, p_err: float = 1.0) -> tuple[float, np.ndarray]:
    """On-probability and mean activation (d,) of a neuron used by no active circuit. With
    ``p_err < 1`` the last row of ``y_in`` is the zero error of a stratified pool
    (``_chunk_draws``)."""
    M = y_in.shape[0] - (p_err < 1.0)
    ld = loads[rng.integers(0, loads.size, m)]
    mmax = int(ld.max()) if ld.size else 0
    ii = rng.integers(0, M, (m, mmax), dtype=_index_dtype(M))
    used = np.arange(mmax)[None, :] < ld[:, None]
    if p_err < 1.0:
        zero = rng.random(ii.shape) >= p_err
        ii[zero] = M
        used &= ~zero
    distinct_slots(rng, ii, used, M)
    A = np.empty((m, y_in.shape[1]))
    noise_activations(ld, ii, y_in, b, A)
    return float((A > 0).mean()), A.mean(axis=0)
