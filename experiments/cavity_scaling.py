"""T*(D) from the cavity recursion alone, far beyond what the network can be measured at.

Usage: python experiments/cavity_scaling.py OUT.csv [--L 4] [--bias 0,-0.05,-0.1]
       [--D-max 1024000] [--budget 0.05] [--samples 4000]

For D = 1000 * 2^k up to --D-max (signed, d = 4, S = 6, z = 2, plain read-out, seed 0; the
configuration of experiments/capacity.toml) the largest T <= T_max(D/d, S) whose cavity-predicted
layer-L active MSE is within budget x mean |a^L|^2 (the sweep's budget) is bracketed to 2%
(``bounds.search.largest_passing``, started from the previous D's answer times the previous
local slope). The cavity draws 20000 circuits of the family (``circuit_sample``) and the
prime-step design of T patterns, so T can reach ~10^7. Appends one CSV row per (L, beta, D):
T_star, T_fail, T_max, the prediction at T_star and its Monte Carlo std error, evaluations.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys

from bounds.capacity import cavity_active_mse, t_max
from bounds.search import largest_passing
from cis.experiment import signal_power

FIELDS = ("L", "bias", "D", "budget", "T_star", "T_fail", "T_max", "mse", "se", "evaluations",
          "samples")


def scan(L: int, bias: float, budget: float, D_max: int, samples: int, out: str) -> None:
    """One depth and bias: T* at D = 1000, 2000, ... D_max, appended to ``out``."""
    p = {"family": "signed", "L": L, "d": 4, "bias": bias, "seed": 0}
    limit = budget * signal_power(p)
    guess, slope, prev = 100, 2.0, None
    D = 1000
    while D <= D_max:
        cap = t_max(D // 4, 6)
        seen: dict[int, tuple[float, float]] = {}

        def ok(T: int, D: int = D, seen: dict[int, tuple[float, float]] = seen) -> bool:
            if T not in seen:
                seen[T] = cavity_active_mse(T, D, 4, 2, L, 6, bias=bias, samples=samples,
                                            circuit_sample=20000)
            return seen[T][0] <= limit

        T_star, T_fail = largest_passing(ok, min(guess, cap), 2, cap, rtol=0.02, grow=1.3)
        mse, se = seen.get(T_star, (math.nan, math.nan))
        with open(out, "a", newline="") as fh:
            csv.writer(fh).writerow([L, bias, D, budget, T_star, T_fail, cap, mse, se,
                                     len(seen), samples])
        print(L, bias, D, T_star, T_fail, cap, len(seen), flush=True)
        if prev and T_star and prev[1]:
            slope = math.log(T_star / prev[1]) / math.log(D / prev[0])
        prev = (D, T_star)
        guess = max(int(T_star * 2**slope), 2)
        D *= 2


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--L", type=int, default=4)
    ap.add_argument("--bias", default="0,-0.05,-0.1")
    ap.add_argument("--D-max", type=int, default=1024000)
    ap.add_argument("--budget", type=float, default=0.05)
    ap.add_argument("--samples", type=int, default=4000)
    args = ap.parse_args(argv)
    if not os.path.exists(args.out):
        with open(args.out, "w", newline="") as fh:
            csv.writer(fh).writerow(FIELDS)
    for bias in (float(b) for b in args.bias.split(",")):
        scan(args.L, bias, args.budget, args.D_max, args.samples, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
