"""Local slopes of T*(D) with intervals that carry every source of noise, and the cavity's
continuation to large D.

Usage: python experiments/capacity_slopes.py [--plot FIGURE.png] [--reps 4000]

Measured (experiments/results/capacity.csv at L = 4, capacity_l2.csv at L = 2): for each pair of
neighbouring D the local slope d log T* / d log D, with a 95% interval from a bootstrap that
(i) resamples the seeds at each D, (ii) draws each point's true threshold within its measured
interval: from min(T*, T* (b / r_hi)^(1/gamma)) to max(T_fail, T* (b / r_lo)^(1/gamma)), with
[r_lo, r_hi] the 95% interval of the active MSE ratio at T*, b the budget and gamma the local
d log MSE / d log T (``capacity_agreement.gamma``): the seeds, the MSE's confidence interval and
the bisection bracket. Points capped by the design (T* = T_max) are left out.

Cavity (experiments/results/cavity_scaling.csv, from ``experiments/cavity_scaling.py``, one
Monte Carlo seed): slopes over factor-8 windows of D, with an interval from the 2% bracket and
the cavity's own seed-to-seed scatter of T* (log-normal, its size pooled from the L = 4 grid's
three Monte Carlo seeds per point: experiments/results/capacity_cavity_l4.csv, 2000
trajectories; the scaling runs use 4000, so this is conservative).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity_agreement import gamma  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _rows(name: str) -> list[dict[str, str]]:
    with open(RESULTS / name, newline="") as fh:
        return list(csv.DictReader(fh))


def cavity_spread() -> float:
    """Pooled std of log T_cavity between Monte Carlo seeds (L = 4 grid, three seeds)."""
    groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for r in _rows("capacity_cavity_l4.csv"):
        groups[(r["D"], r["bias"], r["seed"])].append(math.log(int(r["T_cavity"])))
    var = [np.var(v, ddof=1) for v in groups.values() if len(v) > 1]
    return float(math.sqrt(np.mean(var)))


def threshold_interval(r: dict[str, str]) -> tuple[float, float]:
    """(log lo, log hi): where a measured threshold (a sweep's capacity row) may lie, from the
    95% interval of its MSE ratio at T* (through gamma) joined with the bracket [T*, T_fail]."""
    T, b = int(r["T_star"]), float(r["budget"])
    g = gamma(r)
    lo = min(T, T * (b / float(r["ratio_hi"])) ** (1 / g))
    hi = max(int(r["T_fail"]), T * (b / float(r["ratio_lo"])) ** (1 / g))
    return math.log(lo), math.log(hi)


def measured_points(L: int) -> dict[float, dict[int, list[tuple[float, float]]]]:
    """beta -> D -> [(log lo, log hi)] per seed: the interval of each measured threshold."""
    table = "capacity_l2.csv" if L == 2 else "capacity.csv"
    out: dict[float, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in _rows(table):
        if int(r["L"]) != L or r["T_star"] == r["T_max"]:
            continue
        out[float(r["bias"])][int(r["D"])].append(threshold_interval(r))
    return out


def mean_log_threshold(iv: np.ndarray, pick: np.ndarray, rng: np.random.Generator
                       ) -> np.ndarray:
    """Per bootstrap replicate (a row of ``pick``: the seeds drawn, indices into ``iv``), the
    mean over those seeds of a log threshold drawn uniformly in each one's interval ``iv``
    ((seeds, 2): log lo, log hi)."""
    u = rng.random(pick.shape)
    return (iv[pick, 0] + u * (iv[pick, 1] - iv[pick, 0])).mean(axis=1)


def bootstrap_slopes(byD: dict[int, list[tuple[float, float]]], reps: int,
                     rng: np.random.Generator) -> list[tuple[int, int, float, float, float]]:
    """[(D1, D2, median, 2.5%, 97.5%)] of the local slopes between neighbouring D: each
    replicate resamples the seeds at every D and draws each seed's log threshold uniformly in
    its interval (``threshold_interval``)."""
    Ds = sorted(byD)
    logT = np.empty((reps, len(Ds)))
    for j, D in enumerate(Ds):
        iv = np.array(byD[D])
        pick = rng.integers(0, len(iv), (reps, len(iv)))  # seeds resampled
        logT[:, j] = mean_log_threshold(iv, pick, rng)
    rows = []
    for j in range(len(Ds) - 1):
        s = (logT[:, j + 1] - logT[:, j]) / math.log(Ds[j + 1] / Ds[j])
        rows.append((Ds[j], Ds[j + 1], *np.percentile(s, [50, 2.5, 97.5])))
    return rows


def measured_slopes(L: int, reps: int, rng: np.random.Generator
                    ) -> dict[float, list[tuple[int, int, float, float, float]]]:
    """beta -> [(D1, D2, median, 2.5%, 97.5%)] of the bootstrap local slopes."""
    return {beta: bootstrap_slopes(byD, reps, rng) for beta, byD in measured_points(L).items()}


def cavity_slopes(reps: int, rng: np.random.Generator, spread: float, window: int = 8
                  ) -> dict[tuple[int, float], list[tuple[int, int, float, float, float]]]:
    """(L, beta) -> [(D1, D2, slope, 2.5%, 97.5%)] from the cavity's continuation, over windows
    D2 = ``window`` x D1 sliding by factors of 2 (one Monte Carlo seed per D: a factor-2 slope
    would carry +-0.14 from the scatter alone)."""
    pts: dict[tuple[int, float], dict[int, tuple[int, int]]] = defaultdict(dict)
    for r in _rows("cavity_scaling.csv"):
        if int(r["T_star"]) > 0 and r["T_star"] != r["T_max"]:
            pts[(int(r["L"]), float(r["bias"]))][int(r["D"])] = (int(r["T_star"]),
                                                                 int(r["T_fail"]))
    out = {}
    for key, byD in pts.items():
        rows = []
        for D1 in sorted(byD):
            D2 = D1 * window
            if D2 not in byD:
                continue
            draws = []
            for D in (D1, D2):
                lo, hi = (math.log(t) for t in byD[D])
                draws.append(lo + rng.random(reps) * (hi - lo) + rng.normal(0, spread, reps))
            s = (draws[1] - draws[0]) / math.log(D2 / D1)
            mid = math.log(byD[D2][0] / byD[D1][0]) / math.log(D2 / D1)
            rows.append((D1, D2, mid, *np.percentile(s, [2.5, 97.5])))
        out[key] = rows
    return out


def law_slopes() -> dict[int, list[tuple[float, float]]]:
    """L -> [(D, alpha)]: the depth law's local exponent (``bounds.depth.capacity_exponent``) at
    the cavity's x = T* d / D (beta = 0, d = 4, S = 6)."""
    from bounds.depth import capacity_exponent

    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in _rows("cavity_scaling.csv"):
        if float(r["bias"]) == 0.0 and r["T_star"] != r["T_max"] and int(r["L"]) > 1:
            x = int(r["T_star"]) * 4 / int(r["D"])
            out[int(r["L"])].append((int(r["D"]), capacity_exponent(x, int(r["L"]), 6)))
    return out


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot")
    ap.add_argument("--reps", type=int, default=4000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    meas = {L: measured_slopes(L, args.reps, rng) for L in (2, 4)}
    cav = {}
    if (RESULTS / "cavity_scaling.csv").exists():
        spread = cavity_spread()
        print(f"cavity T* scatter between Monte Carlo seeds (L = 4 grid): {spread:.3f} in log T")
        cav = cavity_slopes(args.reps, rng, spread)
        for L, pts in sorted(law_slopes().items()):
            cells = "  ".join(f"{D // 1000}k {a:.2f}" for D, a in pts)
            print(f"depth law L={L} beta=+0.00 (at the cavity's T* d / D): {cells}")
    print("local slope d log T* / d log D   [95% interval]")
    for L in (2, 4):
        for beta, rows in sorted(meas[L].items(), reverse=True):
            cells = "  ".join(f"{D1 // 1000}-{D2 // 1000}k {m:.2f} [{lo:.2f}, {hi:.2f}]"
                              for D1, D2, m, lo, hi in rows)
            print(f"measured L={L} beta={beta:+.2f}: {cells}")
    for (L, beta), rows in sorted(cav.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        cells = "  ".join(f"{D1 // 1000}-{D2 // 1000}k {m:.2f} [{lo:.2f}, {hi:.2f}]"
                          for D1, D2, m, lo, hi in rows)
        print(f"cavity   L={L} beta={beta:+.2f}: {cells}")
    if args.plot:
        _plot(meas, cav, args.plot)


def _plot(meas: dict[int, dict[float, list[tuple[int, int, float, float, float]]]],
          cav: dict[tuple[int, float], list[tuple[int, int, float, float, float]]],
          path: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    law = law_slopes()

    betas = (0.0, -0.05, -0.1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    colors = {2: "C0", 3: "C1", 4: "C2", 6: "C3"}
    for ax, beta in zip(axes, betas):
        for (L, b), rows in sorted(cav.items()):
            if b != beta:
                continue
            x = [math.sqrt(D1 * D2) for D1, D2, *_ in rows]
            ax.plot(x, [r[2] for r in rows], "-", color=colors[L], label=f"cavity L={L}")
            ax.fill_between(x, [r[3] for r in rows], [r[4] for r in rows], color=colors[L],
                            alpha=0.15)
            ax.axhline(L / (L - 1), color=colors[L], ls=":", lw=1)
            if beta == 0.0 and L in law:
                ax.plot([r[0] for r in law[L]], [r[1] for r in law[L]], "--", color=colors[L],
                        lw=1)
        for L in (2, 4):
            rows = meas[L].get(beta, [])
            x = [math.sqrt(D1 * D2) for D1, D2, *_ in rows]
            m = np.array([r[2] for r in rows])
            err = np.array([[r[2] - r[3] for r in rows], [r[4] - r[2] for r in rows]])
            if rows:
                ax.errorbar(x, m, yerr=err, fmt="o", color=colors[L], capsize=3,
                            label=f"measured L={L}")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"beta = {beta}")
        ax.set_xlabel("D (geometric middle of the interval)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("local slope d log T* / d log D")
    axes[0].legend(fontsize=8)
    fig.suptitle("Local capacity exponents; dashed: the depth law's (beta = 0), "
                 "dotted: its limit L / (L - 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
