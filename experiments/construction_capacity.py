"""Which construction holds the most circuits: the tables of the construction-capacity sweep.

Usage: python experiments/construction_capacity.py [RESULTS.csv] [--reps 4000] [--cavity CSV]

RESULTS.csv (default experiments/results/construction_capacity.csv) is the table of
``cis sweep experiments/construction_capacity.toml``. Prints, per construction and D:

* T* (mean over seeds, [min, max]), the design's T_max, the MSE_x measured at T* (range over
  seeds), T* over that of ``cis2`` at the same D and seed (mean of the per-seed ratios, [min,
  max]: the same seed draws the same circuits and patterns for every construction), the
  follow-up's formula's T (``T_post``) and the cavity's T* (``T_cav``, from the table of
  ``experiments/cavity_capacity.py`` on RESULTS.csv: ``bounds.cavity_constructions``' MSE_x,
  searched as the sweep searches; mean over seeds) with T_cav / T* per seed ([min, max]);
* the exponent alpha of T* ~ D^alpha over the whole range, least squares on log-log axes with a
  95% bootstrap interval over seeds (``cis.plot.fit_exponent``, what ``cis plot --kind capacity``
  prints), and the local slopes between neighbouring D with 95% intervals that resample the
  seeds and draw each threshold within its measured interval (the MSE_x's confidence interval
  at T* through the local d log MSE / d log T, joined with the bisection bracket;
  ``capacity_slopes.bootstrap_slopes``).

Points capped by the design (T* = T_max) are left out of the exponents.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity_slopes import (  # noqa: E402
    bootstrap_slopes,
    mean_log_threshold,
    threshold_interval,
)

RESULTS = Path(__file__).resolve().parent / "results" / "construction_capacity.csv"
CAVITY = Path(__file__).resolve().parent / "results" / "construction_capacity_cavity.csv"

#: constructions in the order the tables list them (others after them, by name)
ORDER = ("ris-capped", "ris-split", "ris-uncapped", "cis2")


def load(path: Path, cavity: Path | None = None) -> dict[str, dict[int, list[dict[str, str]]]]:
    """construction -> D -> the sweep's rows (one per seed), seeds in order; with ``cavity``
    (``experiments/cavity_capacity.py``'s table) each row gets its ``T_cavity``."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if cavity is not None and cavity.exists():
        with open(cavity, newline="") as fh:
            cav = {(r["construction"], r["D"], r["seed"]): r["T_cavity"]
                   for r in csv.DictReader(fh)}
        for r in rows:
            r["T_cavity"] = cav.get((r["construction"], r["D"], r["seed"]), "")
    out: dict[str, dict[int, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(rows, key=lambda r: int(r["seed"])):
        out[r["construction"]][int(r["D"])].append(r)
    return out


def _ordered(names: list[str]) -> list[str]:
    return [c for c in ORDER if c in names] + sorted(c for c in names if c not in ORDER)


def _cavity(rows: list[dict[str, str]]) -> str:
    """The cavity's T* (mean over seeds) and T_cavity / T* per seed, [min-max]."""
    have = [r for r in rows if r.get("T_cavity") not in (None, "")]
    if not have:
        return "-"
    ratio = [int(r["T_cavity"]) / int(r["T_star"]) for r in have]
    return f"{np.mean([int(r['T_cavity']) for r in have]):.0f} {min(ratio):.2f}-{max(ratio):.2f}"


def paired_ratios(rows: list[dict[str, str]], ref: list[dict[str, str]]) -> list[float]:
    """T* of ``rows`` over T* of ``ref`` for every seed both hold (same D)."""
    base = {r["seed"]: int(r["T_star"]) for r in ref}
    return [int(r["T_star"]) / base[r["seed"]] for r in rows if base.get(r["seed"])]


def ratio_interval(rows: list[dict[str, str]], ref: list[dict[str, str]], reps: int,
                   rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of T*(rows) / T*(ref), the geometric means over the seeds both hold: the
    seeds resampled in pairs, each threshold drawn within its measured interval."""
    a = {r["seed"]: threshold_interval(r) for r in rows}
    b = {r["seed"]: threshold_interval(r) for r in ref}
    seeds = sorted(set(a) & set(b))
    ia, ib = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    pick = rng.integers(0, len(seeds), (reps, len(seeds)))  # the same seeds for both
    ratio = np.exp(mean_log_threshold(ia, pick, rng) - mean_log_threshold(ib, pick, rng))
    lo, hi = np.percentile(ratio, [2.5, 97.5])
    return float(lo), float(hi)


def ratio_lines(data: dict[str, dict[int, list[dict[str, str]]]], top: str, reps: int
                ) -> list[str]:
    """T* of construction ``top`` over each other's, per D: the mean of the per-seed ratios
    and its 95% interval (``ratio_interval``); one row per D, one column per other
    construction."""
    rng = np.random.default_rng(1)
    others = _ordered([c for c in data if c != top])
    lines = [f"{top}'s T* over that of (same D and seed) [95%: seeds, MSE_x CI, bracket]",
             f"{'D':>6}" + "".join(f"{c:>20}" for c in others)]
    for D in sorted(data[top]):
        cells = []
        for c in others:
            r = paired_ratios(data[top][D], data[c].get(D, []))
            if r:
                lo, hi = ratio_interval(data[top][D], data[c][D], reps, rng)
                cells.append(f"{np.mean(r):.2f} [{lo:.2f}, {hi:.2f}]")
            else:
                cells.append("-")
        lines.append(f"{D:>6}" + "".join(f"{cell:>20}" for cell in cells))
    return lines


def capacity_table(data: dict[str, dict[int, list[dict[str, str]]]]) -> list[str]:
    """The lines of the table of T* per construction and D (T* over cis2's: mean of the
    per-seed ratios)."""
    ref = data.get("cis2", {})
    lines = [f"{'construction':<13}{'D':>6}{'T* mean':>8}{'[min, max]':>16}"
             f"{'MSE_x at T*':>13}{'x cis2':>7}{'T_post':>7}  {'T_cav, T_cav/T*'}"]
    for c in _ordered(list(data)):
        for D, rows in sorted(data[c].items()):
            T = [int(r["T_star"]) for r in rows]
            mse = [float(r["ratio"]) for r in rows]
            ratios = paired_ratios(rows, ref.get(D, []))
            vs = f"{np.mean(ratios):.2f}" if ratios else "-"
            lines.append(
                f"{c:<13}{D:>6}{np.mean(T):>8.0f}{f'[{min(T)}, {max(T)}]':>16}"
                f"{f'{min(mse):.3f}-{max(mse):.3f}':>13}{vs:>7}{rows[0]['T_post']:>7}"
                f"  {_cavity(rows)}")
    return lines


def design_line(data: dict[str, dict[int, list[dict[str, str]]]]) -> str:
    """T_max of the design per D (the same for every construction)."""
    tmax = {D: rows[0]["T_max"] for byD in data.values() for D, rows in byD.items()}
    return "T_max: " + ", ".join(f"{D} -> {t}" for D, t in sorted(tmax.items()))


def exponent_lines(data: dict[str, dict[int, list[dict[str, str]]]], reps: int) -> list[str]:
    """alpha over the whole range and the local slopes, per construction."""
    import pandas as pd

    from cis.plot import fit_exponent

    rng = np.random.default_rng(0)
    lines = []
    for c in _ordered(list(data)):
        free = {D: [r for r in rows if r["T_star"] != r["T_max"]]
                for D, rows in data[c].items()}
        free = {D: rows for D, rows in free.items() if rows}
        frame = pd.DataFrame([{"D": D, "T_star": int(r["T_star"]), "seed": int(r["seed"])}
                              for D, rows in free.items() for r in rows])
        fit = fit_exponent(frame, "D", "T_star")
        slopes = bootstrap_slopes({D: [threshold_interval(r) for r in rows]
                                   for D, rows in free.items()}, reps, rng)
        lines.append(f"{c}: alpha = {fit['alpha']:.2f} [{fit['lo']:.2f}, {fit['hi']:.2f}] "
                     f"({fit['n']} points)")
        lines += [f"    {D1 // 1000}-{D2 // 1000}k: {m:.2f} [{lo:.2f}, {hi:.2f}]"
                  for D1, D2, m, lo, hi in slopes]
    return lines


def evaluations_summary(data: dict[str, dict[int, list[dict[str, str]]]]) -> str:
    """How many networks a point evaluated (the bisection's cost, in networks)."""
    counts = [len(json.loads(r["evaluated"])) for byD in data.values() for rows in byD.values()
              for r in rows]
    return f"networks evaluated per point: {min(counts)}-{max(counts)}, mean {np.mean(counts):.1f}"


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=str(RESULTS))
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--cavity", default=str(CAVITY),
                    help="the cavity's T* per point (experiments/cavity_capacity.py's table)")
    args = ap.parse_args(argv)
    if args.reps < 100:
        ap.error(f"--reps={args.reps} must be >= 100")
    data = load(Path(args.results), Path(args.cavity))
    budget = {r["budget"] for byD in data.values() for rows in byD.values() for r in rows}
    L = {r["L"] for byD in data.values() for rows in byD.values() for r in rows}
    print(f"T* within MSE_x <= {', '.join(sorted(budget))} at layer {', '.join(sorted(L))}")
    print(design_line(data))
    print("\n".join(capacity_table(data)))
    print(evaluations_summary(data))
    print("\n".join(ratio_lines(data, _ordered(list(data))[0], args.reps)))
    print("T* ~ D^alpha [95% bootstrap over seeds]")
    print("local slopes d log T* / d log D [95%: seeds, MSE_x CI, bracket]")
    print("\n".join(exponent_lines(data, args.reps)))


if __name__ == "__main__":
    main(sys.argv[1:])
