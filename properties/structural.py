"""Structural checks of a built network: patterns, embeddings, permutations, index.

Each takes the ``Network`` (possibly a tampered one) and returns a ``CheckResult``.
"""

from __future__ import annotations

import math

import numpy as np

from kernel.network import Network
from kernel.patterns import incidence, offset_loads, pair_overlaps
from properties.result import CheckResult, close, compare


def touches_exactly_S_d_neurons(net: Network) -> CheckResult:
    """Every circuit touches exactly S*d neurons per layer, S per block, and nothing else.

    Read off the dense embedding E_t^l (rows touched) and the read-out U_t^l (columns read with
    weight 1/S + c): both must have support exactly {(i, k): k in e_t^l}.
    """
    worst = 0
    S, d, n = net.S, net.d, net.n
    for layer in range(1, net.L + 1):
        off = net.offsets[layer - 1]
        if off.min() < 0 or off.max() >= n:
            return compare(
                "touches_exactly_S_d_neurons", 1, 0, f"offsets out of [0, n={n})", layer=layer
            )
        inc = incidence(off, n)
        distinct = (inc > 0).sum(axis=1)
        worst = max(worst, int(np.abs(distinct - S).max()))
        for t in range(net.T):
            E = net.embed_matrix(t, layer)
            rows = E.any(axis=1).reshape(d, n)
            want = np.zeros(n, dtype=bool)
            want[off[t]] = True
            worst = max(worst, int((rows != want[None, :]).sum()), int(abs(int(E.sum()) - S * d)))
    return compare(
        "touches_exactly_S_d_neurons",
        worst,
        0,
        f"neurons touched per circuit differing from S*d={S * d} (S per block)",
    )


def unembed_inverts_embed(net: Network) -> CheckResult:
    """U_t^l E_t^l = I_d for every circuit and layer (plain, corrected and random read-outs)."""
    dev = 0.0
    for layer in range(1, net.L + 1):
        for t in range(net.T):
            P = net.unembed_matrix(t, layer) @ net.embed_matrix(t, layer)
            dev = max(dev, float(np.abs(P - np.eye(net.d)).max()))
    return close("unembed_inverts_embed", dev, 1.0, "max |U_t E_t - I|")


def pairwise_overlap_at_most_one(net: Network) -> CheckResult:
    """Any two circuits share at most one neuron per block at every layer (o_tu <= 1).

    Holds for the prime-step design (plain, corrected), not for the ``random`` baseline.
    """
    worst = 0
    for layer in range(1, net.L + 1):
        O = pair_overlaps(net.offsets[layer - 1], net.n)
        np.fill_diagonal(O, 0)
        worst = max(worst, int(O.max(initial=0)))
    return compare(
        "pairwise_overlap_at_most_one",
        worst,
        1,
        "max shared neurons per block o_tu",
        variant=net.config.variant,
    )


def load_balance(net: Network) -> CheckResult:
    """Neuron load l_k (circuits using offset k): the same at every layer (the shuffle only
    reassigns patterns), sums to T*S, and in a <=1-overlap design l_k <= (n-1)/(S-1) (circuits
    through k pairwise share only k, so each needs S-1 further offsets of its own)."""
    loads = np.stack(
        [offset_loads(net.offsets[layer], net.n) for layer in range(net.L)]
    )
    if not (loads == loads[0]).all() or int(loads[0].sum()) != net.T * net.S:
        return compare(
            "load_balance",
            1,
            0,
            "loads differ between layers or do not sum to T*S",
            total=int(loads[0].sum()),
            expected=net.T * net.S,
        )
    cap = (net.n - 1) // (net.S - 1)
    return compare(
        "load_balance",
        int(loads.max()),
        cap,
        "max neuron load vs (n-1)//(S-1)",
        scale=max(cap, 1),
        mean_load=float(loads[0].mean()),
        min_load=int(loads[0].min()),
    )


def layer_permutations_are_permutations(net: Network) -> CheckResult:
    """Each layer's patterns are the design's rows permuted: offsets[l] = design[pi_l]."""
    key = np.sort(net.design, axis=1)
    ref = key[np.lexsort(key.T[::-1])]
    bad = 0
    for layer in range(net.L):
        k = np.sort(net.offsets[layer], axis=1)
        bad += int((k[np.lexsort(k.T[::-1])] != ref).any(axis=1).sum())
    return compare(
        "layer_permutations_are_permutations",
        bad,
        0,
        "rows of a layer's patterns not matched by the design",
    )


#: fixed points above which a layer-to-layer reassignment is not a uniform random permutation:
#: P(#fixed points >= k) <= 1/k! for a uniform permutation (Markov on k-subsets); 1/13! ~ 1.6e-10
SHUFFLE_FIXED_POINTS = 13


def layer_shuffles_are_independent(net: Network) -> CheckResult:
    """Per-layer shuffle: consecutive layers assign patterns by independent permutations, so
    the circuits keeping their pattern from layer l-1 to l (fixed points of pi_l pi_{l-1}^-1) are
    few: at least ``SHUFFLE_FIXED_POINTS`` (13) has probability <= 1/13! ~ 1.6e-10 per layer pair.
    A missing shuffle keeps all T. Vacuous (passes) when L = 1 or T < 13.
    """
    worst = 0
    for layer in range(1, net.L):
        same = np.sort(net.offsets[layer], axis=1) == np.sort(net.offsets[layer - 1], axis=1)
        worst = max(worst, int(same.all(axis=1).sum()))
    k = SHUFFLE_FIXED_POINTS
    return compare(
        "layer_shuffles_are_independent",
        worst,
        k - 1,
        "max circuits keeping their pattern between consecutive layers",
        scale=k,
        p_false_alarm=1 / math.factorial(k),
    )


def inverse_index_matches(net: Network) -> CheckResult:
    """The CSR inverse index (offset -> circuits) lists exactly the circuits using each offset."""
    bad = 0
    for layer in range(net.L):
        ptr, circ = net.inv_indptr[layer], net.inv_circuits[layer]
        if ptr[0] != 0 or ptr[-1] != net.T * net.S or (np.diff(ptr) < 0).any():
            bad += 1
            continue
        off = net.offsets[layer]
        for k in range(net.n):
            got = np.sort(circ[ptr[k] : ptr[k + 1]])
            want = np.nonzero((off == k).any(axis=1))[0]
            bad += int(got.shape != want.shape or (got != want).any())
    return compare("inverse_index_matches", bad, 0, "offsets whose circuit list is wrong")


def capped_offsets_well_formed(net: Network) -> CheckResult:
    """The construction's sparse offset matrix C^l (``ris-capped``): a 0/1 matrix (each row's
    columns strictly increasing, no repeats), at most T*S^2 ones, containing every route
    (k in e_t^l, m in e_t^{l-1}) of every circuit and nothing else; kappa^l finite and >= 0.
    Other constructions carry no C and kappa = 0."""
    con, n, T, S = net.construction, net.n, net.T, net.S
    bad = 0
    for layer in range(2, net.L + 1):
        ptr = con.cap_indptr[layer - 1]
        kap = float(con.kappa[layer - 1])
        bad += int(not (np.isfinite(kap) and kap >= 0.0))
        if net.config.construction != "ris-capped":
            bad += int(kap != 0.0 or ptr[-1] != ptr[0])
            continue
        rows = np.repeat(np.arange(n), np.diff(ptr))
        cols = con.cap_indices[ptr[0] : ptr[-1]].astype(np.int64)
        keys = rows * n + cols
        bad += int((np.diff(keys) <= 0).any() or keys.size > T * S * S)
        off_w, off_r = net.offsets[layer - 1], net.offsets[layer - 2]
        routes = np.unique((off_w[:, :, None].astype(np.int64) * n + off_r[:, None, :]).ravel())
        bad += int(routes.shape != keys.shape or (routes != keys).any())
    return compare("capped_offsets_well_formed", bad, 0,
                   "layers whose C^l or kappa^l is malformed",
                   construction=net.config.construction)


STRUCTURAL = {
    f.__name__: f
    for f in (
        touches_exactly_S_d_neurons,
        unembed_inverts_embed,
        pairwise_overlap_at_most_one,
        load_balance,
        layer_permutations_are_permutations,
        layer_shuffles_are_independent,
        inverse_index_matches,
        capped_offsets_well_formed,
    )
}
