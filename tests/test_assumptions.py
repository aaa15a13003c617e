"""The assumptions report A1-A5 on constructed circuits that satisfy or violate each one."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from bounds.assumptions import (
    A4_PAIRS,
    HOLDS,
    NOT_APPLICABLE,
    VIOLATED,
    check_assumptions,
    check_circuits,
    violated_among,
)
from cis.cli import main
from kernel import build_network, user_network

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


def _rotations(T: int, L: int, seed: int = 0) -> np.ndarray:
    """(T, L, 2, 2) rotations by independent uniform angles: norm 1, uncorrelated."""
    ang = np.random.default_rng(seed).uniform(0, 2 * np.pi, (T, L))
    c, s = np.cos(ang), np.sin(ang)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _net(weights, bias=-0.1, D=400, S=2):
    T = weights.shape[0]
    return user_network(weights, bias, np.ones((T, weights.shape[2])), D=D, S=S)


def _by_name(report):
    return {a.name: a for a in report}


def test_well_behaved_circuits_satisfy_every_assumption():
    got = _by_name(check_assumptions(_net(_rotations(30, 3)), z=2))
    assert [got[k].status for k in ("A1", "A2", "A3", "A4", "A5")] == [HOLDS] * 5
    assert got["A1"].value == pytest.approx(2 * 2**2 / 200)  # z S^2 / n, n = D/d = 200
    assert got["A2"].value == pytest.approx(0.1)  # margin -b
    assert got["A3"].value == pytest.approx(-0.1)
    assert got["A5"].value == pytest.approx(1.0)  # rotations have spectral norm 1


def test_a1_violated_when_active_circuits_crowd_a_small_block():
    got = _by_name(check_assumptions(_net(_rotations(3, 2), D=8, S=2), z=2))
    assert got["A1"].status == VIOLATED and got["A1"].value == pytest.approx(2 * 4 / 4)


def test_a2_needs_a_negative_bias_and_two_layers():
    assert _by_name(check_assumptions(_net(_rotations(5, 2), bias=0.0)))["A2"].status == VIOLATED
    one_layer = _by_name(check_assumptions(_net(_rotations(5, 1))))["A2"]
    assert one_layer.status == NOT_APPLICABLE


def test_a3_violated_by_a_positive_bias():
    net = _net(_rotations(5, 2))
    # validation refuses positive biases, so the violating network is made by hand
    bad = replace(net, circuits=replace(net.circuits, bias=np.full((2, 2), 0.25)))
    a3 = _by_name(check_assumptions(bad))["A3"]
    assert a3.status == VIOLATED and a3.value == pytest.approx(0.25)


def _mean_pair_cosine(w: np.ndarray) -> float:
    """Slow reference: mean over layers and unordered pairs of the cosine of flattened weights."""
    vals = []
    for layer in range(w.shape[1]):
        for t, u in itertools.combinations(range(w.shape[0]), 2):
            a, b = w[t, layer].ravel(), w[u, layer].ravel()
            vals.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.mean(vals))


def test_a4_measures_the_mean_cross_circuit_correlation():
    w = _rotations(12, 2, seed=3)
    a4 = _by_name(check_assumptions(_net(w)))["A4"]
    assert a4.value == pytest.approx(_mean_pair_cosine(w), abs=1e-12)
    same = np.broadcast_to(_rotations(1, 2), (12, 2, 2, 2)).copy()  # one weight matrix for all
    a4_same = _by_name(check_assumptions(_net(same)))["A4"]
    assert a4_same.status == VIOLATED and a4_same.value == pytest.approx(1.0)


def test_a4_samples_pairs_of_large_designs_and_is_not_applicable_to_one_circuit():
    T = 300
    assert T * (T - 1) // 2 > A4_PAIRS
    same = np.broadcast_to(np.eye(2) * 0.5, (T, 1, 2, 2)).copy()
    assert _by_name(check_assumptions(_net(same, D=2000)))["A4"].value == pytest.approx(1.0)
    single = _by_name(check_assumptions(_net(_rotations(1, 2)), z=1))["A4"]
    assert single.status == NOT_APPLICABLE and single.value is None


def test_a5_violated_by_a_gain_above_one():
    w = _rotations(6, 2)
    w[2, 1] *= 2.5  # one circuit amplifies by 2.5 at layer 2
    a5 = _by_name(check_assumptions(_net(w)))["A5"]
    assert a5.status == VIOLATED and a5.value == pytest.approx(2.5)


def test_built_in_families():
    signed = _by_name(check_assumptions(build_network(D=400, S=5, T=50, L=2)))
    assert signed["A5"].value == pytest.approx(2.0)  # the signed family's gain (docstring)
    perm = _by_name(check_assumptions(build_network(D=400, S=5, T=50, L=2, family="permutation")))
    assert perm["A4"].status == VIOLATED  # non-negative weights are correlated


def test_cis_check_assumptions_json_and_table(capsys):
    args = ["check", "--D", "400", "--S", "5", "--T", "50", "--L", "2", "--batch", "20",
            "--samples", "1000", "--assumptions"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--json"])
    assert exc.value.code in (0, 1)
    got = json.loads(capsys.readouterr().out)["assumptions"]
    assert [a["name"] for a in got] == ["A1", "A2", "A3", "A4", "A5"]
    assert {a["status"] for a in got} <= {HOLDS, VIOLATED, NOT_APPLICABLE}
    with pytest.raises(SystemExit):
        main(args)
    out = capsys.readouterr().out
    assert "assumptions" in out and "largest spectral norm" in out


def _lines(out):
    """Every judged line of a ``cis check --json`` object: (layer, class, what, line)."""
    for lay in out["layers"]:
        for cls in ("active", "inactive"):
            e = lay[cls]
            if e is None:
                continue
            for est in e["estimates"]:
                yield lay["layer"], cls, est["model"], est
            if e["bound"] is not None:
                yield lay["layer"], cls, e["bound"]["kind"], e["bound"]
            yield lay["layer"], cls, "tail", e["tail_estimate"]


def _check(capsys, *args):
    base = ["check", "--D", "400", "--S", "5", "--T", "50", "--L", "2", "--batch", "20",
            "--samples", "1000", "--family", "gaussian", *args]
    with pytest.raises(SystemExit):
        main([*base, "--json"])
    out = json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(base)
    return out, capsys.readouterr().out


@pytest.mark.parametrize(("args", "violated", "must_mark"), [
    # z S^2 / n = 4 * 25 / 100 = 1 (A1) and a zero bias (A2)
    (["--z", "4", "--bias", "0"], ["A1", "A2"],
     {(1, "active", "cavity"): ["A1"], (2, "inactive", "conditional (A2)"): ["A2"],
      (2, "inactive", "leading"): ["A1", "A2"], (2, "active", "tail"): ["A1"]}),
    # non-negative weights are correlated (A4)
    (["--family", "permutation", "--bias", "-0.05"], ["A4"],
     {(2, "inactive", "sketch"): ["A4"], (2, "active", "leading"): ["A4"],
      (2, "inactive", "tail"): ["A4"]}),
])
def test_cis_check_marks_the_lines_whose_assumptions_fail(capsys, args, violated, must_mark):
    out, table = _check(capsys, *args)
    report = {a.name: a.status for a in check_assumptions(
        build_network(D=400, S=5, T=50, L=2, family=args[args.index("--family") + 1]
                      if "--family" in args else "gaussian",
                      bias=float(args[args.index("--bias") + 1])),
        z=int(args[args.index("--z") + 1]) if "--z" in args else 2)}
    assert [k for k, v in report.items() if v == VIOLATED] == violated
    assert out["check"]["assumptions_violated"] == violated
    seen = {}
    for layer, cls, what, line in _lines(out):
        want = [a for a in line["assumptions"] if report[a] == VIOLATED]
        assert line["assumptions_violated"] == want, (layer, cls, what)
        seen[(layer, cls, what)] = line["assumptions_violated"]
    for key, names in must_mark.items():
        assert seen[key] == names, key
    assert "*" + ",".join(must_mark[next(iter(must_mark))]) in table
    assert "*An: derived under assumption An, which this network violates" in table


def test_cis_check_marks_nothing_on_a_conforming_network(capsys):
    out, table = _check(capsys, "--bias", "-0.05")  # gaussian: A1-A5 all hold (z = 2)
    assert out["check"]["assumptions_violated"] == []
    lines = list(_lines(out))
    assert any(line["assumptions"] for *_, line in lines)  # the lines do declare assumptions
    assert all(line["assumptions_violated"] == [] for *_, line in lines)
    assert " *A" not in table and "*An:" not in table
    assert "assumptions" not in out  # the full report only with --assumptions


def test_circuits_alone_give_the_networks_a2_to_a5_and_no_a1():
    net = build_network(D=400, S=5, T=50, L=2, family="permutation", bias=-0.05)
    alone = check_circuits(net.circuits)
    placed = check_assumptions(net, z=4)
    assert alone[1:] == placed[1:]
    assert alone[0].status == NOT_APPLICABLE and placed[0].status == VIOLATED  # 4 * 25 / 100
    assert check_circuits(net.circuits, z=4, S=5, n=100) == placed


def test_violated_among_keeps_the_report_order_and_only_violations():
    report = check_assumptions(build_network(D=400, S=5, T=50, L=2, family="permutation"), z=4)
    assert [a.name for a in report if a.status == VIOLATED] == ["A1", "A2", "A4"]
    assert violated_among(("A4", "A3", "A1"), report) == ["A1", "A4"]
    assert violated_among((), report) == []
