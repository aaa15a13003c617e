"""Generate the predicted-vs-measured tables of docs/rotations.md.

    python docs/rotations_table.py                 # every construction, z = 1, 2, 3
    python docs/rotations_table.py --engine dense  # the NumPy oracle instead of the numba engine

The follow-up's main network: D = 1000, d = 4, S = 6, T = 557, L = 5, b = 1, 3000 samples,
seed 0. Predictions come from ``bounds.rotation`` (the small circuits' sizes only), measurements
from ``kernel.measure.run`` (task metrics read from the read-outs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bounds.rotation import code_active_x, finite_eps, post_active_x  # noqa: E402
from kernel.constructions import CONSTRUCTIONS  # noqa: E402
from kernel.measure import run  # noqa: E402

MAIN = dict(D=1000, d=4, S=6, T=557, L=5, batch=3000, seed=0, family="rotation")


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def tables(engine: str, kappa_scales: tuple[float, ...] = (1.0,)) -> str:
    eps = finite_eps(4, 1000, 6, 557)
    n = 250
    out = [f"eps = d/D - 1/(S T) = {eps:.5f}"]
    mse_x: dict[tuple[str, int, int], float] = {}
    runs = [(c, k) for c in CONSTRUCTIONS for k in (kappa_scales if c == "ris-capped" else (1.0,))]
    for con, kap in runs:
        name = con if kap == 1.0 else f"{con}, kappa x {kap:g}"
        out.append(f"\n#### {name}\n")
        out.append("| z | layer | MSE_x | post | code | MSE_on | worst abs(x - x_hat) | "
                   "inactive E abs(x_hat)^2 | inactive E on_hat^2 | frac on |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for z in (1, 2, 3):
            res = run(**MAIN, z=z, construction=con, kappa_scale=kap, engine=engine)
            for s in res.layers:
                t = s.task
                assert t is not None
                mse_x[(name, z, s.layer)] = t["active"]["x"].mse
                post = post_active_x(s.layer, z, 557, eps) if s.layer else 0.0
                code = code_active_x(s.layer, z, 557, n, 1.0) if s.layer else 0.0
                out.append(
                    f"| {z} | {s.layer} | {_f(t['active']['x'].mse)} | {_f(post)} | {_f(code)} | "
                    f"{_f(t['active']['on'].mse)} | {_f(t['active']['x'].max_abs)} | "
                    f"{_f(t['inactive']['x'].mse)} | {_f(t['inactive']['on'].mse)} | "
                    f"{_f(s.frac_on)} |")
    out.append("\n#### MSE_x relative to ris-capped\n")
    others = [c for c in CONSTRUCTIONS if c != "ris-capped"]
    out.append("| z | layer | " + " | ".join(others) + " |")
    out.append("|---|---|" + "---|" * len(others))
    for z in (1, 2, 3):
        for layer in range(2, MAIN["L"] + 1):
            base = mse_x[("ris-capped", z, layer)]
            out.append(f"| {z} | {layer} | "
                       + " | ".join(_f(mse_x[(c, z, layer)] / base) for c in others) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--more-suppression", action="store_true",
                    help="also ris-capped with kappa x 1.15")
    args = ap.parse_args()
    scales = (1.0, 1.15) if args.more_suppression else (1.0,)
    print(tables(args.engine, scales))


if __name__ == "__main__":
    main()
