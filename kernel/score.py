"""Scoring an interpretability method's output against a network's true parts (``kernel.truth``).

Two kinds of candidate explanation, per layer l = 1..L:

- **parameter subcomponents** (``Components``): rank-one matrices ``outer(U[c], V[:, c])`` in the
  layout of the exports (APD/SPD: V (d_in, C'), U (C', D)), optionally labelled with the circuit
  each claims (-1: "not a circuit", e.g. a shared term);
- **a dictionary** (``Dictionary``): K feature directions in the space of A^l (an SAE's or a
  transcoder's decoder rows).

What is reported (``score_components`` / ``score_dictionary``), per layer:

- ``quality[t]``: how well circuit t's part W_t^l is rebuilt from the candidates assigned to it,
  ``max(0, 1 - ||R_t - W_t|| / ||W_t||)`` (Frobenius) with R_t the best (least-squares)
  combination of those candidates. A candidate is assigned to its label, or, unlabelled, to the
  circuit whose parameter subspace {X_t A Y_t^T} (X_t, Y_t the circuit's write and read vectors
  in every block) holds most of it;
- ``recall[tau]``: the fraction of circuits with quality >= tau (tau in ``thresholds``);
- ``precision``: the fraction of the candidates' squared Frobenius mass inside the subspace of the
  circuit each is assigned to (candidates labelled -1 left out);
- ``faithfulness``: ``||sum_c P_c - W^l|| / ||W^l||`` (an error: 0 is faithful);
- dictionaries: ``mmcs``, the mean over the true small-neuron directions (the write vectors
  ``e_i kron x_t^l``, normalised: rows of U in ``kernel.truth.circuit_factors``) of the largest
  |cosine| with an atom; ``recall_cos`` the fraction of them with |cosine| >= 0.9; ``matched`` the
  fraction of atoms with |cosine| >= 0.9 to some true direction.

``chance``: the same scores for random candidates of the same number and norms (Gaussian factors,
or Gaussian atoms), from a fixed seed, so every report states its own chance level. Everything is
dense in D (D x d_in matrices): for networks of D up to a few thousand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kernel import truth, validate
from kernel.network import Network

#: default quality thresholds of ``recall``
THRESHOLDS = (0.5, 0.9)
#: |cosine| that counts as finding a direction
COS_MATCH = 0.9
#: seed of the random candidates that give the chance level
CHANCE_SEED = 12345
_CHUNK = 512  # candidates per block of the subspace projections


@dataclass(frozen=True)
class Components:
    """Rank-one candidates of one layer: ``V`` (d_in, C'), ``U`` (C', D), ``labels`` (C',)
    int64 circuit ids (-1: not a circuit) or None (assigned by best fit)."""

    V: np.ndarray
    U: np.ndarray
    labels: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.U.shape[0])


@dataclass(frozen=True)
class LayerScore:
    """Scores of one layer (module docstring); ``chance`` the same fields for random candidates."""

    layer: int
    kind: str
    candidates: int
    values: dict[str, float]
    quality: np.ndarray | None = None
    chance: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "kind": self.kind,
                               "candidates": self.candidates, **self.values,
                               "chance": dict(self.chance)}
        if self.quality is not None:
            out["quality_per_circuit"] = [round(float(q), 6) for q in self.quality]
        return out


def _check_network(net: Network) -> None:
    if net.D > 20000:
        raise validate.ConfigError(f"D={net.D} is too large to score (dense in D; D <= 20000)")


def _layer(net: Network, layer: Any) -> int:
    return validate.integer("layer", layer, low=1, high=net.L)


def _in_dim(net: Network, layer: int) -> int:
    return net.T * net.d if layer == 1 else net.D


def check_components(net: Network, layer: int, cand: Components) -> Components:
    """The candidates as float64 arrays of the right shapes; ConfigError naming what is wrong."""
    d_in = _in_dim(net, layer)
    V = validate.array(f"layer {layer} V", cand.V, (d_in, None))
    U = validate.array(f"layer {layer} U", cand.U, (V.shape[1], net.D))
    labels = None
    if cand.labels is not None:
        labels = validate.array(f"layer {layer} labels", cand.labels, (U.shape[0],),
                                dtype=np.int64)
        if labels.size and (labels.min() < -1 or labels.max() >= net.T):
            raise validate.ConfigError(
                f"layer {layer} labels must be circuit ids in [0, T={net.T}) or -1")
    return Components(V, U, labels)


# ----------------------------------------------------------------------------- the truth's geometry


def _block_dots(net: Network, X: np.ndarray, layer: int, a: float, b: float) -> np.ndarray:
    """(m, d, T): per row of X (m, D) and block i, the dot with a e_t^layer + b 1."""
    m = X.shape[0]
    blocks = X.reshape(m, net.d, net.n)
    on = blocks[:, :, net.offsets[layer - 1]].sum(-1)  # (m, d, T)
    return a * on + b * blocks.sum(-1)[:, :, None]


def _vector_norm2(net: Network, layer: int, a: float, b: float) -> np.ndarray:
    """(T,): |a e_t + b 1|^2 = a^2 S + 2ab S + b^2 n."""
    return np.full(net.T, a * a * net.S + 2 * a * b * net.S + b * b * net.n)


def subspace_fractions(net: Network, layer: int, cand: Components) -> np.ndarray:
    """(C', T): the fraction of candidate c's squared mass inside circuit t's parameter subspace
    {X_t A Y_t^T}: |P_X u|^2 |P_Y v|^2 / (|u|^2 |v|^2)."""
    a_w, b_w, a_r, b_r = truth.vector_coefficients(net)[layer - 1]
    out = np.zeros((cand.size, net.T))
    for lo in range(0, cand.size, _CHUNK):
        U = cand.U[lo:lo + _CHUNK]
        Vt = cand.V[:, lo:lo + _CHUNK].T
        pu = (_block_dots(net, U, layer, a_w, b_w) ** 2).sum(1) / _vector_norm2(
            net, layer, a_w, b_w)
        if layer == 1:  # read side: circuit t's input slot
            pv = (Vt.reshape(len(Vt), net.T, net.d) ** 2).sum(-1)
        else:
            pv = (_block_dots(net, Vt, layer - 1, a_r, b_r) ** 2).sum(1) / _vector_norm2(
                net, layer - 1, a_r, b_r)
        norm2 = (U**2).sum(1) * (Vt**2).sum(1)
        out[lo:lo + _CHUNK] = pu * pv / np.maximum(norm2, 1e-300)[:, None]
    return out


def _assigned(cand: Components, frac: np.ndarray) -> np.ndarray:
    return cand.labels if cand.labels is not None else frac.argmax(axis=1)


def _qualities(net: Network, layer: int, cand: Components, assign: np.ndarray) -> np.ndarray:
    """(T,): max(0, 1 - ||R_t - W_t|| / ||W_t||), R_t the least-squares combination of the
    candidates assigned to t, all in factor space (Gram matrices of U and V)."""
    V_true, U_true = truth.circuit_factors(net, layer)
    T, d = net.T, net.d
    Ut, Vt = U_true.reshape(T, d, -1), V_true.T.reshape(T, d, -1)
    w_norm2 = (np.einsum("tid,tjd->tij", Ut, Ut) * np.einsum("tid,tjd->tij", Vt, Vt)).sum((1, 2))
    quality = np.zeros(T)
    for t in range(T):
        idx = np.nonzero(assign == t)[0]
        if idx.size == 0 or w_norm2[t] <= 0:
            continue
        u, v = cand.U[idx], cand.V[:, idx].T  # (m, D), (m, d_in)
        gram = (u @ u.T) * (v @ v.T)
        rhs = ((u @ Ut[t].T) * (v @ Vt[t].T)).sum(1)  # <P_c, W_t>
        coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        err2 = max(w_norm2[t] - float(rhs @ coef), 0.0)
        quality[t] = max(0.0, 1.0 - np.sqrt(err2 / w_norm2[t]))
    return quality


def _component_values(net: Network, layer: int, cand: Components,
                      thresholds: tuple[float, ...]) -> tuple[dict[str, float], np.ndarray]:
    frac = subspace_fractions(net, layer, cand)
    assign = _assigned(cand, frac)
    quality = _qualities(net, layer, cand, assign)
    mass = (cand.U**2).sum(1) * (cand.V**2).sum(0)
    counted = assign >= 0
    inside = frac[np.nonzero(counted)[0], assign[counted]]
    total = float(mass[counted].sum())
    W = truth.layer_matrix(net, layer)
    err = np.linalg.norm(cand.U.T @ cand.V.T - W) / max(np.linalg.norm(W), 1e-300)
    values = {
        "quality_mean": float(quality.mean()),
        **{f"recall@{tau:g}": float((quality >= tau).mean()) for tau in thresholds},
        "precision": float((inside * mass[counted]).sum() / total) if total > 0 else 0.0,
        "faithfulness_error": float(err),
    }
    return values, quality


def random_components(net: Network, layer: int, like: Components, seed: int = CHANCE_SEED
                      ) -> Components:
    """Random candidates as many as ``like`` with its factor norms (Gaussian directions),
    unlabelled: the chance baseline."""
    rng = np.random.default_rng(seed)
    V = rng.standard_normal(like.V.shape)
    U = rng.standard_normal(like.U.shape)
    V *= np.linalg.norm(like.V, axis=0) / np.maximum(np.linalg.norm(V, axis=0), 1e-300)
    U *= (np.linalg.norm(like.U, axis=1) / np.maximum(np.linalg.norm(U, axis=1), 1e-300))[:, None]
    return Components(V, U, None)


def score_components(net: Network, layer: int, cand: Components, *,
                     thresholds: tuple[float, ...] = THRESHOLDS, chance: bool = True
                     ) -> LayerScore:
    """Score rank-one candidates of ``layer`` against W^l's true parts (module docstring)."""
    _check_network(net)
    layer = _layer(net, layer)
    thresholds = tuple(validate.real("threshold", t, low=0.0, high=1.0) for t in thresholds)
    cand = check_components(net, layer, cand)
    values, quality = _component_values(net, layer, cand, thresholds)
    base = {}
    if chance and cand.size:
        base = _component_values(net, layer, random_components(net, layer, cand),
                                 thresholds)[0]
    return LayerScore(layer, "components", cand.size, values, quality, base)


# ----------------------------------------------------------------------------- dictionaries


def true_directions(net: Network, layer: int) -> np.ndarray:
    """(T*d, D) unit vectors: the write direction e_i kron x_t^layer of every small neuron."""
    U = truth.circuit_factors(net, layer)[1]
    return U / np.linalg.norm(U, axis=1, keepdims=True)


def _dictionary_values(net: Network, layer: int, atoms: np.ndarray) -> dict[str, float]:
    unit = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-300)
    G = true_directions(net, layer)
    best_true = np.zeros(G.shape[0])
    best_atom = np.zeros(unit.shape[0])
    for lo in range(0, unit.shape[0], _CHUNK):
        cos = np.abs(unit[lo:lo + _CHUNK] @ G.T)
        best_true = np.maximum(best_true, cos.max(axis=0))
        best_atom[lo:lo + _CHUNK] = cos.max(axis=1)
    return {"mmcs": float(best_true.mean()),
            f"recall_cos@{COS_MATCH:g}": float((best_true >= COS_MATCH).mean()),
            f"matched@{COS_MATCH:g}": float((best_atom >= COS_MATCH).mean())}


def score_dictionary(net: Network, layer: int, atoms: Any, *, chance: bool = True
                     ) -> LayerScore:
    """Score a dictionary (K, D) of feature directions for A^layer (module docstring)."""
    _check_network(net)
    layer = _layer(net, layer)
    atoms = validate.array(f"layer {layer} dictionary", atoms, (None, net.D))
    values = _dictionary_values(net, layer, atoms)
    base = {}
    if chance and atoms.shape[0]:
        rand = np.random.default_rng(CHANCE_SEED).standard_normal(atoms.shape)
        base = _dictionary_values(net, layer, rand)
    return LayerScore(layer, "dictionary", int(atoms.shape[0]), values, None, base)


# ----------------------------------------------------------------------------- baselines


def oracle_components(net: Network, layer: int) -> Components:
    """The true subcomponents, labelled, plus the shared part as rank-one terms labelled -1
    (its SVD; none for cis2 and ris-uncapped): sums to W^l exactly."""
    V, U = truth.circuit_factors(net, layer)
    labels = truth.component_labels(net)[:, 0]
    S = truth.shared_matrix(net, layer)
    if np.any(S):
        left, sing, right = np.linalg.svd(S, full_matrices=False)
        keep = sing > sing[0] * 1e-13
        U = np.vstack([U, left[:, keep].T * sing[keep, None]])
        V = np.hstack([V, right[keep].T])
        labels = np.concatenate([labels, np.full(int(keep.sum()), -1)])
    return Components(V, U, labels)


def noisy(cand: Components, sigma: float, seed: int = 0) -> Components:
    """``cand`` with Gaussian noise on both factors, sigma times each factor's RMS entry."""
    sigma = validate.real("sigma", sigma, low=0.0)
    rng = np.random.default_rng(seed)

    def add(X: np.ndarray) -> np.ndarray:
        return X + sigma * np.sqrt(np.mean(X**2)) * rng.standard_normal(X.shape)

    return replace(cand, V=add(cand.V), U=add(cand.U))


def shuffled_labels(cand: Components, seed: int = 0) -> Components:
    """``cand`` with its circuit labels permuted among the candidates labelled >= 0."""
    if cand.labels is None:
        raise validate.ConfigError("shuffled_labels needs labelled candidates")
    labels = cand.labels.copy()
    idx = np.nonzero(labels >= 0)[0]
    labels[idx] = labels[np.random.default_rng(seed).permutation(idx)]
    return replace(cand, labels=labels)


def oracle_dictionary(net: Network, layer: int) -> np.ndarray:
    """The true small-neuron directions of ``layer`` as a dictionary."""
    return true_directions(net, layer)


# ----------------------------------------------------------------------------- report


def table(scores: list[LayerScore]) -> str:
    """The scores as a plain-text table (under 80 columns), chance levels in parentheses."""
    lines = []
    for s in scores:
        lines.append(f"layer {s.layer}: {s.kind}, {s.candidates} candidates")
        for key, value in s.values.items():
            ch = s.chance.get(key)
            tail = "" if ch is None else f"   (chance {ch:.4f})"
            lines.append(f"  {key:<22} {value:>10.4f}{tail}")
    return "\n".join(lines)
