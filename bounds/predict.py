"""All predictions for one network, per layer and circuit class, with regimes.

``predict(net, z)`` reads only the small circuits (weights, bias, inputs), the realised pattern
design and the read-out constant c of ``net``; it never runs the large network. Every estimate
carries the tolerance it claims and whether the configuration is inside its regime, so a checker
can PASS/FAIL it or flag it OUT-OF-REGIME. Every estimate and bound also names the assumptions
A1-A5 it is derived under (``assumptions``); ``cis check`` marks it when ``bounds.assumptions``
finds one of them violated by the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bounds import cavity, cavity_constructions, leading, refined, worst_case
from bounds.moments import CircuitMoments, circuit_moments, small_forward
from kernel import validate
from kernel.measure import Z95

#: A1 as the posts use it: z S^2 d / D <= 0.3 (the post's formulas and the sketch)
A1_LIMIT = 0.3
#: the cavity recursion's own A1 boundary (``bounds.cavity.A1_LIMIT``)
A1_LIMIT_CAVITY = cavity.A1_LIMIT
#: the tail estimate needs dense noise: predicted on-probability of a noise-only neuron
TAIL_DENSE = 0.3
#: ... and circuits of (nearly) equal signal norm: coefficient of variation of |a^l| over circuits
TAIL_CV = 0.1
#: A2 (for the conditional bound): predicted on-probability of a noise-only neuron below this
A2_NOISE_ON = 1e-6
#: A4: |mean_u w_u|_F^2 / mean_u |w_u|_F^2 below this
A4_LIMIT = 0.05
#: circuits per neuron T S/n needed by the Gaussian-noise / d/D approximations (leading, sketch,
#: tail): E[(o/S)^2] = d/D (1 - 1/(T S/n)) roughly, so d/D is within 10% only from here on
LOAD_MIN = 10.0


@dataclass(frozen=True)
class Estimate:
    """One prediction of E|eps|^2 (and of the terms where the model gives them)."""

    model: str
    mse: float
    terms: dict[str, float | None]
    se: float  # Monte Carlo std error of mse (0 for closed forms)
    tol: float  # relative tolerance claimed inside the regime
    in_regime: bool
    regime: str  # the stated regime, and why it fails when it does
    #: the assumptions of ``bounds.assumptions`` (A1-A5) the model is derived under at this layer
    assumptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bound:
    """A worst-case bound on the max abs error component of a class at a layer."""

    kind: str  # "rigorous" or "conditional (A2)"
    value: float
    in_regime: bool
    regime: str
    assumptions: tuple[str, ...] = ()  # as for Estimate


@dataclass
class ClassPrediction:
    layer: int
    cls: str
    estimates: list[Estimate] = field(default_factory=list)
    bound: Bound | None = None
    tail_regime: bool = False
    tail_assumptions: tuple[str, ...] = ()  # as for Estimate, of the log-T tail estimate

    def main(self) -> Estimate | None:
        """The refined estimate, the one ``cis check --json`` reports: the recursion of the
        network's construction (``cavity-ris`` for the follow-up's, else ``cavity``)."""
        by_model = {e.model: e for e in self.estimates}
        return by_model.get("cavity-ris", by_model.get("cavity"))


def _a4_ratio(weights: np.ndarray) -> np.ndarray:
    """Per layer |mean_t w_t|_F^2 / mean_t |w_t|_F^2 (0: zero-mean weights, A4)."""
    mean = weights.mean(axis=1)
    total = (weights**2).sum(axis=(2, 3)).mean(axis=1)
    return (mean**2).sum(axis=(1, 2)) / np.maximum(total, 1e-300)


def predict(net: Any, z: int, *, samples: int = 40000, seed: int = 0,
            h1_max: float | None = None) -> list[dict[str, ClassPrediction]]:
    """Predictions for layers 0..L: ``[{"active": ClassPrediction, "inactive": ...}, ...]``.

    Models: ``leading`` (the post, ``bounds.leading``), ``layer1-exact`` (finite-size + ReLU of
    the shared neuron, ``bounds.refined.layer1_exact``, layer 1, plain), ``sketch`` (the
    inactive-feedback growth, ``bounds.refined.inactive_feedback_recursion``, inactive, layer 2)
    and ``cavity`` (the full recursion, ``bounds.cavity``). Worst case: the rigorous layer-1 bound
    and the A2-conditional overlap bound of inactive circuits (``h1_max``: max |h^1| of the batch
    judged, for families whose inputs are drawn per sample; default: the circuits' own inputs).

    Every model here describes the ``cis2`` weights: with another construction (the follow-up's,
    ``kernel.constructions``) only layer 1 (W^1 = I, the same network) is in regime.
    """
    z = validate.integer("z", z, low=1, high=net.T)
    samples = validate.integer("samples", samples, low=1)
    seed = validate.seed(seed)
    c = net.circuits
    D, d, S, T, L, n = net.D, net.d, net.S, net.T, net.L, net.n
    variant = net.config.variant
    beta = c.bias
    mom: CircuitMoments = circuit_moments(c.weights, c.bias, c.inputs, seed=seed)
    h_all, a_all = small_forward(c.weights, c.bias, c.inputs)
    h1_top = float(np.abs(h_all[1]).max()) if h1_max is None else float(h1_max)
    norms = np.linalg.norm(a_all, axis=-1)  # (L+1, T)
    cv = norms.std(axis=1) / np.maximum(norms.mean(axis=1), 1e-300)
    cav = cavity.cavity_recursion(c.weights, c.bias, c.inputs, net.design, n, z,
                                  read_c=net.read_c, samples=samples, seed=seed)
    ris = (cavity_constructions.memoized(net, z, samples, seed)
           if net.config.construction != "cis2" else None)
    m1, m2 = refined.realised_overlap_moments(net.design, n)
    a1 = z * S * S * d / D
    a1_ok = a1 <= A1_LIMIT
    a4 = _a4_ratio(c.weights)
    ovl_ok = variant != "random"
    all_on = [bool(mom.frac_on[k] == 1.0) for k in range(L + 1)]
    a2_layer = [True] + [cav[k].frac_on_noise < A2_NOISE_ON for k in range(1, L + 1)]
    g2 = mom.gain[2] if L >= 2 else 0.0
    load_c = T * S / n
    # sharing circuits per neuron; the Gaussian-noise and d/D approximations need many of them
    many = load_c >= LOAD_MIN
    load_why = f"few circuits per neuron: T S/n = {load_c:.3g} < {LOAD_MIN}"
    fresh = [0.0] + [leading.inactive_mse(z, D, d, mom.a2[k]) for k in range(1, L + 1)]
    sketch = refined.inactive_feedback_recursion(fresh, load_c, g2, S)
    out: list[dict[str, ClassPrediction]] = []
    for layer in range(L + 1):
        row: dict[str, ClassPrediction] = {}
        for cls in ("active", "inactive"):
            cp = ClassPrediction(layer, cls)
            if layer == 0:
                cp.estimates.append(Estimate("exact", 0.0, dict.fromkeys(cavity.TERMS, 0.0), 0.0,
                                             0.0, True, "layer 0 is the exact input"))
                row[cls] = cp
                continue
            why = []
            other_w = layer >= 2 and net.config.construction != "cis2"
            if other_w:
                why.append(f"construction {net.config.construction!r} (models assume cis2)")
            if not a1_ok:
                why.append(f"A1: z S^2 d/D = {a1:.3g} > {A1_LIMIT}")
            if not ovl_ok:
                why.append("variant 'random' has overlaps > 1")
            a4_fail = layer >= 2 and bool(a4[: layer].max() > A4_LIMIT)
            if a4_fail:
                why.append(f"A4: mean weight ratio {a4[:layer].max():.3g} > {A4_LIMIT}")
            # --- leading order (the post)
            lw = list(why)
            # the inactive formula uses <|a^l|^2>, so cut ReLUs matter to it only via depth
            if not all(all_on[1 : layer + 1]) and (cls == "active" or layer >= 2):
                lw.append("ReLUs cut (not every active neuron on)")
            if layer >= 2 and not all(a2_layer[1:layer]):
                lw.append("A2 fails (noise switches inactive neurons on)")
            terms: dict[str, float | None]
            if cls == "active":
                tot = leading.active_mse(layer, z, T, D, d, mom.h2, mom.wa2)
                terms = {"overlap": leading.overlap_term_active(z, D, d, mom.h2[layer]),
                         "propagation": leading.active_propagation(layer, z, T, D, d, mom.h2,
                                                                    mom.wa2),
                         "relu": 0.0}
            else:
                tot = leading.inactive_mse(z, D, d, mom.a2[layer])
                terms = {"overlap": leading.overlap_term_inactive(z, D, d, mom.h2[layer]),
                         "propagation": None, "relu": None}
            if not many:
                lw.append(load_why + " (d/D vs E[(o/S)^2])")
            cp.estimates.append(Estimate("leading", tot, terms, 0.0, 0.2, not lw,
                                         "A1, A2, A4, all active neurons on" + _why(lw),
                                         ("A1", "A2", "A4") if layer >= 2 else ("A1",)))
            # --- finite-size + ReLU at layer 1
            if layer == 1:
                act, ina = refined.layer1_exact(h_all[1], beta[0], S, z, m1 * S, seed=seed)
                h_mean_sq = float((mom.h_mean[1] ** 2).sum())
                if cls == "active":
                    ovl = refined.overlap_term_active_refined(z, m1, m2, mom.h2[1], h_mean_sq)
                else:
                    ovl = refined.overlap_term_inactive_refined(z, m1, m2, mom.h2[1], h_mean_sq)
                fw = list(why)
                if variant != "plain":
                    fw.append("plain read-out only")
                elif net.read_c:
                    fw.append("plain read-out only (this construction reads with u_t)")
                cp.estimates.append(Estimate(
                    "layer1-exact", act if cls == "active" else ina,
                    {"overlap": ovl, "propagation": 0.0, "relu": None}, 0.0, 0.2, not fw,
                    "layer 1, plain, overlaps <= 1, A1" + _why(fw), ("A1",)))
            # --- closed-form sketch of the inactive feedback (layer 2, beta = 0)
            if cls == "inactive" and layer == 2:
                sw = list(why)
                if np.any(beta[:2] != 0):
                    sw.append("beta != 0")
                if variant != "plain":
                    sw.append("plain read-out only")
                if not many:
                    sw.append(load_why + " (noise not Gaussian)")
                cp.estimates.append(Estimate("sketch", sketch[2], dict.fromkeys(cavity.TERMS),
                                             0.0, 0.2, not sw,
                                             "layer 2, beta = 0, plain" + _why(sw),
                                             ("A1", "A4")))
            # --- the cavity recursion (carries the actual pushed vectors: A4 not needed)
            pred = cav[layer]
            vals = pred.active if cls == "active" else pred.inactive
            se = pred.active_se if cls == "active" else pred.inactive_se
            cw = ([f"construction {net.config.construction!r} (models assume cis2)"]
                  if other_w else []) + cavity_constructions.outside(net, z)
            cp.estimates.append(Estimate("cavity", vals["mse"],
                                         {k: vals[k] for k in cavity.TERMS}, se,
                                         0.2 if layer <= 2 else 0.3, not cw,
                                         f"z S^2 d/D <= {A1_LIMIT_CAVITY}, overlaps <= 1"
                                         + _why(cw), ("A1",)))
            # --- the recursion of the follow-up's constructions (their fields and caps)
            if ris is not None:
                r = ris[layer]
                cp.estimates.append(Estimate(
                    "cavity-ris", r.active if cls == "active" else r.inactive,
                    dict.fromkeys(cavity.TERMS), r.active_se if cls == "active" else r.inactive_se,
                    cavity_constructions.TOL, *cavity_constructions.regime(net, z), ("A1",)))
            # --- worst case
            o_max = S if variant == "random" else 1
            if layer == 1:
                z_other = z - 1 if cls == "active" else z
                val = float(worst_case.layer1_bound(z_other, h1_top, S,
                                                    net.read_c, o_max))
                cp.bound = Bound("rigorous", val, True, "always (b <= 0, c >= 0)", ("A3",))
            elif cls == "inactive":
                bw = []
                if other_w:
                    bw.append(f"construction {net.config.construction!r}")
                if not a2_layer[layer] or not all(a2_layer[1:layer]):
                    bw.append("A2 fails: predicted noise-only neurons on "
                              f"{max(cav[k].frac_on_noise for k in range(1, layer + 1)):.2g}")
                if variant != "plain":
                    bw.append("plain read-out only")
                val = worst_case.inactive_overlap_bound(z, float(np.abs(h_all[layer]).max()), S)
                cp.bound = Bound("conditional (A2)", val, not bw, "A2, plain" + _why(bw),
                                 ("A2",))
            # Gaussian tail of one variance: dense noise, many independent zero-mean pushes (A4),
            # circuits of equal signal norm (else the max comes from the loudest circuits)
            cp.tail_regime = (layer >= 2 and not other_w and a1_ok and ovl_ok and many
                              and not a4_fail and cav[layer].frac_on_noise >= TAIL_DENSE
                              and bool(cv[: layer + 1].max() <= TAIL_CV))
            cp.tail_assumptions = ("A1", "A4")
            row[cls] = cp
        out.append(row)
    return out


def _why(reasons: list[str]) -> str:
    return "" if not reasons else " -- outside: " + "; ".join(reasons)


#: verdicts of one judged line; only PASS and FAIL count towards the exit code
VERDICTS = ("PASS", "FAIL", "OUT-OF-REGIME", "LOW-STATS", "ZERO")


def judge(est: Estimate, measured: float, half_width: float) -> tuple[str, float, float]:
    """Verdict of an estimate against a measured mean with 95% half-width ``half_width``.

    Parameters
    ----------
    est : Estimate
        The prediction, with its Monte Carlo std error ``se``, its tolerance ``tol`` and whether
        it is used inside its regime.
    measured : float
        The measured mean-square error.
    half_width : float
        Half-width of the measurement's 95% confidence interval.

    Returns
    -------
    verdict : str
        One of ``VERDICTS``.
    ratio : float
        predicted / measured.
    rel : float
        Relative 95% uncertainty of the ratio: the measurement's ``half_width / measured`` and the
        prediction's ``1.96 se / mse`` added in quadrature.

    Notes
    -----
    In this order: ZERO when prediction and measurement are both below 1e-12; OUT-OF-REGIME when
    the estimate is used outside its stated regime; LOW-STATS when ``rel > tol`` (the measurement
    cannot resolve the tolerance); PASS when the point ratio is inside the band
    ``[1 - tol, 1 + tol]``; FAIL when the ratio's whole 95% interval
    ``[ratio (1 - rel), ratio (1 + rel)]`` lies outside the band; LOW-STATS otherwise (the point
    ratio is outside the band but its interval reaches into it: undecided). So a PASS always
    means a ratio within the stated tolerance, and a FAIL is significant at the 95% level.
    """
    if measured < 1e-12 and est.mse < 1e-12:
        return "ZERO", float("nan"), float("nan")
    ratio = est.mse / measured if measured > 0 else float("inf")
    rel = float(np.hypot(half_width / measured if measured > 0 else np.inf,
                         Z95 * est.se / est.mse if est.mse > 0 else 0.0))
    if not est.in_regime:
        return "OUT-OF-REGIME", ratio, rel
    if rel > est.tol:
        return "LOW-STATS", ratio, rel
    if 1 - est.tol <= ratio <= 1 + est.tol:
        return "PASS", ratio, rel
    outside = ratio * (1 - rel) > 1 + est.tol or ratio * (1 + rel) < 1 - est.tol
    return ("FAIL" if outside else "LOW-STATS"), ratio, rel
