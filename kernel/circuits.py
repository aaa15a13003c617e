"""SPEC §7: the small circuits (weights, shared bias, inputs) and their ground-truth forward pass.

Weights are stored layer-major, shape (L, T, d, d), so that one layer of all circuits is contiguous
for the kernels; user arrays come in the SPEC's (T, L, d, d) and are transposed once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernel import validate
from kernel._jit_circuits import _orthonormal_q


@dataclass(frozen=True)
class Circuits:
    """T small circuits of L layers and width d.

    Attributes
    ----------
    weights : (L, T, d, d) float64, ``weights[l-1, t]`` is w_t^l.
    bias : (L, d) float64, ``bias[l-1]`` is the shared b^l (<= 0 componentwise, A3).
    inputs : (T, d) float64, default input a_t^0 of each circuit.
    family : name of the family, or ``"user"``.
    """

    weights: np.ndarray
    bias: np.ndarray
    inputs: np.ndarray
    family: str

    @property
    def L(self) -> int:
        return int(self.weights.shape[0])

    @property
    def T(self) -> int:
        return int(self.weights.shape[1])

    @property
    def d(self) -> int:
        return int(self.weights.shape[2])

    def gain(self) -> float:
        """max_t,l ||w_t^l||_2, gamma of A5 (1 for gaussian/permutation, 2 for signed)."""
        return float(np.linalg.norm(self.weights, ord=2, axis=(2, 3)).max())


def _positive_unit(rng: np.random.Generator, T: int, d: int) -> np.ndarray:
    x = np.abs(rng.standard_normal((T, d)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _gaussian(rng: np.random.Generator, T: int, L: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    w = rng.standard_normal((L, T, d, d)) / np.sqrt(d)
    norm = np.linalg.norm(w, ord=2, axis=(2, 3))
    w /= np.maximum(1.0, norm)[..., None, None]
    return w, _positive_unit(rng, T, d)


def _haar_orthogonal(rng: np.random.Generator, shape: tuple[int, ...], m: int) -> np.ndarray:
    """Haar orthogonal m x m matrices: Q of the QR (positive diag R) of Gaussian matrices.

    A numba Gram-Schmidt (``_orthonormal_q``), ~25x faster than batched LAPACK QR at T = 10^6;
    equal to LAPACK's ``Q * sign(diag(R))`` up to rounding.
    """
    x = rng.standard_normal((*shape, m, m))
    return _orthonormal_q(x.reshape(-1, m, m)).reshape(x.shape)


def _signed(rng: np.random.Generator, T: int, L: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    if d % 2:
        raise validate.ConfigError(f"d={d} must be even for family 'signed' (state is (y+, y-))")
    R = _haar_orthogonal(rng, (L, T), d // 2)
    m = d // 2
    w = np.empty((L, T, d, d))  # [[R, -R], [-R, R]], without np.block's copies
    w[..., :m, :m] = R
    w[..., m:, m:] = R
    np.negative(R, out=w[..., :m, m:])
    w[..., m:, :m] = w[..., :m, m:]
    y = rng.standard_normal((T, d // 2))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return w, np.concatenate([np.maximum(y, 0), np.maximum(-y, 0)], axis=1)


def _permutation(rng: np.random.Generator, T: int, L: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    perms = np.argsort(rng.random((L, T, d)), axis=2)
    w = np.zeros((L, T, d, d))
    np.put_along_axis(w, perms[..., None], 1.0, axis=3)
    return w, _positive_unit(rng, T, d)


FamilyMaker = Callable[[np.random.Generator, int, int, int], tuple[np.ndarray, np.ndarray]]

#: family name -> maker(rng, T, L, d) returning weights (L, T, d, d) and inputs (T, d)
FAMILIES: dict[str, FamilyMaker] = {
    "signed": _signed,
    "gaussian": _gaussian,
    "permutation": _permutation,
}


def _bias(bias: float | np.ndarray, L: int, d: int) -> np.ndarray:
    if np.ndim(bias) == 0:
        beta = validate.real("bias", bias, high=0.0)
        return np.full((L, d), beta)
    b = validate.array("bias", bias, (L, d))
    if np.any(b > 0):
        raise validate.ConfigError(
            f"bias has positive entries (max {b.max():g}); the shared bias must be <= 0 (A3)"
        )
    return b


def make_circuits(
    family: str, T: int, L: int, d: int, *, bias: float | np.ndarray = 0.0, seed: int = 0
) -> Circuits:
    """Draw T circuits of a named family (SPEC §7) from one seed.

    Parameters
    ----------
    family : one of ``FAMILIES`` ("signed", "gaussian", "permutation").
    T, L, d : number of circuits, layers, width.
    bias : shared bias beta (scalar, <= 0) or an (L, d) array.
    seed : seed of the draw.
    """
    family = validate.choice("family", family, FAMILIES)
    T = validate.integer("T", T, low=1)
    L = validate.integer("L", L, low=1)
    d = validate.integer("d", d, low=1)
    rng = np.random.default_rng(validate.seed(seed))
    w, x = FAMILIES[family](rng, T, L, d)
    return Circuits(np.ascontiguousarray(w), _bias(bias, L, d), np.ascontiguousarray(x), family)


def circuits_from_arrays(
    weights: np.ndarray, bias: float | np.ndarray, inputs: np.ndarray
) -> Circuits:
    """User circuits: weights (T, L, d, d), bias scalar or (L, d) (<= 0), inputs (T, d) (>= 0)."""
    w = validate.as_array("weights", weights)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise validate.ConfigError(f"weights has shape {w.shape}, expected (T, L, d, d)")
    T, L, d, _ = w.shape
    w = validate.array("weights", w, (T, L, d, d))
    x = validate.array("inputs", inputs, (T, d))
    if np.any(x < 0):
        raise validate.ConfigError("inputs has negative entries; a_t^0 is a ReLU state (>= 0)")
    return Circuits(np.ascontiguousarray(w.transpose(1, 0, 2, 3)), _bias(bias, L, d), x, "user")


def run_small(
    circuits: Circuits, active: np.ndarray, inputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: each active circuit run on its own (SPEC §1).

    Parameters
    ----------
    active : (B, z) circuit indices per sample.
    inputs : (B, z, d) their inputs a^0.

    Returns
    -------
    h : (B, L+1, z, d) bias-free pre-activations h^l = w^l a^{l-1} (h[:, 0] = 0).
    a : (B, L+1, z, d) activations, a[:, 0] = inputs. Inactive circuits are 0 at every layer (A3).
    """
    B, z = active.shape
    L, d = circuits.L, circuits.d
    h = np.zeros((B, L + 1, z, d))
    a = np.zeros((B, L + 1, z, d))
    a[:, 0] = inputs
    for layer in range(1, L + 1):
        w = circuits.weights[layer - 1][active]  # (B, z, d, d)
        h[:, layer] = np.einsum("bzij,bzj->bzi", w, a[:, layer - 1])
        a[:, layer] = np.maximum(h[:, layer] + circuits.bias[layer - 1], 0.0)
    return h, a
