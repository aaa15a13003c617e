"""Measured errors per layer and class (docs/error-terms.md) and the first sanity check of the
construction."""

from __future__ import annotations

import numpy as np
import pytest

from kernel import build_network, run, sample_batch


@pytest.fixture(scope="module")
def signed_run():
    return run(
        D=1000,
        d=4,
        S=6,
        T=557,
        L=4,
        z=2,
        batch=2000,
        seed=0,
        family="signed",
        bias=0.0,
        engine="sparse",
    )


def test_layer_one_inactive_mse_matches_the_leading_order_estimate(signed_run):
    # leading order (docs/error-terms.md): inactive E|eps^1|^2 ~ z (d/D) <|a^1|^2>
    # (signed circuits: |a^1| = 1 exactly)
    res = signed_run.forward
    a2 = (res.a[:, 1] ** 2).sum(-1).mean()
    predicted = 2 * (4 / 1000) * a2
    measured = signed_run.layers[1].inactive.mse
    assert measured == pytest.approx(predicted, rel=0.15)
    # the comparison is decided by the data, not by noise: the 95% interval is far narrower than
    # the 15% band (its width itself is tested against a reference in tests/test_statistics.py)
    lo, hi = signed_run.layers[1].inactive.mse_ci
    assert (hi - lo) / 2 < 0.05 * measured


def test_layer_zero_is_exact_and_reported(signed_run):
    layer0 = signed_run.to_dict()["layers"][0]
    assert layer0["layer"] == 0
    assert layer0["active"]["mse"] == 0.0 and layer0["inactive"]["mse"] == 0.0


def test_json_has_the_documented_shape(signed_run):
    out = signed_run.to_dict()
    assert set(out) == {"config", "layers", "seconds"}
    assert out["config"]["T"] == 557 and out["config"]["engine"] == "sparse"
    assert len(out["layers"]) == 5
    for lay in out["layers"]:
        assert set(lay) == {"layer", "active", "inactive", "false_activation_rate", "frac_on"}
        for cls in ("active", "inactive"):
            assert set(lay[cls]) == {"mse", "mse_ci", "max_abs"}
            assert len(lay[cls]["mse_ci"]) == 2
    assert set(out["seconds"]) == {"build", "forward"}


@pytest.mark.nojit
def test_statistics_match_a_direct_computation():
    r = run(D=400, S=4, T=120, L=3, z=3, batch=40, engine="dense")
    res = r.forward
    err = res.active_error
    for layer in range(4):
        np.testing.assert_allclose(r.layers[layer].active.mse, (err[:, layer] ** 2).sum(-1).mean())
        np.testing.assert_allclose(r.layers[layer].active.max_abs, np.abs(err[:, layer]).max())
        np.testing.assert_allclose(
            r.layers[layer].inactive.mse, res.inactive_sq[:, layer].mean() / 117
        )
        np.testing.assert_allclose(r.layers[layer].frac_on, res.frac_on[:, layer].mean())


@pytest.mark.nojit
def test_all_active_has_no_inactive_class():
    r = run(D=240, S=4, T=5, L=2, z=5, batch=3)
    assert r.layers[1].inactive is None
    assert r.to_dict()["layers"][1]["inactive"] is None


@pytest.mark.nojit
def test_run_is_reproducible():
    a = run(D=400, S=4, T=100, batch=20, seed=3).to_dict()
    b = run(D=400, S=4, T=100, batch=20, seed=3).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


@pytest.mark.nojit
@pytest.mark.parametrize("family", ["signed", "gaussian"])
def test_relu_term_of_signed_circuits_has_the_norm_of_the_total_error(family):
    # docs/error-terms.md: for signed circuits |eps_relu| = |eps| exactly (the linear part of the
    # error is antisymmetric on the (y+, y-) pairs, the |x| part of the ReLU symmetric); for
    # gaussian circuits the two differ, so the identity is a property of the family, not of the code
    from kernel.decompose import decompose

    net = build_network(D=400, S=4, T=100, L=3, family=family, seed=1)
    dec = decompose(net, sample_batch(net, 20, 3, seed=2))
    relu = (dec.active_terms["relu"] ** 2).sum(-1)
    total = (dec.active_total**2).sum(-1)
    same = np.allclose(relu, total, rtol=1e-9, atol=1e-15) and np.allclose(
        dec.inactive_terms_sq["relu"], dec.inactive_sq, rtol=1e-9, atol=1e-15)
    assert same == (family == "signed")
