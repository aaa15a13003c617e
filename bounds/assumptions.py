"""Which of the construction's assumptions A1-A5 a network satisfies, with the measured quantity.

The error formulas of ``bounds`` are derived under five assumptions (docs/construction.md):

- A1 sparsity: few active circuits, z << n. Measured: z S^2 / n = z S^2 d / D, the expected
  number of an active circuit's S neurons per block that another active circuit also uses;
  holds when it is below 1.
- A2 inactive circuits ignore small noise: needs a negative bias margin. Measured: the smallest
  margin min_{l,i} (-b^l_i); holds when it is > 0, not applicable for L = 1 (no layer passes
  noise on to another).
- A3 an inactive circuit stays at zero: its input is zero (always so here: a batch feeds only its
  active circuits) and b^l <= 0. Measured: the largest bias entry; holds when it is <= 0.
- A4 weights of different circuits are uncorrelated. Measured: the mean cosine similarity of the
  flattened weights of distinct circuits at the same layer (all pairs, or ``A4_PAIRS`` random
  pairs); holds when its absolute value is at most ``A4_TOLERANCE``; not applicable for T = 1.
- A5 active circuits do not amplify noise. Measured: the largest spectral norm ||w_t^l||_2 (the
  gain gamma); holds when it is at most 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kernel import validate
from kernel.circuits import Circuits
from kernel.network import Network

#: A4: |mean cross-circuit weight correlation| above this counts as correlated
A4_TOLERANCE = 0.1
#: A4: pairs of circuits sampled per layer when T(T-1)/2 exceeds it
A4_PAIRS = 20000
#: A5: slack for rounding in the spectral norm of weights normalised to 1
A5_SLACK = 1e-9

HOLDS, VIOLATED, NOT_APPLICABLE = "holds", "violated", "not applicable"


@dataclass(frozen=True)
class Assumption:
    """One assumption's verdict: ``status`` is "holds", "violated" or "not applicable";
    ``value`` is the measured ``quantity`` (None when not applicable), ``limit`` what it is
    compared with."""

    name: str
    statement: str
    status: str
    quantity: str
    value: float | None
    limit: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _a1(z: int | None, S: int | None, n: int | None) -> Assumption:
    statement = "few active circuits (z << n)"
    if z is None or S is None or n is None:
        return Assumption("A1", statement, NOT_APPLICABLE, "z*S^2/n (needs z, S and n)", None,
                          "< 1")
    value = z * S**2 / n
    return Assumption("A1", statement, HOLDS if value < 1 else VIOLATED,
                      f"z*S^2/n (z={z}, S={S}, n={n})", value, "< 1")


def _a2(circ: Circuits) -> Assumption:
    margin = 0.0 - float(circ.bias.max())  # 0.0 - : no "-0" for a zero bias
    if circ.L < 2:
        return Assumption("A2", "inactive circuits ignore small noise (bias margin)",
                          NOT_APPLICABLE, "smallest bias margin min(-b)", margin,
                          "> 0 (needs L >= 2)")
    return Assumption("A2", "inactive circuits ignore small noise (bias margin)",
                      HOLDS if margin > 0 else VIOLATED, "smallest bias margin min(-b)", margin,
                      "> 0")


def _a3(circ: Circuits) -> Assumption:
    value = float(circ.bias.max())
    return Assumption("A3", "inactive circuits stay at zero (zero input, bias <= 0)",
                      HOLDS if value <= 0 else VIOLATED, "largest bias entry max(b)", value,
                      "<= 0")


def _a4(circ: Circuits, seed: int) -> Assumption:
    T = circ.T
    statement = "weights of different circuits are uncorrelated"
    quantity = "mean cosine similarity of distinct circuits' weights"
    if T < 2:
        return Assumption("A4", statement, NOT_APPLICABLE, quantity, None,
                          f"|.| <= {A4_TOLERANCE} (needs T >= 2)")
    w = circ.weights.reshape(circ.L, T, -1)
    norms = np.linalg.norm(w, axis=2)
    unit = np.divide(w, norms[..., None], out=np.zeros_like(w), where=norms[..., None] > 0)
    rng = np.random.default_rng(seed)
    if T * (T - 1) // 2 <= A4_PAIRS:
        i, j = np.triu_indices(T, k=1)
    else:
        i = rng.integers(0, T, A4_PAIRS)
        j = (i + rng.integers(1, T, A4_PAIRS)) % T  # uniform over the other T-1 circuits
    value = float(np.einsum("lpk,lpk->lp", unit[:, i], unit[:, j]).mean())
    return Assumption("A4", statement, HOLDS if abs(value) <= A4_TOLERANCE else VIOLATED,
                      quantity, value, f"|.| <= {A4_TOLERANCE}")


def _a5(circ: Circuits) -> Assumption:
    value = circ.gain()
    return Assumption("A5", "active circuits do not amplify noise",
                      HOLDS if value <= 1 + A5_SLACK else VIOLATED,
                      "largest spectral norm ||w||_2 (gain gamma)", value, "<= 1")


def check_assumptions(net: Network, z: int = 2, *, seed: int = 0) -> list[Assumption]:
    """Report each assumption A1-A5 for ``net`` driven with ``z`` active circuits per sample.

    Parameters
    ----------
    net : the network (any family, or user circuits).
    z : active circuits per sample (A1 depends on it), 1 <= z <= T.
    seed : seed of the pairs sampled for A4 when there are more than ``A4_PAIRS``.

    Returns
    -------
    list of Assumption, in the order A1..A5.
    """
    z = validate.integer("z", z, low=1, high=net.T)
    return check_circuits(net.circuits, z=z, S=net.S, n=net.n, seed=seed)


def check_circuits(circ: Circuits, *, z: int | None = None, S: int | None = None,
                   n: int | None = None, seed: int = 0) -> list[Assumption]:
    """``check_assumptions`` for small circuits not (yet) placed in a network.

    A1 depends on how the circuits are placed and driven: it is "not applicable" unless ``z``,
    ``S`` and ``n`` are all given. A2-A5 depend on the circuits only.
    """
    seed = validate.seed(seed)
    return [_a1(z, S, n), _a2(circ), _a3(circ), _a4(circ, seed), _a5(circ)]


def violated_among(required: Iterable[str], report: list[Assumption]) -> list[str]:
    """The names in ``required`` (e.g. an estimate's ``("A1", "A4")``) whose status in
    ``report`` (``check_assumptions``) is "violated", in the report's order (A1..A5)."""
    wanted = set(required)
    return [a.name for a in report if a.name in wanted and a.status == VIOLATED]

