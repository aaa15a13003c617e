"""Capacity (docs/capacity.md): T_max of the design, the packing bound, the T log T d^2/D^2
condition, and the inverse problem (largest T, smallest D for an error budget).

Two inverse problems live here:

* the *post's* (``largest_T``, ``smallest_D``): closed forms from the leading-order active MSE
  ``L (z-1)(d/D)|a|^2 + (L-1) z T (d/D)^2 |wa|^2`` (the post). Its regime is A1, A2, A4 and
  every active neuron on. It is **optimistic at beta = 0**: with ``signed`` circuits, D = 4000,
  d = 4, z = 2, L = 4, S = 6 and a budget of 0.05 it allows T <= 7666, while at T = 3000 the
  measured layer-4 active MSE is already 0.16 (3x the budget; ``cis run`` and
  tests/test_bounds_measure.py). The cause is the inactive feedback (A2 fails at beta = 0): noise
  on inactive circuits is rectified, re-enters through W and compounds with depth, which the
  formula drops.
* the *semi-analytic* one (``cavity_largest_T``, ``cavity_smallest_D``): bisection on the
  layer-L active MSE predicted by the cavity recursion of ``bounds.cavity`` (ReLU and inactive
  feedback included; it reads only the small circuits and the realised pattern design, never runs
  the large network). For the budget 0.05 above it gives T* = 1716 (the cavity predicts 0.164 at
  T = 3000 against 0.16 measured). This is what ``cis capacity --budget`` reports as
  ``largest_T`` / ``smallest_D``; the post's numbers are reported beside it as ``*_post``.
  Regime: that of the cavity recursion (overlaps <= 1, i.e. variants ``plain``/``corrected``;
  z S^2 d/D <= 1.2); tested against measurement in tests/test_bounds_capacity.py.
"""

from __future__ import annotations

import math

from bounds import cavity
from bounds.search import largest_passing
from kernel import patterns
from kernel.validate import ConfigError, integer, real

#: Monte Carlo pool size of the cavity recursion used by the inverse problem (its returned std
#: error at the budget is ~1-3% of the MSE, its seed-to-seed scatter up to a few times that:
#: docs/cavity.md, "Finite pools"; the bisection is deterministic for fixed seeds)
CAVITY_SAMPLES = 4000

#: ``cavity_largest_T`` checks monotonicity only between evaluated T at least this factor apart
MONOTONE_STEP = 1.05


def t_max(n: int, S: int) -> int:
    """T_max(n, S) of the prime-step design (see docs/capacity.md).

    >>> t_max(250, 6)
    557
    """
    return patterns.capacity(n, S)


def packing_bound(n: int, S: int) -> int:
    """floor(n (n-1) / (S (S-1))): largest T of any design with pairwise overlap <= 1
    (docs/capacity.md).

    >>> packing_bound(250, 6)
    2075
    """
    return patterns.packing_bound(n, S)


def tlogt_condition(T: int, d: int, D: int) -> float:
    """T log(T) d^2 / D^2 (docs/capacity.md): must be small for the worst case over all circuits.

    >>> round(tlogt_condition(3000, 4, 4000), 4)
    0.024
    """
    return T * math.log(max(T, 1)) * d**2 / D**2


def largest_T(budget: float, D: int, d: int, z: int, L: int, a2: float = 1.0,
              wa2: float = 1.0) -> int:
    """Largest T with the post's active MSE at layer L within ``budget`` (see docs/capacity.md).

    Solves ``L (z-1)(d/D) a2 + (L-1) z T (d/D)^2 wa2 <= budget`` for T. Returns 0 when even the
    overlap part alone exceeds the budget. For L = 1 (no propagation term) the formula puts no
    limit on T; then the packing bound of n = D/d at S = 2 (the most any <=1-overlap design can
    hold) is returned. Callers cap T with ``t_max`` of their S. Regime: that of
    ``bounds.leading.active_mse`` (A1, A2, A4, all active neurons on): an optimistic capacity for
    ``signed``/``gaussian`` at beta = 0, where the inactive
    feedback dominates from layer 2 on: the example below (signed, S = 6) allows 7666 although
    the measured layer-4 active MSE at T = 3000 is already 0.16 > 0.05. Use
    ``cavity_largest_T`` for a capacity that holds up against measurement.

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

    Positive root x = d/D of ``(L-1) z T wa2 x^2 + L (z-1) a2 x - budget = 0`` (docs/capacity.md).
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


def cavity_active_mse(T: int, D: int, d: int, z: int, L: int, S: int, *, bias: float = 0.0,
                      family: str = "signed", variant: str = "plain", seed: int = 0,
                      samples: int = CAVITY_SAMPLES, cavity_seed: int = 0,
                      circuit_sample: int | None = None) -> tuple[float, float]:
    """Cavity-predicted active MSE at layer L and its Monte Carlo std error, for T circuits.

    Builds the configuration's small circuits and pattern design exactly as ``cis run`` with the
    same ``seed`` would (``kernel.build_network``; the large network is never run) and runs
    ``bounds.cavity.cavity_recursion`` with ``samples`` trajectories and seed ``cavity_seed``.

    ``circuit_sample`` (``plain`` variant only; otherwise the network is built as above): draw
    only that many circuits of the family (when T is larger) and the prime-step design of T
    patterns, without the network's per-layer offsets: the memory of T circuits' weights
    (L T d^2 floats) is what limits the scaling runs (T ~ 5 10^6 at D ~ 10^6, L = 4). The same
    statistics, other random numbers (tested against the full build).
    """
    from bounds.cavity import cavity_recursion
    from kernel.network import build_network

    if circuit_sample is not None and T > circuit_sample and variant == "plain":
        from kernel.circuits import make_circuits

        c = make_circuits(family, int(circuit_sample), L, d, bias=bias, seed=seed)
        design = patterns.prime_step_patterns(D // d, S, T)
        pred = cavity_recursion(c.weights, c.bias, c.inputs, design, D // d, z,
                                samples=samples, seed=cavity_seed)
        return pred[L].active["mse"], pred[L].active_se
    net = build_network(D=D, d=d, S=S, T=T, L=L, family=family, bias=bias, variant=variant,
                        seed=seed)
    c = net.circuits
    pred = cavity_recursion(c.weights, c.bias, c.inputs, net.design, net.n, z,
                            read_c=net.read_c, samples=samples, seed=cavity_seed)
    return pred[L].active["mse"], pred[L].active_se


def cavity_task_mse(T: int, D: int, d: int, z: int, L: int, S: int, *, construction: str,
                    kappa_scale: float = 1.0, rot_bias: float = 1.0, seed: int = 0,
                    samples: int = CAVITY_SAMPLES, cavity_seed: int = 0,
                    quantity: str = "x") -> tuple[float, float]:
    """The active task error E|q - q_hat|^2 at layer L of rotation circuits under
    ``construction`` predicted by ``bounds.cavity_constructions`` (any construction, ``cis2``
    included), and its Monte Carlo std error, for T circuits. The network's small circuits,
    design and construction constants are built as ``cis run`` with the same ``seed`` would
    (the large network is never run)."""
    from bounds.cavity_constructions import construction_cavity
    from kernel.network import build_network

    net = build_network(D=D, d=d, S=S, T=T, L=L, family="rotation", construction=construction,
                        kappa_scale=kappa_scale, rot_bias=rot_bias, seed=seed)
    pred = construction_cavity(net, z, samples=samples, seed=cavity_seed)[L]
    return pred.task["active"][quantity], pred.task_se["active"][quantity]


def _check_cavity_regime(D: int, d: int, z: int, S: int, variant: str) -> None:
    if D % d:
        raise ConfigError(f"D={D} must be divisible by d={d} (D = d*n)")
    if variant == "random":
        raise ConfigError("the cavity inverse problem needs overlaps <= 1 "
                          "(variant plain or corrected, not random)")


def cavity_largest_T(budget: float, D: int, d: int, z: int, L: int, S: int, *,
                     bias: float = 0.0, family: str = "signed", variant: str = "plain",
                     seed: int = 0, samples: int = CAVITY_SAMPLES, cavity_seed: int = 0
                     ) -> dict[str, object]:
    """Largest T <= T_max(D/d, S) whose cavity-predicted active MSE at layer L is <= ``budget``.

    Semi-analytic capacity (docs/capacity.md, with the inactive feedback): integer search over T
    in [z, T_max(n, S)] on ``cavity_active_mse`` (``bounds.search.largest_passing`` from T_max:
    galloping down, then bisection to adjacent integers; each evaluation a cavity recursion with
    ``samples`` trajectories; seeds fixed, so the answer is reproducible).

    Assumptions: the predicted MSE is non-decreasing in T (more circuits share each neuron: more
    overlap noise and more inactive feedback). Checked on the evaluated points: ``monotone`` is
    False when an evaluated T at least 5% larger than another (``MONOTONE_STEP``) predicted a
    smaller MSE by more than 3 Monte Carlo std errors (then T* is one crossing of the budget, not
    necessarily the largest). Closer points are not compared: each T draws its own circuits and
    pools, and their predictions scatter by more than the returned std error, which leaves out
    the pools' own variance (docs/cavity.md, "Finite pools"; at D = 4000, L = 4 the bisection's
    T = 1695 and 1713 predict 0.0482 and 0.0456, std error 0.0007). The circuits are those
    ``kernel.build_network`` draws for each T with ``seed`` (the family's statistics, not one
    fixed set of circuits). Regime: that of ``bounds.cavity`` (overlaps <= 1: ``plain`` or
    ``corrected``; z S^2 d/D <= 1.2, flagged in ``in_regime``); measured within ~5% for
    ``signed`` at D = 4000, beta 0 / -0.05, layers 1-4, and tested against measurement at the
    bisection's answer in tests/test_bounds_capacity.py. Returns ``largest_T`` (0 when even T = z
    exceeds the budget), the prediction at it (``predicted_mse``, ``predicted_se``), the
    evaluated points and the regime flags.
    """
    budget = real("budget", budget, low=0.0)
    D = integer("D", D, low=1)
    d = integer("d", d, low=1)
    z = integer("z", z, low=1)
    L = integer("L", L, low=1)
    S = integer("S", S, low=1)
    _check_cavity_regime(D, d, z, S, variant)
    n = D // d
    cap = t_max(n, S)
    if z > cap:
        raise ConfigError(f"z={z} exceeds T_max(n={n}, S={S}) = {cap}")
    points: dict[int, tuple[float, float]] = {}

    def f(T: int) -> float:
        if T not in points:
            points[T] = cavity_active_mse(T, D, d, z, L, S, bias=bias, family=family,
                                          variant=variant, seed=seed, samples=samples,
                                          cavity_seed=cavity_seed)
        return points[T][0]

    best, _ = largest_passing(lambda T: f(T) <= budget, cap, z, cap, rtol=0.0, grow=2.0)
    ts = sorted(points)
    monotone = all(points[b][0] >= points[a][0] - 3 * max(points[a][1], points[b][1])
                   for a in ts for b in ts if b >= MONOTONE_STEP * a)
    a1 = z * S * S * d / D
    mse, se = points.get(best, (0.0, 0.0))
    return {"largest_T": best, "T_max": cap, "predicted_mse": mse, "predicted_se": se,
            "evaluated": [(t, points[t][0]) for t in ts], "monotone": monotone,
            "in_regime": a1 <= cavity.A1_LIMIT, "zS2d_over_D": a1}


def cavity_smallest_D(budget: float, T: int, d: int, z: int, L: int, S: int, *,
                      bias: float = 0.0, family: str = "signed", variant: str = "plain",
                      seed: int = 0, samples: int = CAVITY_SAMPLES, cavity_seed: int = 0,
                      max_factor: int = 64) -> int:
    """Smallest D = d n (T <= T_max(n, S)) whose cavity-predicted layer-L active MSE is <= budget.

    Integer search (``bounds.search.largest_passing``) over n from ``smallest_block(T, S)`` (the
    design must hold T circuits) up to ``max_factor`` times that, assuming the prediction is
    non-increasing in n (fewer circuits per neuron). A block n between with T_max(n, S) < T
    (prime-step gaps) counts as failing. Returns 0 when even n = max_factor * smallest_block
    exceeds the budget. Regime and assumptions: as ``cavity_largest_T``.
    """
    budget = real("budget", budget, low=0.0)
    T = integer("T", T, low=1)
    d = integer("d", d, low=1)
    z = integer("z", z, low=1)
    L = integer("L", L, low=1)
    S = integer("S", S, low=1)
    _check_cavity_regime(d, d, z, S, variant)

    def ok(n: int) -> bool:
        if t_max(n, S) < T:
            return False
        mse, _ = cavity_active_mse(T, d * n, d, z, L, S, bias=bias, family=family,
                                   variant=variant, seed=seed, samples=samples,
                                   cavity_seed=cavity_seed)
        return mse <= budget

    base = patterns.smallest_block(T, S)
    # the largest failing n; the answer is the next evaluated one, 0 when even the top fails
    _, first_ok = largest_passing(lambda n: not ok(n), base, base, base * max_factor, rtol=0.0,
                                  grow=2.0)
    return d * first_ok


def inverse_problem(budget: float, D: int, d: int, z: int, L: int, *, S: int | None = None,
                    T: int | None = None, a2: float = 1.0, wa2: float = 1.0,
                    method: str = "cavity", bias: float = 0.0, family: str = "signed",
                    variant: str = "plain", seed: int = 0, samples: int = CAVITY_SAMPLES
                    ) -> dict[str, object]:
    """The capacity answer of ``cis capacity --budget`` (see docs/capacity.md).

    ``largest_T`` (and ``smallest_D`` when T is given) is the semi-analytic cavity answer
    (``cavity_largest_T`` / ``cavity_smallest_D``; S defaults to 6, the network default) when
    ``method == "cavity"``; the post's closed forms are always reported beside it as
    ``largest_T_post`` (capped by T_max when S is given), ``largest_T_budget_post`` (uncapped) and
    ``smallest_D_post``, with |a|^2 = a2 and |w a|^2 = wa2 (1 for unit-norm signals and A5 with
    gamma = 1). The post's answer is optimistic at beta = 0 (module docstring). With
    ``method == "post"`` only the post's numbers are computed and ``largest_T`` is the post's.

    >>> inverse_problem(0.05, 4000, 4, 2, 4, method="post")["largest_T"]
    7666
    """
    if method not in ("cavity", "post"):
        raise ConfigError(f"method={method!r} must be one of ['cavity', 'post']")
    T_budget = largest_T(budget, D, d, z, L, a2, wa2)
    out: dict[str, object] = {"budget": budget, "D": D, "d": d, "z": z, "L": L}
    best = T_budget
    if method == "cavity" and S is None:
        S = 6
    if S is not None:
        if D % d:
            raise ConfigError(f"D={D} must be divisible by d={d} (D = d*n)")
        n = D // d
        out.update({"S": S, "T_max": t_max(n, S), "packing_bound": packing_bound(n, S)})
        best = min(best, int(out["T_max"]))  # type: ignore[call-overload]
    out["largest_T_budget_post"] = T_budget
    out["largest_T_post"] = best
    if method == "cavity":
        assert S is not None
        cav = cavity_largest_T(budget, D, d, z, L, S, bias=bias, family=family, variant=variant,
                               seed=seed, samples=samples)
        out.update({"method": "cavity (bounds.cavity recursion, bisection over T)",
                    "bias": bias, "family": family, "variant": variant,
                    "largest_T_cavity": cav["largest_T"],
                    "predicted_mse_at_largest_T": cav["predicted_mse"],
                    "predicted_se_at_largest_T": cav["predicted_se"],
                    "cavity_monotone": cav["monotone"], "cavity_in_regime": cav["in_regime"]})
        best = int(cav["largest_T"])  # type: ignore[call-overload]
    else:
        out["method"] = "post (leading-order formula, optimistic at beta = 0)"
    out["largest_T"] = best
    out["tlogt_condition"] = tlogt_condition(best, d, D) if best > 0 else 0.0
    if T is not None:
        out["T"] = T
        out["smallest_D_post"] = smallest_D(budget, T, d, z, L, a2, wa2)
        if method == "cavity":
            assert S is not None
            out["smallest_D_cavity"] = cavity_smallest_D(budget, T, d, z, L, S, bias=bias,
                                                         family=family, variant=variant,
                                                         seed=seed, samples=samples)
            out["smallest_D"] = out["smallest_D_cavity"]
        else:
            out["smallest_D"] = out["smallest_D_post"]
    return out
