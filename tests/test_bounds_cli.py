"""``cis check`` and ``cis capacity --budget``: JSON shape, verdicts, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest

import bounds.predict
from bounds.capacity import cavity_active_mse, t_max
from cis.cli import main

SMALL = ["--D", "400", "--S", "5", "--T", "50", "--L", "2", "--z", "5", "--batch", "40",
         "--samples", "2000"]


def cis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cis", *args], capture_output=True, text=True)


def _check_json(capsys, *args: str) -> tuple[int, dict]:
    with pytest.raises(SystemExit) as exc:
        main(["check", *args, "--json"])
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_check_json_extends_run_json(capsys):
    code, out = _check_json(capsys, *SMALL)
    assert code in (0, 1)
    assert out["config"]["D"] == 400 and out["config"]["T"] == 50
    assert [lay["layer"] for lay in out["layers"]] == [0, 1, 2]
    for lay in out["layers"]:
        for cls in ("active", "inactive"):
            e = lay[cls]
            assert {"mse", "mse_ci", "max_abs"} <= set(e)  # cis run's fields stay
            assert set(e["predicted"]) == {"mse", "overlap", "propagation", "relu"}
            assert set(e["measured_terms"]) == {"overlap", "propagation", "relu"}
            assert "worst_case_bound" in e and e["pass"] in (True, False, None)
    lay1 = out["layers"][1]
    # the layer-1 bound is rigorous and reported for both classes
    for cls in ("active", "inactive"):
        assert lay1[cls]["bound"]["kind"] == "rigorous"
        assert lay1[cls]["max_abs"] <= lay1[cls]["worst_case_bound"]
    # z S^2 d/D = 5*25*4/400 = 1.25 > 1.2: every estimate is flagged, none silently judged
    for lay in out["layers"][1:]:
        for cls in ("active", "inactive"):
            assert {x["verdict"] for x in lay[cls]["estimates"]} <= {"OUT-OF-REGIME", "ZERO"}
            assert all("A1" in x["regime"] for x in lay[cls]["estimates"])
    assert code == (0 if out["check"]["pass"] else 1)


def test_check_exits_1_when_an_in_regime_estimate_is_off(capsys, monkeypatch):
    real = bounds.predict.predict

    def wrong(net, z, **kw):  # a planted fault: every cavity estimate 3x too high
        out = real(net, z, **kw)
        for row in out:
            for cp in row.values():
                cp.estimates = [replace(e, mse=3 * e.mse) if e.model == "cavity" else e
                                for e in cp.estimates]
        return out

    monkeypatch.setattr(bounds.predict, "predict", wrong)
    args = ["--D", "2000", "--S", "5", "--T", "1500", "--L", "2", "--batch", "300",
            "--samples", "5000"]
    code, out = _check_json(capsys, *args)
    assert code == 1 and out["check"]["pass"] is False
    assert out["check"]["verdicts"].get("FAIL", 0) >= 1
    monkeypatch.setattr(bounds.predict, "predict", real)
    code, out = _check_json(capsys, *args)
    assert code == 0 and out["check"]["pass"] is True, out["check"]


def test_check_table_output():
    proc = cis("check", *SMALL)
    assert proc.returncode in (0, 1), proc.stderr
    assert "OUT-OF-REGIME" in proc.stdout and "rigorous" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--D", "1001"], "D=1001 must be divisible by d=4"),
        (["check", "--samples", "5"], "samples=5 must be >= 1000"),
        (["check", "--bias", "0.5"], "bias=0.5 must be <= 0"),
        (["capacity", "--budget", "0.1"], "Missing option '--D'"),
        (["capacity"], "give --n and --S, or --budget"),
        (["capacity", "--budget", "-1", "--D", "4000"], "budget=-1.0 must be >= 0.0"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    proc = cis(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_capacity_inverse_problem_json(capsys):
    budget, D, d, z, L, S = 0.05, 4000, 4, 2, 4, 6
    with pytest.raises(SystemExit) as exc:
        main(["capacity", "--budget", str(budget), "--D", str(D), "--d", str(d), "--z", str(z),
              "--L", str(L), "--S", str(S), "--T", "3000", "--json"])
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    # the post's closed forms, solved here by hand: L (z-1) x + (L-1) z T x^2 <= budget, x = d/D
    x = d / D
    assert out["largest_T_post"] == math.floor((budget - L * (z - 1) * x) / ((L - 1) * z * x * x))
    qa, qb = (L - 1) * z * 3000, L * (z - 1)
    x_root = (-qb + math.sqrt(qb * qb + 4 * qa * budget)) / (2 * qa)
    assert out["smallest_D_post"] == d * math.ceil(d / x_root / d)
    assert out["T_max"] == 8243  # the design's reference value T_max(1000, 6)
    # the cavity answer is reported as largest_T; it is the largest T whose predicted layer-L
    # active MSE is within the budget: T* meets it and T* + 1 does not (same seeds as the CLI)
    T_star = out["largest_T"]
    assert T_star == out["largest_T_cavity"] and 0 < T_star < out["T_max"]
    assert out["predicted_mse_at_largest_T"] <= budget and out["cavity_monotone"]
    assert cavity_active_mse(T_star + 1, D, d, z, L, S)[0] > budget
    # the post's answer is optimistic at beta = 0 (it drops the inactive feedback)
    assert T_star < out["largest_T_post"]
    D_star = out["smallest_D"]
    assert D_star == out["smallest_D_cavity"] and D_star % d == 0
    assert cavity_active_mse(3000, D_star, d, z, L, S)[0] <= budget
    n_below = D_star // d - 1
    assert t_max(n_below, S) < 3000 or cavity_active_mse(3000, d * n_below, d, z, L, S)[0] > budget
    with pytest.raises(SystemExit):
        main(["capacity", "--n", "250", "--S", "6", "--json"])
    assert json.loads(capsys.readouterr().out) == {"n": 250, "S": 6, "T_max": 557,
                                                   "packing_bound": 250 * 249 // (6 * 5)}


def test_compare_refuses_when_the_decomposition_disagrees_with_the_engine(monkeypatch):
    import kernel.decompose
    from cis.compare import compare

    real = kernel.decompose.decompose
    params = dict(D=400, S=5, T=50, L=2, z=2, batch=20)
    compare(params, samples=1000)  # the two passes agree

    def shifted(net, batch):  # a planted fault: one active error off by 1e-6
        dec = real(net, batch)
        dec.active_total[0, 1, 0, 0] += 1e-6
        return dec

    monkeypatch.setattr(kernel.decompose, "decompose", shifted)
    with pytest.raises(RuntimeError, match="disagrees with the forward engine"):
        compare(params, samples=1000)
