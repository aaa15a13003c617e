"""Recompute the cavity's T* of a capacity sweep's table and set it beside the measured T*.

Usage: python experiments/cavity_capacity.py RESULTS.csv OUT.csv [--samples M] [--cavity-seed S]

For every row of a ``cis sweep`` capacity table (``experiments/results/*.csv``) the cavity's
largest T within the same budget (``budget x a2_population``, absolute active MSE at layer L) is
searched exactly as the sweep searches it (``bounds.search.largest_passing`` from
min(T_post, T_max / 8), relative tolerance rtol / 2, step ``grow``) with the current
``bounds.cavity``; the measured columns are copied. Writes one row per point: the configuration,
``T_star``, ``T_fail`` (measured bracket), the Monte Carlo seed, ``T_cavity`` and
``T_cavity_fail`` (the cavity's bracket) and ``ratio`` = T_cavity / T_star. The measurement
is not re-run.
"""

from __future__ import annotations

import argparse
import csv
import sys

from bounds.capacity import cavity_active_mse, cavity_task_mse
from bounds.search import largest_passing

KEYS = ("D", "d", "S", "L", "z", "family", "bias", "variant", "seed", "budget", "T_max",
        "a2_population", "T_post", "T_star", "T_fail")
#: the columns of a task-metric sweep (``metric = "mse_x"``), which has no a2_population
TASK_KEYS = ("D", "d", "S", "L", "z", "family", "construction", "kappa_scale", "rot_bias",
             "metric", "seed", "budget", "T_max", "T_post", "T_star", "T_fail")


def cavity_t_star(row: dict[str, str], samples: int, cavity_seed: int) -> tuple[int, int]:
    """The cavity's (T*, T_fail) for one row of a capacity table, searched as the sweep does."""
    D, d, S, L, z = (int(row[k]) for k in ("D", "d", "S", "L", "z"))
    cap = int(row["T_max"])
    if row.get("metric") == "mse_x":  # absolute budget on the rotation task's MSE_x
        budget = float(row["budget"])

        def ok(T: int) -> bool:
            mse, _ = cavity_task_mse(T, D, d, z, L, S, construction=row["construction"],
                                     kappa_scale=float(row["kappa_scale"]),
                                     rot_bias=float(row["rot_bias"]), seed=int(row["seed"]),
                                     samples=samples, cavity_seed=cavity_seed)
            return mse <= budget
        start = max(cap // 8, z)  # as the sweep brackets these points
        return largest_passing(ok, start, z, cap, rtol=float(row["rtol"]) / 2,
                               grow=float(row["grow"]))
    budget = float(row["budget"]) * float(row["a2_population"])

    def ok(T: int) -> bool:
        mse, _ = cavity_active_mse(T, D, d, z, L, S, bias=float(row["bias"]),
                                   family=row["family"], variant=row["variant"],
                                   seed=int(row["seed"]), samples=samples,
                                   cavity_seed=cavity_seed)
        return mse <= budget

    start = max(min(int(row["T_post"]), cap // 8), z)
    return largest_passing(ok, start, z, cap, rtol=float(row["rtol"]) / 2,
                           grow=float(row["grow"]))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--cavity-seed", type=int, default=0)
    ap.add_argument("--where", default="", help="keep rows with KEY=VALUE[,KEY=VALUE]")
    args = ap.parse_args(argv)
    rows = list(csv.DictReader(open(args.table, newline="")))
    for cond in filter(None, args.where.split(",")):
        k, v = cond.split("=")
        rows = [r for r in rows if float(r[k]) == float(v)]
    with open(args.out, "w", newline="") as fh:
        out = csv.writer(fh)
        keys = TASK_KEYS if rows and rows[0].get("metric") == "mse_x" else KEYS
        out.writerow([*keys, "cavity_seed", "T_cavity", "T_cavity_fail", "ratio"])
        for r in rows:
            t_cav, t_fail = cavity_t_star(r, args.samples, args.cavity_seed)
            ratio = t_cav / int(r["T_star"]) if int(r["T_star"]) else float("nan")
            out.writerow([*(r[k] for k in keys), args.cavity_seed, t_cav, t_fail,
                          f"{ratio:.4f}"])
            fh.flush()
            print(r["D"], r["L"], r.get("construction", r["bias"]), r["seed"], r["T_star"], t_cav,
                  f"{ratio:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
