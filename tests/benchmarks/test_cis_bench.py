"""``cis bench``: smoke test of the command (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

from cis.cli import main


@pytest.mark.parametrize("batch", ["1", "5"])
def test_bench_json_reports_times_ratios_memory_and_float32_error(capsys, batch):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--D", "400", "--S", "5", "--T", "60", "--L", "3", "--z", "2",
              "--batch", batch, "--bias", "-0.05", "--reps", "1", "--json"])
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    secs = out["seconds"]
    for key in ("build", "auto", "auto-f32", "factorised", "sparse", "dense-f64", "dense-f32",
                "dense-f64+readout"):
        assert secs[key] > 0, key
    assert ("auto-split" in secs) == (batch == "1")
    assert out["ratios"]["dense-f64 / auto"] > 0
    assert len(out["frac_on"]) == 4
    assert out["float32_error"]["active_readout_max_abs"] < 1e-4
    assert out["dense"]["formed"] is True
    assert out["peak_rss_MiB"]["after_build"] > 0


def test_bench_rejects_the_dense_engine(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--D", "400", "--S", "5", "--T", "60", "--engine", "dense", "--reps", "1"])
    assert exc.value.code == 2
    assert "engine='dense' is not one of" in capsys.readouterr().err
