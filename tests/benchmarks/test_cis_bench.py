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
    assert out["ratios"]["dense-f64 / auto"] > 0
    assert len(out["frac_on"]) == 4
    assert out["float32_error"]["active_readout_max_abs"] < 1e-4
    assert out["dense"]["formed"] is True
    assert out["peak_rss_MiB"]["after_build"] > 0
    assert out["triad"]["GB_per_s"] > 0
    for name in ("auto", "auto-f32", "dense-f64", "dense-f32"):
        rate = out["rates"][name]
        assert rate["GB_per_s"] == pytest.approx(rate["bytes"] / rate["seconds"] / 1e9)
        assert rate["fraction_of_triad"] == pytest.approx(
            rate["GB_per_s"] / out["triad"]["GB_per_s"])


def test_work_model_counts_by_hand():
    from cis.bench import dense_work, work_model

    # T=10, S=3, d=2, L=2, D=20, batch 3 in chunks of 2 (2 chunks), float64:
    # read-out per circuit (3*2 - 2) + 2 + (2*2 + 1) = 11, scatter 2*(4 - 1) + 3*2 = 12;
    # flops = 3 * 10 * (2 * 11 + 1 * 12) = 1020
    # bytes = 2 chunks * 2 layers * 10 * (3*4*2 + 4*8 + 1) + 3 * 2 * (2*2*20*8) = 2280 + 3840
    w = work_model(T=10, S=3, d=2, L=2, D=20, batch=3, chunk=2, itemsize=8)
    assert w == {"flops": 1020.0, "bytes": 6120.0}
    assert dense_work(D=20, L=3, batch=5, itemsize=4) == {
        "flops": 2 * 400 * 5 * 2.0, "bytes": 2 * (400 + 200) * 4.0}


def test_bench_skips_a_dense_baseline_that_cannot_be_formed(capsys):
    # D > 20000: dense_layer refuses to form W^l, so --dense auto runs the engines alone and
    # says why (it used to pick the baseline and fail inside dense_layer)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--D", "20004", "--S", "3", "--T", "40", "--L", "2", "--z", "1",
              "--batch", "2", "--reps", "1", "--json"])
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dense"]["formed"] is False
    assert "too large for dense_layer" in out["dense"]["skipped"]
    assert "dense-f64" not in out["seconds"] and out["seconds"]["auto"] > 0
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--D", "20004", "--S", "3", "--T", "40", "--L", "2", "--z", "1",
              "--batch", "2", "--reps", "1", "--dense", "yes"])
    assert exc.value.code == 2
    assert "D=20004 is too large for the dense baselines" in capsys.readouterr().err


def test_bench_rejects_the_dense_engine(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--D", "400", "--S", "5", "--T", "60", "--engine", "dense", "--reps", "1"])
    assert exc.value.code == 2
    assert "engine='dense' is not one of" in capsys.readouterr().err
