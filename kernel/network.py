"""The large network in factorised form — patterns per layer, small weights, shared bias.

No D x D matrix is ever stored; ``dense_layer`` / ``dense_input_embedding`` form them on request
for small D (the dense oracle engine and the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from kernel import limits, patterns, validate
from kernel.circuits import FAMILIES, Circuits, circuits_from_arrays, make_circuits
from kernel.constructions import (
    CONSTRUCTIONS,
    Construction,
    build_construction,
    dense_weight,
    write_correction,
)


@dataclass(frozen=True)
class NetworkConfig:
    """Structural parameters of a network (see docs/construction.md for the symbols).

    ``T=None`` means T_max(D/d, S). ``bias`` is the shared beta (scalar, <= 0; added to the
    family's own bias for ``rotation``). ``construction`` says how W^l is formed
    (``kernel.constructions``), ``kappa_scale`` multiplies kappa of ``ris-capped``, ``rot_bias``
    is the bias size b of the ``rotation`` family.
    """

    D: int = 1000
    d: int = 4
    S: int = 6
    T: int | None = None
    L: int = 4
    family: str = "signed"
    bias: float = 0.0
    variant: str = "plain"
    seed: int = 0
    construction: str = "cis2"
    kappa_scale: float = 1.0
    rot_bias: float = 1.0

    def validated(self) -> NetworkConfig:
        """A copy with every field checked and T filled in; raises ConfigError otherwise."""
        d = validate.integer("d", self.d, low=1)
        D = validate.integer("D", self.D, low=1)
        if D % d:
            raise validate.ConfigError(f"D={D} must be divisible by d={d} (D = d*n)")
        n = D // d
        S = validate.integer("S", self.S, low=2)
        if S > n:
            raise validate.ConfigError(f"S={S} must be <= n=D/d={n}")
        variant = validate.choice("variant", self.variant, patterns.VARIANTS)
        if self.T is None:
            if variant == "random":
                raise validate.ConfigError("T must be given for variant 'random' (it has no T_max)")
            T = patterns.capacity(n, S)
        else:
            T = validate.integer("T", self.T, low=1)
        construction = validate.choice("construction", self.construction, CONSTRUCTIONS)
        if construction != "cis2" and variant == "corrected":
            raise validate.ConfigError(
                f"variant='corrected' cannot be combined with construction={construction!r} "
                "(it sets its own read-out); use variant 'plain' or 'random'"
            )
        return NetworkConfig(
            D=D,
            d=d,
            S=S,
            T=T,
            L=validate.integer("L", self.L, low=1),
            family=self.family
            if self.family == "user"
            else validate.choice("family", self.family, FAMILIES),
            bias=validate.real("bias", self.bias, high=0.0),
            variant=variant,
            seed=validate.seed(self.seed),
            construction=construction,
            kappa_scale=validate.real("kappa_scale", self.kappa_scale, low=0.0),
            rot_bias=validate.real("rot_bias", self.rot_bias, low=0.0),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: the widest network whose layers are formed as dense (D, D) arrays (oracles, baselines)
DENSE_MAX_D = 20000


@dataclass(frozen=True, eq=False)
class Network:
    """The factorised large network.

    Attributes
    ----------
    config : the validated NetworkConfig.
    circuits : the small circuits (weights (L, T, d, d), bias (L, d), inputs (T, d)).
    design : (T, S) int32, the set of patterns (offsets in a block).
    offsets : (L, T, S) int32, ``offsets[l-1, t]`` is circuit t's pattern e_t^l.
    inv_indptr, inv_circuits : CSR per layer of offset -> circuits, shapes (L, n+1), (L, T*S).
    read_c : c of the read-out u_t = (1/S + c) e_t - c 1 at every layer. ``cis2``: 0 unless
        variant 'corrected', then from the realised design's mean pair overlap so the mean
        cross-talk is exactly 0; ``ris-uncapped`` / ``ris-split``: the construction's c;
        ``ris-capped``: 0.
    """

    config: NetworkConfig
    circuits: Circuits
    design: np.ndarray
    offsets: np.ndarray
    inv_indptr: np.ndarray
    inv_circuits: np.ndarray
    read_c: float
    seconds: dict[str, float] = field(default_factory=dict)

    # Convenience accessors with the names of the docs.
    D = property(lambda self: self.config.D)
    d = property(lambda self: self.config.d)
    n = property(lambda self: self.config.D // self.config.d)
    S = property(lambda self: self.config.S)
    T = property(lambda self: int(self.config.T))  # type: ignore[arg-type]
    L = property(lambda self: self.config.L)

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` computed once per Network object and ``key``, then cached: the network's
        arrays are read-only, so whatever is derived from them stays valid (``dataclasses.replace``
        gives a fresh object with an empty cache)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    @property
    def construction(self) -> Construction:
        """How W^l is formed (``kernel.constructions``), from the current circuits and patterns;
        built once per Network object."""
        return self.memo("construction", lambda: build_construction(
            self.config.construction,
            self.circuits.weights,
            self.offsets,
            self.n,
            read_c=self.read_c,
            kappa_scale=self.config.kappa_scale,
        ))

    def weights_as(self, dtype: Any) -> np.ndarray:
        """The circuits' weights (L, T, d, d) in ``dtype``, C-contiguous; converted once, cached."""
        dtype = np.dtype(dtype)
        return self.memo(("weights", dtype),
                         lambda: np.ascontiguousarray(self.circuits.weights, dtype=dtype))

    def overflow_gains(self) -> np.ndarray:
        """``validate.layer_gains`` of this network (L, 2), computed once: the per-layer bound
        ``forward`` compares with the largest number of its dtype."""

        def gains() -> np.ndarray:
            loads = int(np.diff(self.inv_indptr, axis=1).max(initial=1))
            spread = 1.0 + self.read_c * (self.S + self.n)  # row sum of |u_t|, times S
            out = validate.layer_gains(self.circuits.weights, loads, spread)
            if self.config.construction == "ris-capped":
                # M_t = w_t + kappa w_bar (entries up to (1 + kappa) max|w|), plus R and the
                # sparse weights -(1 + kappa) w_bar / S: a rough factor (1 + 2 kappa) on max|w|,
                # not a proven bound; an infinite kappa (huge kappa_scale) is refused with it,
                # and statistics that still overflow are refused by kernel.measure.layer_stats
                with np.errstate(all="ignore"):
                    grow = 1.0 + 2.0 * np.asarray(self.construction.kappa, dtype=np.float64)
                    out = out * np.stack([grow, np.ones_like(grow)], axis=1)
                    out[:, 1] += np.log(grow)
            return out

        return self.memo("overflow_gains", gains)

    # ------------------------------------------------------------------ dense forms (small D)

    def embed_matrix(self, t: int, layer: int) -> np.ndarray:
        """E_t^l (D x d) = I_d kron e_t^l."""
        e = np.zeros(self.n)
        e[self.offsets[layer - 1, t]] = 1.0
        return np.kron(np.eye(self.d), e[:, None])

    def unembed_matrix(self, t: int, layer: int) -> np.ndarray:
        """U_t^l (d x D) = I_d kron u_t^l, u = (1/S + c) e - c 1 (c = 0 for plain/random)."""
        e = np.zeros(self.n)
        e[self.offsets[layer - 1, t]] = 1.0
        u = (1.0 / self.S + self.read_c) * e - self.read_c
        return np.kron(np.eye(self.d), u[None, :])

    def _check_dense(self, what: str) -> None:
        if self.D > DENSE_MAX_D:
            raise validate.ConfigError(
                f"D={self.D} is too large for {what} "
                f"(D x D would need {self.D**2 * 8 / 2**30:.1f} GiB)"
            )

    def dense_layer(self, layer: int) -> np.ndarray:
        """W^l of the network's construction as a dense (D, D) array, for 2 <= l <= L
        (``cis2``: sum_t E_t^l w_t^l U_t^{l-1}; see ``kernel.constructions``)."""
        layer = validate.integer("layer", layer, low=2, high=self.L)
        self._check_dense("dense_layer")
        return dense_weight(self.construction, self.offsets, self.n, layer)

    def dense_input_embedding(self, layer: int = 1) -> np.ndarray:
        """The D x (T d) matrix [E_1^l ... E_T^l] (so A^0 = E h^1 for the stacked h)."""
        layer = validate.integer("layer", layer, low=1, high=self.L)
        self._check_dense("dense_input_embedding")
        d, n, T = self.d, self.n, self.T
        E = np.zeros((self.D, T * d))
        for i in range(d):
            E[i * n + self.offsets[layer - 1], (np.arange(T) * d + i)[:, None]] = 1.0
        return E


def build_network(
    config: NetworkConfig | None = None, *, circuits: Circuits | None = None, **overrides: Any
) -> Network:
    """Build the factorised network of a configuration (docs/construction.md).

    Parameters
    ----------
    config : NetworkConfig, optional
        Defaults if None; keyword ``overrides`` replace its fields.
    circuits : Circuits, optional
        User circuits (``circuits_from_arrays``); then T, L, d and bias come from them.
    **overrides
        Fields of NetworkConfig, e.g. ``D=4000, T=3000``.

    Returns
    -------
    Network
        The factorised network; its arrays are read-only copies.

    Notes
    -----
    One SeedSequence from ``config.seed`` is split into independent streams for the circuits,
    the pattern design ('random' variant) and the per-layer permutations.
    """
    import time

    base = config or NetworkConfig()
    if circuits is not None:
        overrides = {
            **overrides,
            "T": circuits.T,
            "L": circuits.L,
            "d": circuits.d,
            "family": "user",
            "bias": float(circuits.bias.max()),
        }
    validate.known_keywords("build_network", overrides, NetworkConfig.__dataclass_fields__)
    raw = NetworkConfig(**{**base.as_dict(), **overrides})
    limits.check_network(raw.D, raw.d, raw.S, raw.T, raw.L, raw.variant)  # refuse what cannot fit
    cfg = raw.validated()
    n, S, T, L = cfg.D // cfg.d, cfg.S, int(cfg.T), cfg.L  # type: ignore[arg-type]
    s_circ, s_design, s_perm = np.random.SeedSequence(cfg.seed).spawn(3)
    t0 = time.perf_counter()
    designer, corrected = patterns.VARIANTS[cfg.variant]
    design = designer(n, S, T, np.random.default_rng(s_design))
    offsets = patterns.layer_offsets(design, L, np.random.default_rng(s_perm))
    t1 = time.perf_counter()
    if circuits is None:
        circ_seed = int(s_circ.generate_state(1)[0])
        circuits = make_circuits(
            cfg.family, T, L, cfg.d, bias=cfg.bias, seed=circ_seed, rot_bias=cfg.rot_bias
        )
    else:  # the network owns its arrays: later changes to the caller's do not reach it
        circuits = replace(circuits, weights=circuits.weights.copy(),
                           bias=circuits.bias.copy(), inputs=circuits.inputs.copy())
    t2 = time.perf_counter()
    return assemble_network(cfg, circuits, design, offsets,
                            _read_c(cfg.construction, n, S, T, design, corrected),
                            seconds={"patterns": t1 - t0, "circuits": t2 - t1})


def assemble_network(
    cfg: NetworkConfig,
    circuits: Circuits,
    design: np.ndarray,
    offsets: np.ndarray,
    read_c: float,
    seconds: dict[str, float] | None = None,
) -> Network:
    """The Network of validated parts (``build_network``, ``kernel.io.load_network``).

    Derives the inverse index from ``offsets`` (its time counts to ``seconds["patterns"]``) and
    marks every array the network holds read-only, so that a network owns its arrays however it
    was made. ``circuits`` must not share arrays with a caller (copy them first).
    """
    import time

    t0 = time.perf_counter()
    indptr, inv = patterns.inverse_index(offsets, cfg.D // cfg.d)
    times = dict(seconds or {})
    times["patterns"] = times.get("patterns", 0.0) + time.perf_counter() - t0
    validate.read_only(circuits.weights, circuits.bias, circuits.inputs, design, offsets,
                       indptr, inv)
    return Network(
        config=cfg,
        circuits=circuits,
        design=design,
        offsets=offsets,
        inv_indptr=indptr,
        inv_circuits=inv,
        read_c=float(read_c),
        seconds=times,
    )


def _read_c(
    construction: str, n: int, S: int, T: int, design: np.ndarray, corrected: bool
) -> float:
    """c of the read-out: the variant's for ``cis2``, the construction's otherwise."""
    if construction == "cis2":
        if not corrected:
            return 0.0
        return patterns.read_correction(S, patterns.realised_pair_overlap_mean(design, n))
    if construction == "ris-capped":
        return 0.0
    return write_correction(n, S, T)[1]


def user_network(
    weights: np.ndarray,
    bias: float | np.ndarray,
    inputs: np.ndarray,
    *,
    D: int,
    S: int,
    variant: str = "plain",
    seed: int = 0,
    construction: str = "cis2",
    kappa_scale: float = 1.0,
) -> Network:
    """A network of user circuits: weights (T, L, d, d), bias, inputs (T, d)."""
    return build_network(
        NetworkConfig(D=D, S=S, variant=variant, seed=seed, construction=construction,
                      kappa_scale=kappa_scale),
        circuits=circuits_from_arrays(weights, bias, inputs),
    )
