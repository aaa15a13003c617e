"""The statistics that decide verdicts, tested against independent computations.

What is tested, and against what:

- the 95% confidence interval of a per-layer mean-square error (``kernel.measure``; what
  ``cis run`` prints and what ``cis check`` judges with): its half-width against the normal
  approximation ``z_0.975 * s / sqrt(n)`` computed here with the standard library
  (``statistics.NormalDist`` for the quantile, ``statistics.stdev`` for s), and its coverage of a
  known mean on simulated data;
- the relative uncertainty of the ratio predicted / measured (``bounds.predict.judge``): against
  the same reference combined in quadrature with the prediction's Monte Carlo error, and its
  coverage of the true ratio 1 on simulated data;
- the LOW-STATS threshold, the PASS band and the FAIL rule of ``judge``;
- end to end, every judged line of ``cis check --json`` against the per-sample errors of the same
  run recomputed through the public ``kernel.run``.

Coverage tolerance: with N = 2000 simulated data sets the observed coverage of a correct 95%
interval has binomial standard error sqrt(0.95 * 0.05 / N) = 0.0049, so [0.93, 0.97] is +-4.1
standard errors (a correct interval falls outside with probability < 1e-4; the seeds are fixed,
so the tests are deterministic). An interval 1.5x too wide covers 99.7% and one 0.8x too narrow
88%: both fail.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bounds.predict import Estimate, judge
from cis.cli import main
from kernel import run
from kernel.measure import ClassStats

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

#: the 0.975 quantile of the standard normal, computed independently of the package's constant
Z = statistics.NormalDist().inv_cdf(0.975)
DATA_SETS = 2000
COVERAGE = (0.93, 0.97)


def reference_half_width(values: np.ndarray) -> float:
    """Normal-approximation 95% half-width of a mean, in plain Python."""
    xs = [float(v) for v in values]
    return Z * statistics.stdev(xs) / math.sqrt(len(xs))


def squared_norms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-sample |eps|^2 of d = 4 Gaussian components of variance 1/4: chi^2_4 / 4, mean 1."""
    return rng.chisquare(4, n) / 4


def sparse_squared_norms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly zero, like layer-1 active errors (5% of samples overlap): still mean 1."""
    return (rng.random(n) < 0.05) * rng.chisquare(4, n) / 4 / 0.05


def ci_of(values: np.ndarray) -> tuple[float, float, float]:
    s = ClassStats.from_samples(values, 0.0)
    return s.mse, s.mse_ci[0], s.mse_ci[1]


# ----------------------------------------------------------------------------- width


@pytest.mark.parametrize("n", [2, 3, 40, 1000])
def test_confidence_interval_width_matches_the_normal_formula(n):
    rng = np.random.default_rng(n)
    x = squared_norms(rng, n) + 10.0  # far from 0: the interval is not cut at zero
    mse, lo, hi = ci_of(x)
    half = reference_half_width(x)
    assert mse == pytest.approx(statistics.fmean(x.tolist()), rel=1e-12)
    assert hi - mse == pytest.approx(half, rel=1e-9)
    assert mse - lo == pytest.approx(half, rel=1e-9)


def test_run_reports_the_interval_of_its_own_per_sample_errors():
    r = run(D=400, S=4, T=120, L=2, z=3, batch=300, seed=4, engine="dense")
    res = r.forward
    for layer in (1, 2):
        per_active = (res.active_error[:, layer] ** 2).sum(-1).mean(-1)
        per_inactive = res.inactive_sq[:, layer] / (r.network.T - 3)
        for stats, per in ((r.layers[layer].active, per_active),
                           (r.layers[layer].inactive, per_inactive)):
            assert stats.mse_ci[1] - stats.mse == pytest.approx(reference_half_width(per),
                                                                rel=1e-9)


# ----------------------------------------------------------------------------- coverage


@pytest.mark.parametrize(("draw", "n"), [(squared_norms, 400), (sparse_squared_norms, 2000)],
                         ids=["chi2", "sparse"])
def test_confidence_interval_covers_a_known_mean_95_percent_of_the_time(draw, n):
    rng = np.random.default_rng(20261130)
    hits = 0
    for _ in range(DATA_SETS):
        _, lo, hi = ci_of(draw(rng, n))
        hits += lo <= 1.0 <= hi
    assert COVERAGE[0] <= hits / DATA_SETS <= COVERAGE[1], hits / DATA_SETS


def test_ratio_interval_covers_the_true_ratio_95_percent_of_the_time():
    # measured: 400 samples of known mean 0.01; predicted: a Monte Carlo of 1000 draws of the same
    # quantity, with its std error. The true ratio is 1.
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(DATA_SETS):
        x = squared_norms(rng, 400) * 0.01
        y = squared_norms(rng, 1000) * 0.01
        mse, _, hi = ci_of(x)
        est = Estimate("mc", float(y.mean()), {}, float(y.std(ddof=1) / math.sqrt(y.size)),
                       0.5, True, "simulated")
        _, ratio, rel = judge(est, mse, hi - mse)
        hits += ratio * (1 - rel) <= 1.0 <= ratio * (1 + rel)
    assert COVERAGE[0] <= hits / DATA_SETS <= COVERAGE[1], hits / DATA_SETS


# ----------------------------------------------------------------------------- judge


def reference_rel(measured: float, half: float, predicted: float, se: float) -> float:
    return math.sqrt((half / measured) ** 2 + (Z * se / predicted) ** 2)


def reference_verdict(ratio: float, rel: float, tol: float) -> str:
    """The documented rule for an in-regime line (docs/regimes.md, ``judge``)."""
    if rel > tol:
        return "LOW-STATS"
    if 1 - tol <= ratio <= 1 + tol:  # the band as documented (abs(ratio - 1) <= tol can differ
        return "PASS"                # from it in the last bit: abs(0.7 - 1) > 0.3 in floats)
    lo, hi = ratio * (1 - rel), ratio * (1 + rel)
    return "FAIL" if lo > 1 + tol or hi < 1 - tol else "LOW-STATS"


@given(measured=st.floats(1e-6, 1e3), half_frac=st.floats(0.0, 0.5),
       ratio=st.floats(0.05, 20.0), se_frac=st.floats(0.0, 0.2), tol=st.sampled_from([0.2, 0.3]))
@example(measured=1.0, half_frac=0.08, ratio=1.3, se_frac=0.0, tol=0.2)  # a 1.3x ratio PASSed
@example(measured=1.0, half_frac=0.29, ratio=1.8, se_frac=0.0, tol=0.3)  # a 1.8x ratio PASSed
@example(measured=1.0, half_frac=0.0, ratio=0.7, se_frac=0.0, tol=0.3)  # on the band's edge
def test_judge_uncertainty_low_stats_and_pass_band(measured, half_frac, ratio, se_frac, tol):
    predicted = ratio * measured
    est = Estimate("x", predicted, {}, se_frac * predicted, tol, True, "in regime")
    verdict, r, rel = judge(est, measured, half_frac * measured)
    assert r == pytest.approx(ratio, rel=1e-12)
    assert rel == pytest.approx(reference_rel(measured, half_frac * measured, predicted,
                                              se_frac * predicted), rel=1e-9)
    # judged on the computed ratio r (checked against the drawn one above to 1e-12): at the
    # band's edge a last-bit difference between them decides PASS
    assert verdict == reference_verdict(r, rel, tol)
    if verdict == "PASS":  # what the documentation promises
        assert 1 - tol <= r <= 1 + tol and rel <= tol


def test_judge_thresholds():
    est = Estimate("x", 1.0, {}, 0.0, 0.2, True, "in regime")
    assert judge(est, 1.0, 0.199)[0] == "PASS"
    assert judge(est, 1.0, 0.201)[0] == "LOW-STATS"  # cannot resolve 20%
    assert judge(replace(est, mse=1.25), 1.0, 0.01)[0] == "FAIL"
    assert judge(replace(est, mse=1.25), 1.0, 0.05)[0] == "LOW-STATS"  # 1.25 * 0.95 < 1.2
    assert judge(replace(est, mse=0.75), 1.0, 0.05)[0] == "FAIL"
    assert judge(replace(est, mse=1.19), 1.0, 0.19)[0] == "PASS"
    assert judge(Estimate("x", 1.0, {}, 0.0, 0.2, False, "outside"), 1.0, 0.01)[0] == (
        "OUT-OF-REGIME")


# ----------------------------------------------------------------------------- end to end

CHECK = {"D": 1000, "S": 6, "T": 300, "L": 2, "z": 2, "batch": 300, "seed": 2}


def test_cis_check_lines_use_the_reference_statistics(capsys):
    args = [a for k, v in CHECK.items() for a in (f"--{k}", str(v))]
    with pytest.raises(SystemExit):
        main(["check", *args, "--samples", "2000", "--json"])
    out = json.loads(capsys.readouterr().out)
    res = run(**CHECK).forward
    judged = 0
    for lay in out["layers"][1:]:
        layer = lay["layer"]
        per = {"active": (res.active_error[:, layer] ** 2).sum(-1).mean(-1),
               "inactive": res.inactive_sq[:, layer] / (CHECK["T"] - CHECK["z"])}
        for cls in ("active", "inactive"):
            e = lay[cls]
            half = reference_half_width(per[cls])
            assert e["mse_ci"][1] - e["mse"] == pytest.approx(half, rel=1e-9)
            for line in e["estimates"]:
                if line["verdict"] == "ZERO":
                    continue
                rel = reference_rel(e["mse"], half, line["mse"], line["mc_se"])
                assert line["ratio_uncertainty"] == pytest.approx(rel, rel=1e-6), line
                if line["verdict"] != "OUT-OF-REGIME":
                    judged += 1
                    assert line["verdict"] == reference_verdict(line["ratio"], rel,
                                                                line["tolerance"]), line
    assert judged >= 4  # the configuration is in the cavity's regime: lines are really judged
