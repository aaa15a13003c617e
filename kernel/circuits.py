"""The small circuits (weights, shared bias, inputs) and their ground-truth forward pass.

Weights are stored layer-major, shape (L, T, d, d), so that one layer of all circuits is contiguous
for the kernels; user arrays come in the user layout (T, L, d, d) and are transposed once.
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


def _rotations(rng: np.random.Generator, T: int) -> np.ndarray:
    """(T, 2, 2) rotations by angles uniform in [0, 2 pi)."""
    phi = rng.uniform(0.0, 2.0 * np.pi, T)
    cos, sin = np.cos(phi), np.sin(phi)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def rotation_mean_weight(d: int, b: float) -> np.ndarray:
    """The rotation family's common weight w_bar (d x d), d = 4 or 3, bias size b."""
    if d == 4:
        return np.array([[2.0, -2.0, 0, 0], [2.0, -2.0, 0, 0],
                         [1 + b, -(1 + b), 0, 0], [1 + b, -(1 + b), 0, 0]])
    w = np.zeros((3, 3))
    w[:, 0] = 1 + b
    return w


def rotation_bias(d: int, b: float) -> np.ndarray:
    """The rotation family's bias (d,): (-0.5, -1.5, -b, -b) for d = 4, -b for d = 3."""
    return np.array([-0.5, -1.5, -b, -b]) if d == 4 else np.full(3, -b)


def rotation_inputs(d: int, theta: np.ndarray) -> np.ndarray:
    """Inputs (..., d) of rotation circuits for angles theta (...): the on-indicator set to 1 and
    x = (cos theta, sin theta) stored as x + 1 (so it stays >= 0)."""
    x = np.stack([1.0 + np.cos(theta), 1.0 + np.sin(theta)], axis=-1)
    head = np.array([1.5, 0.5]) if d == 4 else np.array([1.0])
    return np.concatenate([np.broadcast_to(head, (*theta.shape, head.size)), x], axis=-1)


def _rotation(
    rng: np.random.Generator, T: int, L: int, d: int, b: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation circuits [RiS]: w_t = w_bar + dw_t, the same at every layer (recurrent); dw_t
    rotates x by R_t and compensates the +1 offset of the stored x through the on-indicator."""
    if d not in (3, 4):
        raise validate.ConfigError(f"d={d} must be 3 or 4 for family 'rotation'")
    R = _rotations(rng, T)
    ones = R.sum(axis=2)  # (T, 2): R_t 1
    w = np.broadcast_to(rotation_mean_weight(d, b), (T, d, d)).copy()
    if d == 4:
        w[:, 2:, 0] -= ones
        w[:, 2:, 1] += ones
        w[:, 2:, 2:] += R
    else:
        w[:, 1:, 0] -= ones
        w[:, 1:, 1:] += R
    theta = rng.uniform(0.0, 2.0 * np.pi, T)
    return np.broadcast_to(w, (L, T, d, d)), rotation_inputs(d, theta)


def _sample_rotation_inputs(
    circuits: Circuits, active: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A fresh input angle theta per sample and active circuit."""
    return rotation_inputs(circuits.d, rng.uniform(0.0, 2.0 * np.pi, active.shape))


def rotation_task(a: np.ndarray) -> dict[str, np.ndarray]:
    """The rotation task's quantities read from states or read-outs a (..., d), d = 4 or 3:
    ``on`` (..., 1) = a0 - a1 (d = 4) or a0 (d = 3), and ``x`` (..., 2) = (x1, x2) - on."""
    on = a[..., 0:1] - a[..., 1:2] if a.shape[-1] == 4 else a[..., 0:1]
    return {"on": on, "x": a[..., -2:] - on}


FamilyMaker = Callable[[np.random.Generator, int, int, int, float], tuple[np.ndarray, np.ndarray]]
InputSampler = Callable[["Circuits", np.ndarray, np.random.Generator], np.ndarray]
TaskReader = Callable[[np.ndarray], dict[str, np.ndarray]]


def _without_b(maker: Callable[..., tuple[np.ndarray, np.ndarray]]) -> FamilyMaker:
    return lambda rng, T, L, d, b: maker(rng, T, L, d)


@dataclass(frozen=True)
class Family:
    """A named family of circuits.

    make(rng, T, L, d, b) -> weights (L, T, d, d), default inputs (T, d); ``own_bias(d, b)``
    the family's bias (d,) (added to the shared beta) or None; ``sample_inputs(circuits, active,
    rng)`` per-sample inputs (B, z, d) or None (then the default inputs); ``task(a)`` the named
    quantities the family's task reads from a state (for task metrics) or None.
    """

    make: FamilyMaker
    own_bias: Callable[[int, float], np.ndarray] | None = None
    sample_inputs: InputSampler | None = None
    task: TaskReader | None = None


#: family name -> Family (docs/construction.md and the follow-up's rotation circuits)
FAMILIES: dict[str, Family] = {
    "signed": Family(_without_b(_signed)),
    "gaussian": Family(_without_b(_gaussian)),
    "permutation": Family(_without_b(_permutation)),
    "rotation": Family(_rotation, rotation_bias, _sample_rotation_inputs, rotation_task),
}


def family_of(circuits: Circuits) -> Family | None:
    """The registry entry of the circuits' family (None for user circuits)."""
    return FAMILIES.get(circuits.family)


def sample_inputs(circuits: Circuits, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inputs (B, z, d) of the active circuits of a batch: the family's per-sample draw, or the
    circuits' default inputs."""
    fam = family_of(circuits)
    if fam is not None and fam.sample_inputs is not None:
        return fam.sample_inputs(circuits, active, rng)
    return circuits.inputs[active]


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
    family: str,
    T: int,
    L: int,
    d: int,
    *,
    bias: float | np.ndarray = 0.0,
    seed: int = 0,
    rot_bias: float = 1.0,
) -> Circuits:
    """Draw T circuits of a named family (docs/construction.md) from one seed.

    Parameters
    ----------
    family : one of ``FAMILIES`` ("signed", "gaussian", "permutation", "rotation").
    T, L, d : number of circuits, layers, width.
    bias : shared bias beta (scalar, <= 0) or an (L, d) array; for ``rotation`` it is added to
        the family's own bias.
    seed : seed of the draw.
    rot_bias : bias size b of ``rotation`` (>= 0; ignored by the other families).
    """
    family = validate.choice("family", family, FAMILIES)
    T = validate.integer("T", T, low=1)
    L = validate.integer("L", L, low=1)
    d = validate.integer("d", d, low=1)
    b = validate.real("rot_bias", rot_bias, low=0.0)
    rng = np.random.default_rng(validate.seed(seed))
    fam = FAMILIES[family]
    w, x = fam.make(rng, T, L, d, b)
    shared = _bias(bias, L, d)
    if fam.own_bias is not None:
        shared = shared + fam.own_bias(d, b)
    return Circuits(np.ascontiguousarray(w), shared, np.ascontiguousarray(x), family)


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


def with_on_indicator(
    weights: np.ndarray, biases: np.ndarray, inputs: np.ndarray, *, margin: float = 1.0
) -> Circuits:
    """Rewrite circuits with their own biases as bias-free circuits of width d + 1.

    Neuron 0 of the new circuits is an on-indicator: 1 at every layer while the circuit is active
    (its input is 1 and ``on' = ReLU((1 + m) on - m)`` keeps 1 at 1), 0 while inactive. Its
    outgoing weights carry the bias: ``w'[i+1, 0] = b_t[i] + m``. The shared bias is ``-m`` on
    every neuron, so an inactive circuit (all zero) stays zero with margin m (A2, A3), and an
    active one computes exactly ``a^l = ReLU(w^l a^{l-1} + b_t^l)`` in neurons 1..d.

    Parameters
    ----------
    weights : (T, L, d, d) the circuits' weights (the user layout).
    biases : (T, L, d) each circuit's own bias per layer (any sign).
    inputs : (T, d) default inputs (>= 0).
    margin : m > 0, the shared negative bias (A2 margin).

    Returns
    -------
    Circuits of width d + 1 with inputs (1, a^0) and shared bias -m; family ``"user"``.
    """
    w = np.asarray(weights)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise validate.ConfigError(f"weights has shape {w.shape}, expected (T, L, d, d)")
    T, L, d, _ = w.shape
    w = validate.array("weights", w, (T, L, d, d))
    b = validate.array("biases", biases, (T, L, d))
    x = validate.array("inputs", inputs, (T, d))
    m = validate.real("margin", margin, low=0.0)
    if m <= 0:
        raise validate.ConfigError(f"margin={m} must be > 0 (A2 needs a negative shared bias)")
    out = np.zeros((T, L, d + 1, d + 1))
    out[:, :, 0, 0] = 1.0 + m
    out[:, :, 1:, 1:] = w
    out[:, :, 1:, 0] = b + m
    x_on = np.concatenate([np.ones((T, 1)), x], axis=1)
    return circuits_from_arrays(out, np.full((L, d + 1), -m), x_on)


def mean_active_norms(circuits: Circuits, chunk: int = 8192) -> np.ndarray:
    """(L+1,) mean over all circuits of |a_t^l| on their default inputs: the scale of the
    false-activation threshold. A property of the circuits alone, so a sample's false
    activations do not depend on the batch it is run in (a threshold from the batch's own
    active norms would); computed in chunks of ``chunk`` circuits (bounded memory)."""
    T, L = circuits.T, circuits.L
    total = np.zeros(L + 1)
    for lo in range(0, T, chunk):
        ids = np.arange(lo, min(T, lo + chunk))[:, None]
        _, a = run_small(circuits, ids, circuits.inputs[ids])
        total += np.linalg.norm(a[:, :, 0], axis=-1).sum(axis=0)
    return total / max(T, 1)


def run_small(
    circuits: Circuits, active: np.ndarray, inputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: each active circuit run on its own.

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
