"""``cis check``: predicted vs measured error, per layer, circuit class and term (SPEC §4, §6).

Runs a configuration like ``cis run``, measures the three SPEC §4 terms with the instrumented
forward pass (``kernel.decompose``), sets every prediction of ``bounds`` beside them and judges
each line PASS / FAIL, or flags it (OUT-OF-REGIME, LOW-STATS, ZERO: neither pass nor fail).
Exit code 0 when every rigorous bound holds and every in-regime estimate is within its tolerance,
1 otherwise, 2 for bad input.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from cis import report
from cis.cli import _guard, network_options

Z95 = 1.959963984540054


def _ci_half(per_sample: np.ndarray) -> float:
    if per_sample.size < 2:
        return float("inf")
    return float(Z95 * per_sample.std(ddof=1) / np.sqrt(per_sample.size))


def check_result(params: dict[str, Any], *, samples: int = 40000) -> tuple[dict[str, Any], bool]:
    """Run, decompose, predict and judge. Returns (the JSON object, whether everything passed)."""
    from bounds.predict import judge, predict
    from bounds.worst_case import tail_max_estimate
    from kernel.decompose import TERMS, decompose
    from kernel.measure import run as run_measure

    result = run_measure(**params)
    net, res = result.network, result.forward
    dec = decompose(net, res.batch)
    # the instrumented pass must reproduce the engine's errors (exactness, SPEC §3)
    if not np.allclose(dec.active_total, res.active_error, atol=1e-9) or not np.allclose(
            dec.inactive_sq, res.inactive_sq, rtol=1e-9, atol=1e-9):
        raise RuntimeError("kernel.decompose disagrees with the forward engine")
    z, B = res.batch.z, res.batch.size
    preds = predict(net, z, samples=samples, seed=net.config.seed)
    out = result.to_dict()
    out["check"] = {"samples": samples, "verdicts": {}}
    all_ok = True
    counts: dict[str, int] = {}
    for lay in out["layers"]:
        layer = lay["layer"]
        for cls in ("active", "inactive"):
            entry = lay[cls]
            if entry is None:
                continue
            if cls == "active":
                per = (dec.active_total[:, layer] ** 2).sum(-1).mean(-1)
                meas_terms = {k: dec.active_ms(layer, k) for k in TERMS}
                count = z * B
            else:
                per = dec.inactive_sq[:, layer] / dec.n_inactive
                meas_terms = {k: dec.inactive_ms(layer, k) for k in TERMS}
                count = dec.n_inactive * B
            mse, half = float(per.mean()), _ci_half(per)
            cp = preds[layer][cls]
            lines = []
            for est in cp.estimates:
                verdict, ratio, rel = judge(est, mse, half)
                lines.append({"model": est.model, "mse": est.mse, "terms": est.terms,
                              "mc_se": est.se, "tolerance": est.tol, "ratio": ratio,
                              "ratio_uncertainty": rel, "verdict": verdict, "regime": est.regime})
            bound_line = None
            if cp.bound is not None:
                b = cp.bound
                held = entry["max_abs"] <= b.value * (1 + 1e-12) + 1e-15
                if b.kind == "rigorous" or b.in_regime:
                    verdict = "PASS" if held else "FAIL"
                else:
                    verdict = "OUT-OF-REGIME"
                bound_line = {"kind": b.kind, "value": b.value, "max_abs": entry["max_abs"],
                              "verdict": verdict, "regime": b.regime}
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
                "tail_estimate": {"value": tail, "verdict": tv},
            })
    out["check"]["verdicts"] = counts
    out["check"]["pass"] = all_ok
    return out, all_ok


def check_tables(out: dict[str, Any]) -> list[Any]:
    """Rich tables of the ``cis check`` JSON."""
    cfg = out["config"]
    head = ", ".join(f"{k}={v}" for k, v in cfg.items())
    rows, brows = [], []
    for lay in out["layers"]:
        if lay["layer"] == 0:
            continue
        for cls in ("active", "inactive"):
            e = lay[cls]
            if e is None:
                continue
            mt = e["measured_terms"]
            for est in e["estimates"]:
                t = est["terms"]
                rows.append([lay["layer"], cls, est["model"], est["mse"], e["mse"], est["ratio"],
                             t.get("overlap"), mt["overlap"], t.get("propagation"),
                             mt["propagation"], t.get("relu"), mt["relu"], est["verdict"]])
            b = e["bound"]
            if b is not None:
                brows.append([lay["layer"], cls, b["kind"], b["value"], b["max_abs"],
                              b["verdict"]])
            brows.append([lay["layer"], cls, "tail (log T)", e["tail_estimate"]["value"],
                          e["max_abs"], e["tail_estimate"]["verdict"]])
    cols = ["layer", "class", "model", "pred mse", "meas mse", "ratio", "pred ovl", "meas ovl",
            "pred prop", "meas prop", "pred relu", "meas relu", "verdict"]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(out["check"]["verdicts"].items()))
    title = f"{head}\npredicted vs measured mean-square |eps|^2 ({verdicts})"
    return [report.table(title, cols, rows),
            report.table("worst case: bound / estimate vs max abs error", 
                         ["layer", "class", "kind", "value", "max |err|", "verdict"], brows)]


@click.command()
@network_options
@click.option("--samples", type=int, default=40000, show_default=True,
              help="Monte Carlo trajectories of the cavity prediction (small circuits only)")
@_guard
def check(as_json: bool, samples: int, **params: Any) -> None:
    """Predicted vs measured error per layer, class and term; PASS/FAIL/flags (SPEC §4)."""
    from kernel.validate import integer

    samples = integer("samples", samples, low=100)
    out, ok = check_result(params, samples=samples)
    if as_json:
        click.echo(report.dumps(out))
    else:
        report.print_tables(*check_tables(out))
        click.echo("PASS" if ok else "FAIL")
    raise click.exceptions.Exit(0 if ok else 1)
