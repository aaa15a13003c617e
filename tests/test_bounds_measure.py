"""bounds/ against measurement (docs/error-terms.md): every estimate inside its stated regime is
within its tolerance, judged with 95% intervals of the measurement and of the prediction's Monte
Carlo.

Measurements use the numba engine (``kernel.forward``) for totals and ``kernel.decompose`` for the
terms; predictions use only the small circuits and the realised design (``bounds.predict``).
Batch sizes are chosen so that the relative 95% half-width stays well below the tolerance: a line
that could not fail (LOW-STATS) fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from bounds import refined
from bounds.moments import circuit_moments
from bounds.predict import Estimate, judge, predict
from bounds.worst_case import tail_max_estimate
from kernel import build_network, forward, sample_batch
from kernel.decompose import decompose

Z95 = 1.959963984540054


def _measured(res, layer: int, cls: str, T: int) -> tuple[float, float]:
    """Mean over samples of the per-sample class MSE, and its 95% half-width."""
    if cls == "active":
        per = (res.active_error[:, layer] ** 2).sum(-1).mean(-1)
    else:
        per = res.inactive_sq[:, layer] / (T - res.batch.z)
    return float(per.mean()), float(Z95 * per.std(ddof=1) / np.sqrt(per.size))


def _run(family: str, bias: float, L: int, batch: int, z: int = 2, T: int = 3000, D: int = 4000,
         variant: str = "plain", samples: int = 40000):
    net = build_network(D=D, S=6, T=T, L=L, family=family, bias=bias, variant=variant, seed=0)
    res = forward(net, sample_batch(net, batch, z, seed=5), engine="sparse")
    return net, res, predict(net, z, samples=samples, seed=1)


def _verdicts(net, res, preds, layers, models=("cavity",)):
    out = {}
    for layer in layers:
        for cls in ("active", "inactive"):
            m, half = _measured(res, layer, cls, net.T)
            for est in preds[layer][cls].estimates:
                if est.model in models:
                    out[(layer, cls, est.model)] = judge(est, m, half)
    return out


@pytest.fixture(scope="module", params=[0.0, -0.05], ids=["beta0", "beta-0.05"])
def signed_deep(request):
    return _run("signed", request.param, L=4, batch=1000)


@pytest.mark.slow
def test_cavity_recursion_signed_layers_2_to_4(signed_deep):
    """Refined totals within 20% at layer 2 and 30% at layers 3-4 (signed, D = 4000)."""
    net, res, preds = signed_deep
    v = _verdicts(net, res, preds, range(2, 5))
    assert all(x[0] == "PASS" for x in v.values()), v
    # the tolerance is the one each estimate states (20% at l <= 2, 30% deeper)
    assert {est.tol for lay in preds[2:] for c in lay.values() for est in c.estimates
            if est.model == "cavity"} == {0.2, 0.3}


@pytest.mark.slow
def test_every_in_regime_estimate_passes_and_the_post_is_flagged(signed_deep):
    net, res, preds = signed_deep
    models = ("leading", "layer1-exact", "sketch", "cavity")
    v = _verdicts(net, res, preds, range(1, 5), models=models)
    for (layer, cls, model), (verdict, ratio, rel) in v.items():
        if layer == 1 and cls == "active":
            continue  # 1000 samples resolve layer-1 active errors only to ~30% (see below)
        assert verdict in ("PASS", "OUT-OF-REGIME"), (layer, cls, model, verdict, ratio, rel)
    # signed ReLUs cut: the post's active formula is out of its regime at every layer, and the
    # inactive one from layer 2 on (A2 fails); measured gaps, documented in docs/bounds.md
    assert v[(1, "active", "leading")][0] == "OUT-OF-REGIME"
    assert v[(2, "inactive", "leading")][0] == "OUT-OF-REGIME"
    if net.config.bias == 0.0:
        assert v[(2, "inactive", "leading")][1] < 0.2  # the post misses ~9x of feedback
        assert v[(2, "inactive", "sketch")][0] == "PASS"


@pytest.mark.slow
@pytest.mark.parametrize("bias", [0.0, -0.05])
def test_cavity_recursion_gaussian_layers_1_2(bias):
    net, res, preds = _run("gaussian", bias, L=2, batch=2000)
    v = _verdicts(net, res, preds, [2])
    v.update({k: x for k, x in _verdicts(net, res, preds, [1]).items() if k[1] == "inactive"})
    assert all(x[0] == "PASS" for x in v.values()), v


@pytest.mark.slow
@pytest.mark.parametrize(("family", "bias"), [("signed", 0.0), ("signed", -0.05),
                                              ("gaussian", 0.0), ("gaussian", -0.05)])
def test_layer_one_refinements_against_a_large_batch(family, bias):
    """Layer 1, active and inactive: the exact-pair estimate and the cavity within 20%; the
    post's formula is ~2-2.8x too high for active circuits, on-weighting brings it to ~1.2x."""
    net, res, preds = _run(family, bias, L=1, batch=30000, samples=60000)
    v = _verdicts(net, res, preds, [1], models=("layer1-exact", "cavity", "leading"))
    for cls in ("active", "inactive"):
        for model in ("layer1-exact", "cavity"):
            assert v[(1, cls, model)][0] == "PASS", (cls, model, v[(1, cls, model)])
    verdict, lead_ratio, rel = v[(1, "active", "leading")]
    assert verdict == "OUT-OF-REGIME"
    assert lead_ratio * (1 - rel) > 1.5  # the post overestimates by > 1.5x here (ReLU cuts)
    c = net.circuits
    mom = circuit_moments(c.weights, c.bias, c.inputs)
    lead = preds[1]["active"].estimates[0]
    assert lead.model == "leading"
    on = refined.on_weighted(lead.mse, float(mom.frac_on[1]))
    m, half = _measured(res, 1, "active", net.T)
    # stated accuracy: on-weighted, within about 30%; measured ratios 1.17-1.24 (D = 4000,
    # T = 3000): the rest is eps_relu of the shared neuron, which ``layer1-exact`` keeps
    est = Estimate("on-weighted", on, {}, 0.0, 0.3, True, "layer 1")
    assert judge(est, m, half)[0] == "PASS", (on, m, half)


@pytest.mark.slow
@pytest.mark.parametrize("z", [2, 4])
def test_post_formula_in_its_regime_permutation_layer_one(z):
    """Permutation circuits never cut at layer 1 (h >= 0, beta = 0): the post's formula is in its
    regime there and within 20% (the residual is E[(o/S)^2] vs d/D and the plain mean shift)."""
    net, res, preds = _run("permutation", 0.0, L=2, batch=20000, z=z, samples=20000)
    v = _verdicts(net, res, preds, [1, 2], models=("leading",))
    assert v[(1, "active", "leading")][0] == "PASS"
    assert v[(1, "inactive", "leading")][0] == "PASS"
    # permutation weights are non-negative: A4 fails at layer 2 and the post is flagged there
    assert v[(2, "active", "leading")][0] == "OUT-OF-REGIME"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "corrected"])
def test_finite_size_overlap_term_with_the_mean_shift(variant):
    """eps_overlap at layer 1 with z = 6 permutation circuits (non-negative h): the plain mean shift
    (z-1)(z-2) E[o/S]^2 |<h>|^2 is ~10% of the term and needed; corrected removes it."""
    z = 6
    net = build_network(D=4000, S=6, T=3000, L=1, family="permutation", variant=variant, seed=0)
    dec = decompose(net, sample_batch(net, 4000, z, seed=1))
    c = net.circuits
    mom = circuit_moments(c.weights, c.bias, c.inputs)
    m1, m2 = refined.realised_overlap_moments(net.design, net.n)
    if variant == "corrected":
        m1, m2 = refined.corrected_coefficient_moments(net.S, net.read_c, m1 * net.S)
    hm = float((mom.h_mean[1] ** 2).sum())
    per_a = (dec.active_terms["overlap"][:, 1] ** 2).sum(-1).mean(-1)
    per_i = dec.inactive_terms_sq["overlap"][:, 1] / dec.n_inactive
    for per, fn in ((per_a, refined.overlap_term_active_refined),
                    (per_i, refined.overlap_term_inactive_refined)):
        pred = fn(z, m1, m2, mom.h2[1], hm)
        half = Z95 * per.std(ddof=1) / np.sqrt(per.size)
        assert abs(pred - per.mean()) <= half + 0.01 * pred, (variant, pred, per.mean(), half)
        if variant == "plain":
            without = fn(z, 0.0, m2, mom.h2[1], hm)
            assert abs(without - per.mean()) > half + 0.05 * without  # the shift is resolved


@pytest.mark.slow
def test_tail_estimate_in_its_regime(signed_deep):
    net, res, preds = signed_deep
    for layer in range(2, 5):
        for cls in ("active", "inactive"):
            m, _ = _measured(res, layer, cls, net.T)
            count = res.batch.z * res.batch.size if cls == "active" else (
                (net.T - res.batch.z) * res.batch.size)
            mx = (np.abs(res.active_error[:, layer]).max() if cls == "active"
                  else res.inactive_max[:, layer].max())
            est = tail_max_estimate(m, net.d, count)
            # dense noise (>= 30% of noise-only neurons on) from layer 3 on at beta = -0.05,
            # from layer 2 on at beta = 0
            assert preds[layer][cls].tail_regime == (layer >= 3 or net.config.bias == 0.0)
            if preds[layer][cls].tail_regime:
                assert 0.5 <= mx / est <= 2.0, (layer, cls, mx, est)
