"""SPEC §2, §4 capacity [P]: T_max of the design, the packing bound, the T log T d^2/D^2
condition, and the inverse problem (largest T, smallest D for an error budget)."""

from __future__ import annotations

import math

from kernel import patterns
from kernel.validate import ConfigError, integer, real


def t_max(n: int, S: int) -> int:
    """T_max(n, S) of the prime-step design (SPEC §2 [R]).

    >>> t_max(250, 6)
    557
    """
    return patterns.capacity(n, S)


def packing_bound(n: int, S: int) -> int:
    """floor(n (n-1) / (S (S-1))): largest T of any design with pairwise overlap <= 1 (SPEC §2).

    >>> packing_bound(250, 6)
    2075
    """
    return patterns.packing_bound(n, S)


def tlogt_condition(T: int, d: int, D: int) -> float:
    """T log(T) d^2 / D^2 (SPEC §4 [P]): must be small for the worst case over all circuits.

    >>> round(tlogt_condition(3000, 4, 4000), 4)
    0.024
    """
    return T * math.log(max(T, 1)) * d**2 / D**2


def largest_T(budget: float, D: int, d: int, z: int, L: int, a2: float = 1.0,
              wa2: float = 1.0) -> int:
    """Largest T with the post's active MSE at layer L within ``budget`` (SPEC §4 capacity [P]).

    Solves ``L (z-1)(d/D) a2 + (L-1) z T (d/D)^2 wa2 <= budget`` for T. Returns 0 when even the
    overlap part alone exceeds the budget. For L = 1 (no propagation term) the formula puts no
    limit on T; then the packing bound of n = D/d at S = 2 (the most any <=1-overlap design can
    hold) is returned. Callers cap T with ``t_max`` of their S. Regime: that of
    ``bounds.leading.active_mse`` (A1, A2, A4, all active neurons on): an optimistic capacity for
    ``signed``/``gaussian`` at beta = 0, where the inactive
    feedback dominates from layer 2 on (use ``bounds.cavity`` to check a chosen T).

    >>> largest_T(0.05, 4000, 4, 2, 4)
    7666
    """
    budget = real("budget", budget, low=0.0)
    D = integer("D", D, low=1)
    d = integer("d", d, low=1)
    z = integer("z", z, low=1)
    L = integer("L", L, low=1)
    x = d / D
    room = budget - L * (z - 1) * x * a2
    if room < 0:
        return 0
    if L == 1 or wa2 <= 0:
        return packing_bound(D // d, 2)
    return int(math.floor(room / ((L - 1) * z * x * x * wa2)))


def smallest_D(budget: float, T: int, d: int, z: int, L: int, a2: float = 1.0,
               wa2: float = 1.0) -> int:
    """Smallest D (a multiple of d) with the post's active MSE at layer L within ``budget``.

    Positive root x = d/D of ``(L-1) z T wa2 x^2 + L (z-1) a2 x - budget = 0`` (SPEC §4 [P]).
    Regime: as ``largest_T``. Raises ConfigError for a non-positive budget.

    >>> smallest_D(0.05, 3000, 4, 2, 4)
    2568
    """
    budget = real("budget", budget, low=0.0)
    if budget <= 0:
        raise ConfigError(f"budget={budget} must be > 0 for the smallest D")
    T = integer("T", T, low=1)
    d = integer("d", d, low=1)
    z = integer("z", z, low=1)
    L = integer("L", L, low=1)
    qa = (L - 1) * z * T * wa2
    qb = L * (z - 1) * a2
    if qa > 0:
        x = (-qb + math.sqrt(qb * qb + 4 * qa * budget)) / (2 * qa)
    elif qb > 0:
        x = budget / qb
    else:
        return d
    D = math.ceil(d / x)
    return int(math.ceil(D / d) * d)


def inverse_problem(budget: float, D: int, d: int, z: int, L: int, *, S: int | None = None,
                    T: int | None = None, a2: float = 1.0, wa2: float = 1.0
                    ) -> dict[str, float | int]:
    """The capacity answer of ``cis capacity --budget`` (SPEC §4 capacity [P]).

    Returns the largest T for the budget (``largest_T``), capped by ``T_max(D/d, S)`` and the
    packing bound when S is given, its ``T log(T) d^2/D^2``, and, when T is given, the smallest D
    for that T. Regime: that of the post's active formula (``bounds.leading.active_mse``), with
    |a|^2 = a2 and |w a|^2 = wa2 (1 for unit-norm signals and A5 with gamma = 1).

    >>> inverse_problem(0.05, 4000, 4, 2, 4)["largest_T"]
    7666
    """
    T_budget = largest_T(budget, D, d, z, L, a2, wa2)
    out: dict[str, float | int] = {"budget": budget, "D": D, "d": d, "z": z, "L": L,
                                   "largest_T_budget": T_budget}
    best = T_budget
    if S is not None:
        if D % d:
            raise ConfigError(f"D={D} must be divisible by d={d} (D = d*n)")
        n = D // d
        out.update({"S": S, "T_max": t_max(n, S), "packing_bound": packing_bound(n, S)})
        best = min(best, int(out["T_max"]))
    out["largest_T"] = best
    out["tlogt_condition"] = tlogt_condition(best, d, D) if best > 0 else 0.0
    if T is not None:
        out["T"] = T
        out["smallest_D"] = smallest_D(budget, T, d, z, L, a2, wa2)
    return out
