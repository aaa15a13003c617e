"""The S-hot patterns of the embedding, their capacity and the per-layer assignment.

The design and its properties: docs/construction.md, "Blocks and patterns"; capacity:
docs/capacity.md.

Neuron (i, k) of a large layer (block i = small neuron i, offset k < n) has flat index i*n + k.
A circuit's pattern is a set of S offsets, used in every block, so the whole embedding of a layer
is one (T, S) integer array.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernel import limits, validate
from kernel._jit_patterns import _count_progressions, _inverse_index, _lay_progressions

# ----------------------------------------------------------------------------- prime-step design


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % q for q in range(2, int(p**0.5) + 1))


def allowed_steps(n: int, S: int, chunk: int = 1 << 22) -> np.ndarray:
    """Steps k of the prime-step design in fill order (docs/construction.md).

    k >= 1 with k(S-1) < n and no prime factor below S, each followed (when S is not prime) by
    k*S, k*S^2, ... while k*S^m*(S-1) < n. Vectorised over chunks of ``chunk`` candidates (a
    Python loop over the candidates took minutes for a block of 10^8 neurons).
    """
    small_primes = [p for p in range(2, S) if _is_prime(p)]
    chain = not _is_prime(S)
    top = (n - 1) // max(S - 1, 1)  # the largest k with k(S-1) < n
    parts = []
    for lo in range(1, top + 1, chunk):
        k = np.arange(lo, min(top, lo + chunk - 1) + 1, dtype=np.int64)
        keep = np.ones(k.size, dtype=bool)
        for p in small_primes:
            keep &= k % p != 0
        k = k[keep]
        if not chain or k.size == 0:
            parts.append(k)
            continue
        # chain lengths: how many m = k S^j (j >= 1) satisfy m (S - 1) < n
        links = np.zeros(k.size, dtype=np.int64)
        m = k * S
        while True:
            ok = m * (S - 1) < n
            if not ok.any():
                break
            links += ok
            m = np.where(ok, m * S, m)
        start = np.concatenate([[0], np.cumsum(1 + links)[:-1]])
        out = np.empty(int((1 + links).sum()), dtype=np.int64)
        out[start] = k
        power = S
        for j in range(1, int(links.max(initial=0)) + 1):
            sel = links >= j
            out[start[sel] + j] = k[sel] * power
            power *= S
        parts.append(out)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _check_nS(n: int, S: int) -> tuple[int, int]:
    S = validate.integer("S", S, low=2)
    n = validate.integer("n", n, low=S)
    return n, S


def capacity(n: int, S: int) -> int:
    """T_max(n, S): how many progressions the prime-step design lays in a block of n neurons.

    >>> capacity(250, 6), capacity(1000, 6)
    (557, 8243)
    """
    n, S = _check_nS(n, S)
    limits.check_capacity(n, S)  # a huge block: refuse by estimate rather than loop for hours
    return int(_count_progressions(allowed_steps(n, S), n, S))


def packing_bound(n: int, S: int) -> int:
    """Largest T of any design with pairwise overlap <= 1: floor(n(n-1) / (S(S-1)))."""
    n, S = _check_nS(n, S)
    return n * (n - 1) // (S * (S - 1))


def smallest_block(T: int, S: int) -> int:
    """The smallest n with capacity(n, S) >= T (T_max^{-1}), by bisection."""
    T = validate.integer("T", T, low=1)
    S = validate.integer("S", S, low=2)
    lo, hi = S, S
    while capacity(hi, S) < T:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if capacity(mid, S) >= T:
            hi = mid
        else:
            lo = mid + 1
    return lo


def prime_step_patterns(n: int, S: int, T: int) -> np.ndarray:
    """The first T patterns of the prime-step design, shape (T, S), int32 offsets in [0, n).

    Raises ConfigError naming T_max when T exceeds the design's capacity.
    """
    n, S = _check_nS(n, S)
    T = validate.integer("T", T, low=1)
    steps = allowed_steps(n, S)
    t_max = int(_count_progressions(steps, n, S))
    if T > t_max:
        raise validate.ConfigError(
            f"T={T} exceeds the capacity of the pattern design for n={n}, S={S} (T_max={t_max})"
        )
    return _lay_progressions(steps, n, S, T)


def random_patterns(n: int, S: int, T: int, rng: np.random.Generator) -> np.ndarray:
    """The `random` baseline: S distinct offsets per circuit, uniform (overlap unbounded)."""
    n, S = _check_nS(n, S)
    T = validate.integer("T", T, low=1)
    # argpartition of i.i.d. keys gives a uniform S-subset per row without a Python loop.
    keys = rng.random((T, n))
    return np.sort(np.argpartition(keys, S - 1, axis=1)[:, :S], axis=1).astype(np.int32)


# ----------------------------------------------------------------------------- variants


def pair_overlap_mean(n: int, S: int, T: int) -> float:
    """p = S(TS/n - 1)/(T - 1): mean shared offsets of two circuits, balanced loads."""
    if T < 2:
        return 0.0
    return S * (T * S / n - 1.0) / (T - 1)


def offset_loads(design: np.ndarray, n: int) -> np.ndarray:
    """Number of circuits using each offset of a block: (n,) int64."""
    return np.bincount(np.asarray(design).ravel(), minlength=n)


def incidence(offsets_l: np.ndarray, n: int) -> np.ndarray:
    """(T, n) int64: entry [t, k] counts how often offset k occurs in circuit t's pattern at one
    layer (``offsets_l`` (T, S)); 0/1 for a valid pattern, counts so that repeats show."""
    offsets_l = np.asarray(offsets_l)
    T, S = offsets_l.shape
    inc = np.zeros((T, n), dtype=np.int64)
    np.add.at(inc, (np.repeat(np.arange(T), S), offsets_l.ravel()), 1)
    return inc


def pair_overlaps(offsets_l: np.ndarray, n: int) -> np.ndarray:
    """(T, T) int64 overlap matrix o_tu = |e_t ∩ e_u| of the patterns at one layer (diagonal S).

    Forms a T x T matrix: for the small networks of the checks and sandwiches; the statistics the
    estimates need come from the loads instead (``realised_pair_overlap_mean``)."""
    inc = incidence(offsets_l, n)
    return inc @ inc.T


def realised_pair_overlap_mean(design: np.ndarray, n: int) -> float:
    """Mean overlap <e_t, e_u> over ordered pairs t != u of a realised design:
    sum_k l_k(l_k-1)/(T(T-1)).

    Equals ``pair_overlap_mean`` when every offset carries exactly TS/n circuits (l_k the load).
    The prime-step fill order's first T < T_max patterns are not load balanced, so the realised
    value is larger (e.g. n=250, S=5, T=815: the balanced c leaves 5.5% of the plain mean
    cross-talk).
    """
    T = design.shape[0]
    if T < 2:
        return 0.0
    load = offset_loads(design, n).astype(np.float64)
    return float((load * (load - 1)).sum() / (T * (T - 1)))


def read_correction(S: int, p: float) -> float:
    """c = p/((S-p) S) of the `corrected` read-out u_t = (1/S + c) e_t - c 1 (docs/construction.md).

    With p the mean pair overlap this keeps U_t E_t = I and makes E_{u != t}[U_t E_u] = 0.
    Undefined when p >= S, i.e. when every circuit uses every offset of a block (n = S, T >= 2:
    the circuits cannot be told apart); raises ConfigError then.
    """
    if p >= S:
        raise validate.ConfigError(
            f"the read-out correction c = p/((S - p) S) is undefined for a mean pair overlap "
            f"p={p:g} >= S={S}: every circuit uses every offset of a block (n = S)")
    return p / ((S - p) * S)


def read_coefficient(o: np.ndarray | float, S: int, c: float) -> np.ndarray | float:
    """kappa = u_t . e_u = (1/S + c) o - c S: how much of circuit u's copies the read-out
    u_t = (1/S + c) e_t - c 1 of circuit t sees when their patterns share o offsets
    (``U_t E_u = kappa I``; o/S for the plain read-out, c = 0). ``o`` a number or an array."""
    return (1.0 / S + c) * o - c * S


Designer = Callable[[int, int, int, np.random.Generator], np.ndarray]

#: variant -> (pattern designer, whether the read-out is corrected)
VARIANTS: dict[str, tuple[Designer, bool]] = {
    "plain": (lambda n, S, T, rng: prime_step_patterns(n, S, T), False),
    "corrected": (lambda n, S, T, rng: prime_step_patterns(n, S, T), True),
    "random": (random_patterns, False),
}


# ----------------------------------------------------------------------------- per layer


def layer_offsets(design: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """Per-layer shuffle: layer l gives circuit t the pattern design[pi_l(t)].

    Returns (L, T, S) int32; each layer an independent uniform permutation of the design's rows.
    """
    T = design.shape[0]
    return np.ascontiguousarray(np.stack([design[rng.permutation(T)] for _ in range(L)]))


def inverse_index(offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of offset -> circuits per layer: indptr (L, n+1) int64, circuits (L, T*S) int32.

    The circuits using offset k at layer l are ``circuits[l, indptr[l, k]:indptr[l, k+1]]``.
    """
    L = offsets.shape[0]
    pairs = [_inverse_index(np.ascontiguousarray(offsets[layer]), n) for layer in range(L)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
