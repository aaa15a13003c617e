"""Generate the predicted-vs-measured tables of docs/rotations.md.

    python docs/rotations_table.py                 # every construction, z = 1, 2, 3
    python docs/rotations_table.py --engine dense  # the NumPy oracle instead of the numba engine
    python docs/rotations_table.py --more-suppression  # also ris-capped with kappa x 1.15
    python docs/rotations_table.py --diagnose      # what happens after layer 2 (dense NumPy)
    python docs/rotations_table.py --cavity        # the construction recursion vs measured

The follow-up's main network: D = 1000, d = 4, S = 6, T = 557, L = 5, b = 1, 3000 samples,
seed 0. Predictions come from ``bounds.rotation`` (the small circuits' sizes only), measurements
from ``kernel.measure.run`` (task metrics read from the read-outs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

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


def diagnose(batch: int = 600) -> str:
    """Where the error after layer 2 comes from, per construction, z and layer: the fraction of
    neurons on in each block, the fraction on although no active circuit uses them, inactive
    circuits whose on-indicator reads above the step's 0.25, and active circuits whose
    on-indicator reads below 0.75 (dense NumPy forward of the main network, W^l formed)."""

    from kernel import build_network, sample_batch
    from kernel.circuits import rotation_task

    out = ["| construction | z | layer | frac on (a0, a1, x1, x2 blocks) | on, unused | "
           "inactive on_hat > 0.25 | active on_hat < 0.75 |", "|---|---|---|---|---|---|---|"]
    for con in ("ris-capped", "ris-uncapped"):
        net = build_network(**{k: v for k, v in MAIN.items() if k != "batch"},
                            construction=con)
        d, n = net.d, net.n
        bias = np.repeat(net.circuits.bias, n, axis=1)
        for z in (1, 2, 3):
            b = sample_batch(net, batch, z, seed=5)
            h1 = np.einsum("bzij,bzj->bzi", net.circuits.weights[0][b.active], b.inputs)
            rows = np.arange(d)[None, None, :, None] * n + net.offsets[0][b.active][:, :, None, :]
            A = np.zeros((batch, net.D))
            np.add.at(A, (np.arange(batch)[:, None, None, None], rows), h1[..., None])
            A = np.maximum(A + bias[0], 0.0)
            for layer in range(1, net.L + 1):
                if layer > 1:
                    A = np.maximum(A @ net.dense_layer(layer).T + bias[layer - 1], 0.0)
                used = np.zeros((batch, n), bool)
                used[np.arange(batch)[:, None, None], net.offsets[layer - 1][b.active]] = True
                on = A.reshape(batch, d, n) > 0
                unused_on = (on & ~used[:, None, :]).sum(axis=(1, 2)).mean() / net.D
                idx = np.arange(d)[None, :, None] * n + net.offsets[layer - 1][:, None, :]
                c = net.read_c
                r = (A[:, idx].sum(-1) * (1 / net.S + c)
                     - c * A.reshape(batch, d, n).sum(-1)[:, None, :])
                on_hat = rotation_task(r)["on"][..., 0]
                inactive = np.ones((batch, net.T), bool)
                inactive[np.arange(batch)[:, None], b.active] = False
                act_on = np.take_along_axis(on_hat, b.active, 1)
                blocks = ", ".join(f"{v:.3f}" for v in on.mean(axis=(0, 2)))
                out.append(f"| {con} | {z} | {layer} | {blocks} | {unused_on:.3f} | "
                           f"{(on_hat[inactive] > 0.25).mean():.3f} | "
                           f"{(act_on < 0.75).mean():.3f} |")
    return "\n".join(out)


#: the second size of the recursion's table: n = 500, S = 5, the main network's load T S / n
SECOND = dict(D=2000, d=4, S=5, T=1337, L=5, seed=0, family="rotation")


def cavity_tables(batch: int = 20000) -> str:
    """``bounds.cavity_constructions`` (mean of ``cis check``'s three replicas, 8000 trajectories
    each) over the measured task metrics (``batch`` samples), per construction, z and layer:
    MSE_x as predicted / measured, and the fraction of neurons on, for the main network and the
    second size."""
    from bounds.cavity_constructions import SAMPLES, construction_cavity
    from cis.compare import replica_seeds
    from kernel import build_network

    out = []
    for label, cfg in (("main network: D = 1000, S = 6, T = 557", MAIN),
                       ("second size: D = 2000, S = 5, T = 1337", SECOND)):
        cfg = {**cfg, "batch": batch}
        net_cfg = {k: v for k, v in cfg.items() if k != "batch"}
        out.append(f"\n#### {label}\n")
        out.append("| construction | z | MSE_x, layers 1-5: predicted / measured | "
                   "measured MSE_x | frac on: predicted / measured |")
        out.append("|---|---|---|---|---|")
        for con, kap in (("ris-uncapped", 1.0), ("ris-split", 1.0), ("ris-capped", 1.0),
                         ("ris-capped", 1.15)):
            name = con if kap == 1.0 else f"{con}, kappa x {kap:g}"
            net = build_network(**net_cfg, construction=con, kappa_scale=kap)
            for z in (1, 2, 3):
                runs = [construction_cavity(net, z, samples=SAMPLES, seed=s)
                        for s in replica_seeds(net_cfg["seed"])]
                res = run(**cfg, z=z, construction=con, kappa_scale=kap)
                ratios, meas, fon = [], [], []
                for s in res.layers[1:]:
                    pred = float(np.mean([r[s.layer].task["active"]["x"] for r in runs]))
                    m = s.task["active"]["x"].mse
                    ratios.append("-" if m < 1e-12 else f"{pred / m:.2f}")
                    meas.append(_f(m))
                    fon.append(f"{np.mean([r[s.layer].frac_on for r in runs]):.2f}/"
                               f"{s.frac_on:.2f}")
                out.append(f"| {name} | {z} | {', '.join(ratios)} | {', '.join(meas)} | "
                           f"{fon[0]}, {fon[-1]} (layers 1, 5) |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--more-suppression", action="store_true",
                    help="also ris-capped with kappa x 1.15")
    ap.add_argument("--diagnose", action="store_true",
                    help="only the diagnostics of the departure after layer 2")
    ap.add_argument("--cavity", action="store_true",
                    help="only the construction recursion against the measurement")
    args = ap.parse_args()
    if args.cavity:
        print(cavity_tables())
        return
    if args.diagnose:
        print(diagnose())
        return
    scales = (1.0, 1.15) if args.more_suppression else (1.0,)
    print(tables(args.engine, scales))


if __name__ == "__main__":
    main()
