"""The command line: JSON output, tables, exit code 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cis.cli import main


def cis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cis", *args], capture_output=True, text=True)


def test_run_json_has_every_parameter_and_layer(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--D", "400", "--S", "5", "--T", "50", "--L", "3", "--z", "2", "--batch",
              "30", "--engine", "sparse", "--json"])
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == {"D": 400, "d": 4, "S": 5, "T": 50, "L": 3, "family": "signed",
                             "bias": 0.0, "variant": "plain", "seed": 0, "construction": "cis2",
                             "kappa_scale": 1.0, "rot_bias": 1.0, "z": 2, "batch": 30,
                             "engine": "sparse", "threshold_fraction": 0.1}
    assert [lay["layer"] for lay in out["layers"]] == [0, 1, 2, 3]


def test_run_defaults_t_to_t_max(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--D", "1000", "--batch", "10", "--json"])
    assert json.loads(capsys.readouterr().out)["config"]["T"] == 557


def test_capacity_json(capsys):
    with pytest.raises(SystemExit):
        main(["capacity", "--n", "250", "--S", "6", "--json"])
    assert json.loads(capsys.readouterr().out) == {"n": 250, "S": 6, "T_max": 557,
                                                   "packing_bound": 2075}


def test_table_output_mentions_every_layer():
    proc = cis("run", "--D", "400", "--S", "5", "--T", "50", "--L", "2", "--batch", "10")
    assert proc.returncode == 0, proc.stderr
    assert "inactive" in proc.stdout and "frac on" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--D", "1001"], "D=1001 must be divisible by d=4"),
        (["run", "--D", "1000", "--T", "900"], "T_max=557"),
        (["run", "--bias", "0.5"], "bias=0.5 must be <= 0"),
        (["run", "--D", "abc"], "'abc' is not a valid integer"),
        (["run", "--family", "x"], "family='x'"),
        (["capacity", "--n", "250"], "Missing option '--S'"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    proc = cis(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
