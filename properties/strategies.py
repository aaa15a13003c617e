"""Named, composable Hypothesis strategies for the construction (docs/construction.md).

They draw *structural parameters and a seed* (d, n, S, T <= T_max, L, z <= T, family, bias,
variant), never big arrays, so that shrinking stays meaningful; the arrays are built from them.
Users import them to property-test their own circuits::

    from hypothesis import given
    from properties import strategies as cst
    from properties.checks import single_circuit_exact_at_layer_one

    @given(cst.scenarios())
    def test_mine(sc):
        single_circuit_exact_at_layer_one(sc.network()).raise_if_failed()

Three kinds of generators:
- valid configurations: ``network_configs``, ``scenarios``, ``disjoint_configs``;
- circuits satisfying the assumptions A1–A5: ``user_circuits`` (and ``assumption_report`` to check);
- deliberately invalid configurations: ``invalid_configs``, ``invalid_circuits`` (each with the
  message fragment the library must raise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bounds.assumptions import VIOLATED, check_circuits
from kernel import circuits, patterns
from kernel.circuits import Circuits, circuits_from_arrays
from kernel.engines import Batch, sample_batch
from kernel.network import Network, NetworkConfig, build_network, user_network

FAMILIES = tuple(circuits.FAMILIES)  # the kernel's registries, so new entries get drawn
VARIANTS = tuple(patterns.VARIANTS)
SEEDS = st.integers(0, 2**32 - 1)


@dataclass(frozen=True)
class Scenario:
    """A network configuration plus a batch to drive it: everything one property example needs."""

    config: NetworkConfig
    z: int
    batch: int
    batch_seed: int

    def network(self) -> Network:
        return build_network(self.config)

    def sample(self, net: Network, *, batch: int | None = None, z: int | None = None) -> Batch:
        return sample_batch(net, batch or self.batch, z or self.z, seed=self.batch_seed)

    @property
    def n(self) -> int:
        return self.config.D // self.config.d


def _widths(family: str) -> st.SearchStrategy[int]:
    if family == "rotation":
        return st.sampled_from([3, 4])
    return st.sampled_from([2, 4]) if family == "signed" else st.integers(1, 4)


@st.composite
def network_configs(
    draw: st.DrawFn,
    *,
    families: tuple[str, ...] = FAMILIES,
    variants: tuple[str, ...] = VARIANTS,
    d: st.SearchStrategy[int] | None = None,
    n: st.SearchStrategy[int] = st.integers(4, 40),
    S: st.SearchStrategy[int] = st.integers(2, 5),
    L: st.SearchStrategy[int] = st.integers(1, 3),
    bias: st.SearchStrategy[float] = st.one_of(st.just(0.0), st.floats(-0.3, -1e-3)),
    T_min: int = 1,
    T_max: int | None = None,
    seed: st.SearchStrategy[int] = SEEDS,
    constructions: tuple[str, ...] = ("cis2",),
    kappa_scale: st.SearchStrategy[float] = st.sampled_from([1.0, 1.15]),
    rot_bias: st.SearchStrategy[float] = st.just(1.0),
    random_T_per_n: float | None = None,
) -> NetworkConfig:
    """A valid ``NetworkConfig``: S <= n, D = d*n, 1 <= T <= T_max(n, S) (or ``T_max`` if given).

    ``constructions``: how W^l is formed (``kernel.constructions``; the follow-up's ris-* are
    drawn with variant plain or random only, since they set their own read-out).
    ``kappa_scale`` is drawn for ``ris-capped`` only, ``rot_bias`` for the ``rotation`` family
    only (otherwise both keep their defaults).

    ``T`` is drawn in [T_min, min(T_max(n, S), T_max)]; draws where that range is empty are
    rejected with ``assume`` (never silently passed). The ``random`` variant has no capacity:
    with ``random_T_per_n`` its range ends at max(T_max(n, S), round(random_T_per_n * n)) instead
    (then capped by ``T_max``), so random designs far beyond the prime-step capacity are drawn.
    """
    from hypothesis import assume

    family = draw(st.sampled_from(families))
    construction = draw(st.sampled_from(constructions))
    if construction != "cis2":
        variants = tuple(v for v in variants if v != "corrected") or ("plain",)
    variant = draw(st.sampled_from(variants))
    dd = draw(d if d is not None else _widths(family))
    SS = draw(S)
    nn = draw(n.filter(lambda v: v >= SS))
    cap = patterns.capacity(nn, SS)
    if variant == "random" and random_T_per_n is not None:
        cap = max(cap, round(random_T_per_n * nn))
    hi = cap if T_max is None else min(cap, T_max)
    assume(hi >= T_min)
    # plain integer draws favour tiny T: most draws take a fraction of the range instead
    # (sampled_from shrinks towards its first entry, the plain draw)
    frac = draw(st.sampled_from([None, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]))
    T = draw(st.integers(T_min, hi)) if frac is None else T_min + round(frac * (hi - T_min))
    return NetworkConfig(
        D=dd * nn,
        d=dd,
        S=SS,
        T=T,
        L=draw(L),
        family=family,
        bias=draw(bias),
        variant=variant,
        seed=draw(seed),
        construction=construction,
        kappa_scale=draw(kappa_scale) if construction == "ris-capped" else 1.0,
        rot_bias=draw(rot_bias) if family == "rotation" else 1.0,
    ).validated()


@st.composite
def scenarios(
    draw: st.DrawFn,
    configs: st.SearchStrategy[NetworkConfig] | None = None,
    *,
    z: st.SearchStrategy[int] = st.integers(1, 4),
    batch: st.SearchStrategy[int] = st.integers(1, 6),
    seed: st.SearchStrategy[int] = SEEDS,
) -> Scenario:
    """A configuration and a batch: z distinct active circuits per sample with z <= T."""
    cfg = draw(configs if configs is not None else network_configs())
    zz = min(draw(z), int(cfg.T))  # type: ignore[arg-type]
    return Scenario(cfg, zz, draw(batch), draw(seed))


def disjoint_configs(**kwargs: Any) -> st.SearchStrategy[NetworkConfig]:
    """Configurations whose patterns share no neuron (T <= n/S with the prime-step design, whose
    first n // S progressions have step 1 and are disjoint). ``variant`` is plain or corrected."""

    @st.composite
    def _draw(draw: st.DrawFn) -> NetworkConfig:
        cfg = draw(network_configs(variants=("plain", "corrected"), **kwargs))
        n = cfg.D // cfg.d
        from hypothesis import assume

        assume(n // cfg.S >= 1)
        return replace(cfg, T=draw(st.integers(1, n // cfg.S)))

    return _draw()


# ----------------------------------------------------------------------------- user circuits


@dataclass(frozen=True)
class UserCircuits:
    """User arrays in their documented layout: weights (T, L, d, d), bias (L, d), inputs (T, d)."""

    weights: np.ndarray
    bias: np.ndarray
    inputs: np.ndarray

    def circuits(self) -> Circuits:
        return circuits_from_arrays(self.weights, self.bias, self.inputs)

    def network(self, *, D: int, S: int, variant: str = "plain", seed: int = 0) -> Network:
        return user_network(
            self.weights, self.bias, self.inputs, D=D, S=S, variant=variant, seed=seed
        )


@st.composite
def user_circuits(
    draw: st.DrawFn,
    *,
    T: st.SearchStrategy[int] = st.integers(1, 30),
    L: st.SearchStrategy[int] = st.integers(1, 3),
    d: st.SearchStrategy[int] = st.integers(1, 5),
    gain: st.SearchStrategy[float] = st.floats(0.1, 1.0),
    margin: st.SearchStrategy[float] = st.floats(1e-3, 0.3),
    seed: st.SearchStrategy[int] = SEEDS,
) -> UserCircuits:
    """Circuits satisfying A2–A5 by construction (A1, z S^2 / n < 1, is the scenario's):

    - A2/A3: shared bias b^l = -margin < 0 componentwise; inputs >= 0 (unit norm);
    - A4: weights are sign-symmetric random matrices (zero-mean, independent across circuits);
    - A5: each w_t^l is rescaled to spectral norm ``gain`` <= 1.
    """
    TT, LL, dd = draw(T), draw(L), draw(d)
    rng = np.random.default_rng(draw(seed))
    w = rng.standard_normal((TT, LL, dd, dd))
    norms = np.linalg.norm(w, ord=2, axis=(2, 3))
    w *= (draw(gain) / np.where(norms > 0, norms, 1.0))[..., None, None]
    if TT > 1 and not (w.min() < 0 < w.max()):
        w[-1, -1] *= -1.0  # both signs present (A4's necessary condition), norms unchanged
    x = np.abs(rng.standard_normal((TT, dd)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    bias = np.full((LL, dd), -draw(margin))
    return UserCircuits(w, bias, x)


def assumption_report(
    circ: Circuits, *, z: int | None = None, n: int | None = None, S: int | None = None
) -> dict[str, bool]:
    """Which of A1–A5 (docs/construction.md) a set of circuits satisfies, each as a boolean:
    ``bounds.assumptions.check_circuits`` with "not applicable" counted as satisfied.

    A1 needs z, n and S (vacuous otherwise). A4 is one exception: it is satisfied here when the
    weights are not all of one sign (with T >= 2), the necessary condition for zero-mean weights
    drawn independently per circuit, which is what ``user_circuits`` constructs. The measured
    mean cosine similarity of ``check_circuits`` is a statement about the realised sample: a few
    small independent circuits can be strongly correlated by chance (two 1 x 1 weights have
    cosine +-1), so it is not a property of the construction.
    """
    out = {a.name: a.status != VIOLATED for a in check_circuits(circ, z=z, S=S, n=n)}
    w = circ.weights
    out["A4"] = bool(circ.T == 1 or (w.min() < 0 < w.max()) or not np.any(w))
    return out


# ----------------------------------------------------------------------------- invalid input


#: (parameters of ``build_network`` relative to a valid base, message fragment)
_INVALID_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("D-not-multiple-of-d", {"D": 4 * 30 + 1, "d": 4}, "must be divisible by d=4"),
    ("S-above-n", {"D": 4 * 3, "d": 4, "S": 4}, "S=4 must be <= n=D/d=3"),
    ("S-below-2", {"S": 1}, "S=1 must be >= 2"),
    ("T-above-capacity", {"D": 4 * 30, "d": 4, "S": 3, "T": 10**6}, "T_max="),
    ("T-zero", {"T": 0}, "T=0 must be >= 1"),
    ("L-zero", {"L": 0}, "L=0 must be >= 1"),
    ("positive-bias", {"bias": 0.25}, "bias=0.25 must be <= 0"),
    ("nan-bias", {"bias": float("nan")}, "bias=nan must be finite"),
    ("unknown-family", {"family": "zebra"}, "family='zebra'"),
    ("unknown-variant", {"variant": "fancy"}, "variant='fancy'"),
    ("negative-seed", {"seed": -1}, "seed=-1 must be >= 0"),
    ("odd-d-signed", {"D": 3 * 30, "d": 3, "family": "signed", "T": 5}, "d=3 must be even"),
    ("random-without-T", {"variant": "random", "T": None}, "T must be given"),
    ("non-integer-S", {"S": 2.5}, "S=2.5 must be an integer"),
]


@st.composite
def invalid_configs(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """A deliberately invalid ``build_network`` parameter set: (case id, kwargs, message fragment).

    The base is a valid small configuration (drawn), and one field is broken per case.
    """
    case, broken, message = draw(st.sampled_from(_INVALID_CONFIGS))
    base = {
        "D": 4 * 30,
        "d": 4,
        "S": draw(st.integers(2, 3)),
        "T": draw(st.integers(1, 20)),
        "L": draw(st.integers(1, 3)),
        "family": draw(st.sampled_from(FAMILIES)),
        "seed": draw(st.integers(0, 100)),
    }
    if case != "odd-d-signed" and base["family"] == "signed" and broken.get("d", 4) % 2:
        base["family"] = "gaussian"
    return case, {**base, **broken}, message


@st.composite
def invalid_circuits(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """Deliberately invalid user circuits: (case id, ``user_network`` kwargs, message fragment)."""
    good = draw(user_circuits(T=st.integers(2, 10), d=st.integers(2, 4)))
    w, b, x = good.weights.copy(), good.bias.copy(), good.inputs.copy()
    case = draw(st.sampled_from(["positive-bias", "negative-input", "nan-weight", "bad-shape"]))
    if case == "positive-bias":
        b[0, 0] = 0.5
        msg = "positive entries"
    elif case == "negative-input":
        x[0, 0] = -1.0
        msg = "inputs has negative entries"
    elif case == "nan-weight":
        w[0, 0, 0, 0] = np.nan
        msg = "weights contains non-finite"
    else:
        w = w[..., :-1]
        msg = "weights has shape"
    d = x.shape[1]
    return case, {"weights": w, "bias": b, "inputs": x, "D": d * 20, "S": 3}, msg
