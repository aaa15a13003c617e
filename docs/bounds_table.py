"""Generate the predicted-vs-measured tables of docs/bounds.md.

    python docs/bounds_table.py            # the three configurations (about 1-2 min on 2 cores)
    python docs/bounds_table.py --sweep    # plus the regime sweep of the cavity recursion

Everything comes from ``cis check``'s JSON (``cis.compare.compare``): predictions from the small
circuits and the realised design only, measurements from the numba engine and kernel.decompose.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cis.compare import compare as check_result  # noqa: E402
from cis.report import progress  # noqa: E402

CONFIGS = [
    dict(D=4000, d=4, S=6, T=3000, L=4, z=2, batch=1000, seed=0, family="signed", bias=0.0),
    dict(D=4000, d=4, S=6, T=3000, L=4, z=2, batch=1000, seed=0, family="signed", bias=-0.05),
    dict(D=4000, d=4, S=6, T=3000, L=4, z=2, batch=1000, seed=0, family="gaussian", bias=0.0),
]

SWEEP = [
    dict(family="signed", bias=-0.05, T=6000, z=2),
    dict(family="signed", bias=-0.05, T=8243, z=3),
    dict(family="signed", bias=-0.05, T=3000, z=8),
    dict(family="signed", bias=0.0, T=557, z=8, D=1000),
    dict(family="signed", bias=0.0, T=8243, z=24),
    dict(family="signed", bias=-0.05, T=300, z=2),
    dict(family="signed", bias=-0.05, T=3000, z=2, variant="corrected"),
    dict(family="signed", bias=0.0, T=3000, z=2, variant="random"),
    dict(family="permutation", bias=0.0, T=3000, z=2),
    dict(family="gaussian", bias=-0.05, T=3000, z=2),
]


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _est(entry: dict, model: str) -> dict | None:
    for e in entry["estimates"]:
        if e["model"] == model:
            return e
    return None


def config_table(params: dict) -> str:
    out, ok = check_result({**params, "variant": params.get("variant", "plain"),
                            "engine": "sparse", "threshold_fraction": 0.1})
    cfg = ", ".join(f"{k}={v}" for k, v in params.items())
    lines = [f"### {cfg}", "",
             f"`cis check` verdicts: {out['check']['verdicts']} -> {'PASS' if ok else 'FAIL'}", "",
             "| l | class | measured MSE [95% CI] | post (ratio, verdict) | layer-1 exact / "
             "sketch (ratio) | cavity | ratio | verdict | measured ovl / prop / relu | cavity "
             "ovl / prop / relu |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for lay in out["layers"][1:]:
        for cls in ("active", "inactive"):
            e = lay[cls]
            lead = _est(e, "leading")
            mid = _est(e, "layer1-exact") or _est(e, "sketch")
            cav = _est(e, "cavity")
            mt = e["measured_terms"]
            ct = cav["terms"]
            lines.append(
                f"| {lay['layer']} | {cls} | {_f(e['mse'])} [{_f(e['mse_ci'][0])}, "
                f"{_f(e['mse_ci'][1])}] | {_f(lead['ratio'])} ({lead['verdict']}) | "
                f"{'-' if mid is None else mid['model'] + ' ' + _f(mid['ratio'])} | "
                f"{_f(cav['mse'])} | {_f(cav['ratio'])} | {cav['verdict']} | "
                f"{_f(mt['overlap'])} / {_f(mt['propagation'])} / {_f(mt['relu'])} | "
                f"{_f(ct['overlap'])} / {_f(ct['propagation'])} / {_f(ct['relu'])} |")
    lines += ["", "| l | class | bound (kind) | max abs error | verdict | tail estimate "
              "| verdict |",
              "|---|---|---|---|---|---|---|"]
    for lay in out["layers"][1:]:
        for cls in ("active", "inactive"):
            e = lay[cls]
            b = e["bound"]
            btxt = "-" if b is None else f"{_f(b['value'])} ({b['kind']})"
            lines.append(f"| {lay['layer']} | {cls} | {btxt} | {_f(e['max_abs'])} | "
                         f"{'-' if b is None else b['verdict']} | "
                         f"{_f(e['tail_estimate']['value'])} | {e['tail_estimate']['verdict']} |")
    return "\n".join(lines) + "\n"


def sweep_table() -> str:
    lines = ["| configuration | z S^2 d/D | T S/n | cavity/measured per layer (active; inactive) "
             "| verdicts |", "|---|---|---|---|---|"]
    for c in progress(SWEEP, "sweep"):
        params = dict(D=c.get("D", 4000), d=4, S=6, T=c["T"], L=4, z=c["z"], batch=800, seed=0,
                      family=c["family"], bias=c["bias"], variant=c.get("variant", "plain"),
                      engine="sparse", threshold_fraction=0.1)
        out, _ = check_result(params, samples=30000)
        ratios = []
        for lay in out["layers"][1:]:
            ra = _est(lay["active"], "cavity")["ratio"]
            ri = _est(lay["inactive"], "cavity")["ratio"]
            ratios.append(f"{_f(ra)}; {_f(ri)}")
        n = params["D"] // 4
        name = ", ".join(f"{k}={v}" for k, v in c.items())
        lines.append(f"| {name} | {c['z'] * 36 * 4 / params['D']:.2f} | {c['T'] * 6 / n:.1f} | "
                     f"{' / '.join(ratios)} | {out['check']['verdicts']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in progress(CONFIGS, "configurations"):
        print(config_table(p))
    if "--sweep" in sys.argv:
        print(sweep_table())
