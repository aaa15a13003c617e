"""Predicted vs measured, per layer, circuit class and term, with verdicts (docs/regimes.md).

``compare(params)`` runs one configuration (the options of ``cis run``), measures the three
terms with ``kernel.decompose``, sets every prediction of ``bounds.predict`` beside them and judges
each line. It returns ``cis run``'s JSON object extended per layer and class; ``cis check`` renders
it. The predictions never see the forward pass: they are computed from the network's small
circuits and realised design only. It is application code (it runs the engine and builds the
CLI's JSON), so it lives in ``cis`` above both ``kernel`` and ``bounds``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernel.measure import active_per_sample, ci_half_width, inactive_per_sample

#: fewest Monte Carlo trajectories per replica whose predictions are worth judging. Before the
#: cavity drew distinct sharers (bounds.cavity), small pools were biased upward and a correct
#: model FAILed at 100-200; now the default configuration's layer-4 active prediction over seeds
#: 0-2 is 0.27-0.54 at 100 and 200 trajectories (the pool's floor), 0.33-0.35 at 1000,
#: 0.35-0.38 at 4000 and 0.364-0.368 at 40000 (measured 0.383): below 1000 three replicas are
#: too scattered to say anything
MIN_SAMPLES = 1000

#: fewest Monte Carlo trajectories of the cavity's answer to the inverse problem (cis capacity,
#: capacity sweeps): fewer give no usable statistics
CAVITY_MIN_SAMPLES = 100

#: independent Monte Carlo replicas of every Monte Carlo prediction (the cavity): their spread is
#: the prediction's error (the recursion's own std error sees only the last layer's draws, not
#: the noise its pools carry from the layers before, and understates it 3-8x)
REPLICAS = 3

#: two-sided 95% quantile of Student's t with REPLICAS - 1 degrees of freedom, over 1.96: the
#: factor on the replicas' std error that keeps a 95% interval from so few replicas honest
_T95_OVER_Z95 = 4.303 / 1.96


def replica_seeds(seed: int, count: int = REPLICAS) -> list[int]:
    """``seed`` and ``count - 1`` seeds derived from it (independent streams)."""
    extra = np.random.SeedSequence([seed, 1]).generate_state(count - 1).tolist()
    return [seed, *(int(s) for s in extra)]


def monte_carlo_replicas(predict_with: Any, seed: int) -> Any:
    """``predict_with(seed)`` (``bounds.predict.predict``'s layers) for ``REPLICAS`` seeds, with
    every Monte Carlo estimate (se > 0) replaced by the mean of its replicas and a std error
    that carries their spread: ``max(spread, largest own se) / sqrt(R)``, widened to Student's
    t with R - 1 degrees of freedom. Closed forms (se = 0) and everything else are the first
    replica's."""
    import dataclasses

    runs = [predict_with(s) for s in replica_seeds(seed)]
    for layer, per_class in enumerate(runs[0]):
        for cls, cp in per_class.items():
            for i, est in enumerate(cp.estimates):
                if est.se <= 0:
                    continue
                reps = [run[layer][cls].estimates[i] for run in runs]
                mse, se = combine_replicas([r.mse for r in reps], [r.se for r in reps])
                terms = {k: (None if v is None else float(np.mean([r.terms[k] for r in reps])))
                         for k, v in est.terms.items()}
                cp.estimates[i] = dataclasses.replace(est, mse=mse, terms=terms, se=se)
    return runs[0]


def combine_replicas(values: list[float], ses: list[float]) -> tuple[float, float]:
    """The mean of R replicas of a Monte Carlo estimate and its std error: ``max(spread, largest
    own se) / sqrt(R)``, widened to Student's t with R - 1 degrees of freedom."""
    v = np.asarray(values, dtype=np.float64)
    se = max(float(v.std(ddof=1)), max(ses))
    return float(v.mean()), se / np.sqrt(v.size) * _T95_OVER_Z95


def compare(params: dict[str, Any], *, samples: int = 40000,
            assumptions: bool = False) -> tuple[dict[str, Any], bool]:
    """Run, decompose, predict and judge. Returns (the JSON object, whether everything passed).

    Every judged line (estimate, bound, tail) carries the assumptions A1-A5 it is derived under
    (``assumptions``) and those of them the network violates (``assumptions_violated``, from
    ``bounds.assumptions.check_assumptions``, always computed); ``check.assumptions_violated``
    lists every violated assumption. With ``assumptions`` the full report is added under the key
    ``assumptions``. A violated assumption does not change a verdict: it marks the line.
    """
    from bounds import predict as _predict
    from bounds.assumptions import check_assumptions, violated_among
    from bounds.worst_case import tail_max_estimate
    from kernel.decompose import TERMS, decompose
    from kernel.measure import run as run_measure
    from kernel.validate import integer

    samples = integer("samples", samples, low=MIN_SAMPLES)

    result = run_measure(**params)
    net, res = result.network, result.forward
    dec = decompose(net, res.batch)
    # Two independent compiled passes see the same batch: the engine (whose statistics are
    # exactly ``cis run``'s, reported below) and the instrumented decomposition (its own embed,
    # gathers and scatters). Their errors must agree to rounding (exactness). Comparing
    # arrays that both passes deliver anyway costs nothing, so the check stays on every run
    # rather than trusting either pass alone.
    if not np.allclose(dec.active_total, res.active_error, atol=1e-9) or not np.allclose(
            dec.inactive_sq, res.inactive_sq, rtol=1e-9, atol=1e-9):
        raise RuntimeError("kernel.decompose disagrees with the forward engine")
    z, B = res.batch.z, res.batch.size
    preds = monte_carlo_replicas(
        lambda seed: _predict.predict(
            net, z, samples=samples, seed=seed,
            h1_max=float(np.abs(res.h[:, 1]).max()) if net.L >= 1 else None),
        net.config.seed)
    report = check_assumptions(net, z)
    out = result.to_dict()
    out["check"] = {"samples": samples, "replicas": REPLICAS, "verdicts": {},
                    "assumptions_violated": violated_among([a.name for a in report], report)}
    if assumptions:
        out["assumptions"] = [a.as_dict() for a in report]

    def marks(required: tuple[str, ...]) -> dict[str, list[str]]:
        return {"assumptions": list(required),
                "assumptions_violated": violated_among(required, report)}
    all_ok = True
    counts: dict[str, int] = {}
    for lay in out["layers"]:
        layer = lay["layer"]
        for cls in ("active", "inactive"):
            entry = lay[cls]
            if entry is None:
                continue
            if cls == "active":
                per = active_per_sample(dec.active_total[:, layer])
                meas_terms = {k: dec.active_ms(layer, k) for k in TERMS}
                count = z * B
            else:
                per = inactive_per_sample(dec.inactive_sq[:, layer], dec.n_inactive)
                meas_terms = {k: dec.inactive_ms(layer, k) for k in TERMS}
                count = dec.n_inactive * B
            mse, half = float(per.mean()), ci_half_width(per)
            cp = preds[layer][cls]
            lines = []
            for est in cp.estimates:
                verdict, ratio, rel = _predict.judge(est, mse, half)
                lines.append({"model": est.model, "mse": est.mse, "terms": est.terms,
                              "mc_se": est.se, "tolerance": est.tol, "ratio": ratio,
                              "ratio_uncertainty": rel, "verdict": verdict, "regime": est.regime,
                              **marks(est.assumptions)})
            bound_line = None
            if cp.bound is not None:
                b = cp.bound
                held = entry["max_abs"] <= b.value * (1 + 1e-12) + 1e-15
                if b.kind == "rigorous" or b.in_regime:
                    verdict = "PASS" if held else "FAIL"
                else:
                    verdict = "OUT-OF-REGIME"
                bound_line = {"kind": b.kind, "value": b.value, "max_abs": entry["max_abs"],
                              "verdict": verdict, "regime": b.regime, **marks(b.assumptions)}
                lines.append({"model": f"bound {b.kind}", "verdict": verdict})
            tail = tail_max_estimate(mse, net.d, count) if layer >= 1 else 0.0
            if layer >= 1:
                if not cp.tail_regime:
                    tv = "OUT-OF-REGIME"
                else:
                    r = entry["max_abs"] / tail if tail > 0 else float("nan")
                    tv = "PASS" if 0.5 <= r <= 2.0 else "FAIL"
                lines.append({"model": "tail", "verdict": tv})
            else:
                tv = None
            verdicts = [ln["verdict"] for ln in lines]
            for v in verdicts:
                counts[v] = counts.get(v, 0) + 1
            judged = [v for v in verdicts if v in ("PASS", "FAIL")]
            ok = None if not judged else all(v == "PASS" for v in judged)
            all_ok = all_ok and ok is not False
            main = cp.main() or cp.estimates[0]
            entry.update({
                "predicted": {"mse": main.mse, **main.terms},
                "measured_terms": meas_terms,
                "worst_case_bound": None if bound_line is None else bound_line["value"],
                "pass": ok,
                "estimates": [ln for ln in lines if "mse" in ln],
                "bound": bound_line,
                "tail_estimate": {"value": tail, "verdict": tv,
                                  **marks(cp.tail_assumptions if layer >= 1 else ())},
            })
    task_ok = _judge_task(out, net, z, counts, report, samples)
    all_ok = all_ok and task_ok
    out["check"]["verdicts"] = counts
    out["check"]["pass"] = all_ok
    return out, all_ok


def _judge_task(out: dict[str, Any], net: Any, z: int, counts: dict[str, int],
                report: list[Any], samples: int) -> bool:
    """Judge the task-metric estimates against the measured task metrics of ``out``: the
    follow-up's formulas for the x metric of rotation circuits (``bounds.rotation``) and, for
    the follow-up's constructions, the recursion of ``bounds.cavity_constructions`` for every
    task quantity (replicated like the cavity's lines; its predicted fraction of neurons on is
    added as ``frac_on_predicted``). Adds ``<q>_estimates`` per layer, class and quantity
    (marked with the violated assumptions of ``report`` as in ``compare``), counts verdicts into
    ``counts``; False if any FAILs."""
    from bounds import predict as _predict
    from bounds.assumptions import violated_among
    from bounds.rotation import rotation_estimates

    ris = _ris_task_estimates(net, z, samples)
    ok = True
    for lay, est_layer in zip(out["layers"], rotation_estimates(net, z), strict=True):
        task = lay.get("task")
        if not task:
            continue
        layer = lay["layer"]
        if ris is not None:
            lay["frac_on_predicted"] = ris["frac_on"][layer]
        for cls in ("active", "inactive"):
            for q in list(task[cls]):
                meas = task[cls][q]
                ests = list(est_layer[cls]) if q == "x" else []
                if ris is not None and layer >= 1:
                    ests.append(ris[cls][q][layer])
                if not ests:
                    continue
                half = meas["mse_ci"][1] - meas["mse"]  # the lower end is clipped at 0
                lines = []
                for est in ests:
                    verdict, ratio, rel = _predict.judge(est, meas["mse"], half)
                    counts[verdict] = counts.get(verdict, 0) + 1
                    ok = ok and verdict != "FAIL"
                    lines.append({"model": est.model, "quantity": q, "mse": est.mse,
                                  "measured": meas["mse"], "tolerance": est.tol, "ratio": ratio,
                                  "ratio_uncertainty": rel, "verdict": verdict,
                                  "regime": est.regime, "assumptions": list(est.assumptions),
                                  "assumptions_violated": violated_among(est.assumptions,
                                                                         report)})
                task[cls][f"{q}_estimates"] = lines
    return ok


def _ris_task_estimates(net: Any, z: int, samples: int) -> dict[str, Any] | None:
    """The construction recursion's task metrics per class, quantity and layer as ``Estimate``
    lines (the mean over ``REPLICAS`` seeds, as ``monte_carlo_replicas``), and its fraction of
    neurons on per layer (empty per class for a family without a task); None for ``cis2``."""
    from bounds import cavity_constructions as cc
    from bounds.predict import Estimate

    if net.config.construction == "cis2":
        return None
    runs = [cc.memoized(net, z, samples, s) for s in replica_seeds(net.config.seed)]
    in_regime, regime = cc.regime(net, z)
    out: dict[str, Any] = {"frac_on": [float(np.mean([r[k].frac_on for r in runs]))
                                       for k in range(net.L + 1)]}
    for cls in ("active", "inactive"):
        out[cls] = {}
        for q in runs[0][1].task[cls]:
            lines = []
            for k in range(net.L + 1):
                mse, se = combine_replicas([r[k].task[cls][q] for r in runs],
                                           [r[k].task_se[cls][q] for r in runs])
                lines.append(Estimate("cavity-ris", mse, {}, se, cc.TOL, in_regime, regime,
                                      ("A1",)))
            out[cls][q] = lines
    return out
