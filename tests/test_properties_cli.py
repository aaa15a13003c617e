"""``cis verify``: summary table / JSON of the property suite, exit 0 iff every property holds."""

from __future__ import annotations

import json

import pytest
from hypothesis import strategies as st

from cis.cli import main
from properties import suite
from properties.result import compare

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


def _run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(["verify", *args])
    return exc.value.code, capsys.readouterr()


def test_verify_json_lists_every_property(capsys):
    code, out = _run(capsys, "--profile", "dev", "--max-examples", "2", "--json")
    assert code == 0
    obj = json.loads(out.out)
    assert obj["passed"] is True and obj["profile"] == "dev"
    assert [p["property"] for p in obj["properties"]] == list(suite.PROPERTIES)
    assert all(p["examples"] >= 1 and p["passed"] for p in obj["properties"])


def test_verify_table(capsys):
    code, out = _run(capsys, "--profile", "ci", "--max-examples", "2", "--property",
                     "load_balance", "--property", "engines_agree")
    assert code == 0
    assert "load_balance" in out.out and "engines_agree" in out.out and "worst slack" in out.out
    assert "2/2 hold" in out.out


def test_verify_exits_1_when_a_property_fails(capsys, monkeypatch):
    bad = suite.Property("always_fails", "structural", st.integers(0, 3),
                         lambda ex, mutate, engine: compare("always_fails", 1.0, 0.0, "planted"))
    monkeypatch.setitem(suite.PROPERTIES, "always_fails", bad)
    code, out = _run(capsys, "--profile", "dev", "--max-examples", "3", "--property",
                     "always_fails", "--json")
    assert code == 1
    rep = json.loads(out.out)["properties"][0]
    assert rep["passed"] is False and "planted" in rep["failure"]


def test_verify_rejects_unknown_property(capsys):
    code, out = _run(capsys, "--property", "nope")
    assert code == 2 and "'nope' is not one of" in out.err
