"""The rotation family, its task metrics, and circuits with their own biases via an on-indicator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel import build_network, forward, make_batch, make_circuits, run_small, sample_batch
from kernel.circuits import (
    rotation_bias,
    rotation_inputs,
    rotation_mean_weight,
    rotation_task,
    with_on_indicator,
)
from kernel.constructions import CONSTRUCTIONS
from kernel.measure import layer_stats, run, task_stats
from kernel.network import user_network

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


def _rotation_block(w: np.ndarray) -> np.ndarray:
    """R_t read off the weights: the lower-right 2 x 2 block."""
    return w[..., -2:, -2:] - rotation_mean_weight(w.shape[-1], 0.0)[-2:, -2:]


@given(st.sampled_from([3, 4]), st.sampled_from([0.25, 1.0, 2.0]), st.integers(0, 2**16))
def test_active_rotation_circuits_rotate_x_and_keep_the_indicator_on(d, b, seed):
    T, L = 12, 5
    c = make_circuits("rotation", T, L, d, rot_bias=b, seed=seed)
    # recurrent: one w_t for every layer; bias the family's on every layer
    np.testing.assert_array_equal(c.weights, np.broadcast_to(c.weights[0], c.weights.shape))
    np.testing.assert_array_equal(c.bias, np.broadcast_to(rotation_bias(d, b), (L, d)))
    R = _rotation_block(c.weights[0])
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(2), R.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    theta = np.random.default_rng(seed).uniform(0, 2 * np.pi, (1, T))
    x0 = rotation_inputs(d, theta)
    _, a = run_small(c, np.arange(T)[None, :], x0)
    q = rotation_task(a[0])  # (L+1, T, k)
    np.testing.assert_allclose(q["on"], 1.0, atol=1e-12)
    x = np.stack([np.cos(theta[0]), np.sin(theta[0])], -1)
    for layer in range(L + 1):
        np.testing.assert_allclose(q["x"][layer], x, atol=1e-12)
        x = np.einsum("tij,tj->ti", R, x)


@given(st.sampled_from([3, 4]), st.sampled_from([0.25, 1.0, 2.0]), st.integers(0, 2**16))
def test_inactive_rotation_circuits_ignore_small_noise(d, b, seed):
    """A2: a perturbation smaller than the bias margin over the weight norm stays at zero."""
    c = make_circuits("rotation", 20, 1, d, rot_bias=b, seed=seed)
    rng = np.random.default_rng(seed)
    w = c.weights[0]
    margin = float(-c.bias[0].max())
    gain = float(np.linalg.norm(w, ord=2, axis=(1, 2)).max())
    delta = rng.standard_normal((20, d))
    delta *= 0.99 * margin / gain / np.linalg.norm(delta, axis=1, keepdims=True)
    np.testing.assert_array_equal(np.maximum(np.einsum("tij,tj->ti", w, delta) + c.bias[0], 0), 0)


def test_rotation_batches_draw_an_input_angle_per_sample():
    net = build_network(D=400, d=4, S=5, T=100, L=2, family="rotation")
    batch = sample_batch(net, 50, 3, seed=1)
    np.testing.assert_array_equal(batch.inputs[..., :2], np.broadcast_to([1.5, 0.5], (50, 3, 2)))
    x = batch.inputs[..., 2:] - 1.0
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-12)
    angles = np.arctan2(x[..., 1], x[..., 0])
    assert np.unique(np.round(angles, 9)).size == angles.size  # fresh per sample and circuit
    again = sample_batch(net, 50, 3, seed=1)
    np.testing.assert_array_equal(again.inputs, batch.inputs)


@pytest.mark.parametrize("construction", list(CONSTRUCTIONS))
def test_task_metrics_equal_a_direct_computation(construction):
    """T <= the task read-out subset, so the inactive metrics cover every inactive circuit; set
    them against the full read-outs of every circuit computed directly."""
    net = build_network(D=4 * 40, d=4, S=4, T=30, L=3, family="rotation",
                        construction=construction, seed=2)
    batch = sample_batch(net, 30, 3, seed=4)
    res = forward(net, batch, engine="dense", readout="all")
    task = task_stats(net, res)
    assert task is not None
    for layer in range(net.L + 1):
        for q in ("on", "x"):
            truth = rotation_task(res.a[:, layer])[q]
            est = rotation_task(res.active_readout[:, layer])[q]
            np.testing.assert_allclose(task[layer]["active"][q].mse,
                                       ((truth - est) ** 2).sum(-1).mean(), rtol=1e-12)
            vals = rotation_task(res.readout[:, layer])[q]
            sq = (vals**2).sum(-1)  # (B, T)
            inactive = np.ones(sq.shape, bool)
            inactive[np.arange(30)[:, None], batch.active] = False
            np.testing.assert_allclose(task[layer]["inactive"][q].mse,
                                       (sq * inactive).sum(1).mean() / (net.T - 3), rtol=1e-12)
    assert task[0]["active"]["x"].mse == 0.0 and task[0]["inactive"]["on"].mse == 0.0


def test_run_reports_task_metrics_for_rotation_only():
    out = run(D=400, d=4, S=5, T=100, L=2, z=2, batch=40, family="rotation").to_dict()
    assert set(out["layers"][1]["task"]["active"]) == {"on", "x"}
    plain = run(D=400, d=4, S=5, T=100, L=2, z=2, batch=40, family="signed")
    assert all(s.task is None for s in plain.layers)
    assert "task" not in plain.to_dict()["layers"][1]


def test_a_single_active_circuit_reads_its_task_exactly_at_layer_one():
    net = build_network(D=400, d=4, S=5, T=100, L=2, family="rotation", construction="ris-capped")
    res = forward(net, sample_batch(net, 20, 1, seed=3), engine="dense")
    stats = layer_stats(net, res)
    assert stats[1].task is not None
    assert stats[1].task["active"]["x"].mse < 1e-24 and stats[1].task["active"]["on"].mse < 1e-24


# ----------------------------------------------------------------------------- on-indicator


def _own_bias_forward(w, b, x0):
    """a^l = ReLU(w^l a^{l-1} + b_t^l) per circuit, w (T, L, d, d), b (T, L, d), x0 (T, d)."""
    T, L, d, _ = w.shape
    out = [x0]
    for layer in range(L):
        out.append(np.maximum(np.einsum("tij,tj->ti", w[:, layer], out[-1]) + b[:, layer], 0.0))
    return np.stack(out, 1)  # (T, L+1, d)


@st.composite
def biased_circuits(draw):
    T, L, d = draw(st.integers(2, 12)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    w = rng.standard_normal((T, L, d, d)) / np.sqrt(d)
    b = rng.standard_normal((T, L, d)) * draw(st.sampled_from([0.1, 0.5, 2.0]))
    x = np.abs(rng.standard_normal((T, d)))
    return w, b, x, draw(st.sampled_from([0.1, 1.0, 3.0]))


@given(biased_circuits())
def test_on_indicator_circuits_compute_the_same_function_and_stay_off(case):
    w, b, x, margin = case
    T, L, d, _ = w.shape
    c = with_on_indicator(w, b, x, margin=margin)
    assert c.d == d + 1 and np.all(c.bias < 0)  # A2: shared negative bias; A3: inputs >= 0
    _, a = run_small(c, np.arange(T)[None, :], c.inputs[None])
    want = _own_bias_forward(w, b, x)
    np.testing.assert_allclose(a[0, :, :, 0], 1.0, atol=1e-12)  # the indicator stays on
    np.testing.assert_allclose(a[0, :, :, 1:].transpose(1, 0, 2), want, atol=1e-10)
    _, a_off = run_small(c, np.arange(T)[None, :], np.zeros((1, T, d + 1)))
    np.testing.assert_array_equal(a_off, 0.0)  # inactive: zero at every layer


@pytest.mark.parametrize("construction", list(CONSTRUCTIONS))
def test_on_indicator_circuits_run_through_every_construction(construction):
    """Disjoint patterns (T S <= n: no shared neuron, c = 0, kappa = 0): every construction
    reduces to the exact small circuits, so active read-outs equal the own-bias forward pass
    and inactive circuits read 0."""
    rng = np.random.default_rng(7)
    T, L, d, S = 5, 3, 3, 3
    w = rng.standard_normal((T, L, d, d)) / np.sqrt(d)
    b = rng.standard_normal((T, L, d)) * 0.5
    x = np.abs(rng.standard_normal((T, d)))
    c = with_on_indicator(w, b, x)
    net = user_network(w_user := c.weights.transpose(1, 0, 2, 3), c.bias, c.inputs,
                       D=(d + 1) * T * S, S=S, construction=construction)
    assert w_user.shape == (T, L, d + 1, d + 1)
    want = _own_bias_forward(w, b, x)  # (T, L+1, d)
    for engine in ("dense", "factorised", "sparse", "auto"):
        res = forward(net, make_batch(net, [[0, 3], [4, 1], [2, 0]]), engine=engine,
                      readout="all")
        for s, row in enumerate([[0, 3], [4, 1], [2, 0]]):
            for t in range(T):
                r = res.readout[s, :, t]
                if t in row:
                    np.testing.assert_allclose(r[:, 0], 1.0, atol=1e-12, err_msg=engine)
                    np.testing.assert_allclose(r[:, 1:], want[t], atol=1e-10, err_msg=engine)
                else:
                    np.testing.assert_allclose(r, 0.0, atol=1e-12, err_msg=engine)


# ------------------------------------------------------------------ the follow-up's formulas


def test_post_formula_holds_at_layers_one_and_two_of_the_capped_main_network():
    """The regime bounds.rotation states for the post's MSE_x formula, measured on the follow-up's
    main network (D = 1000, T = 557, S = 6), z = 2: layers 1-2 in regime and within tolerance;
    layer 3 outside its regime, and indeed far above it (the departure the regime excludes)."""
    from bounds.predict import judge
    from bounds.rotation import rotation_estimates

    res = run(D=1000, d=4, S=6, T=557, L=3, z=2, batch=1500, family="rotation",
              construction="ris-capped", engine="dense", seed=1)
    est = rotation_estimates(res.network, 2)
    for layer in (1, 2):
        post = next(e for e in est[layer]["active"] if e.model == "ris-post")
        meas = res.layers[layer].task["active"]["x"]
        verdict, ratio, _ = judge(post, meas.mse, (meas.mse_ci[1] - meas.mse_ci[0]) / 2)
        assert post.in_regime and verdict == "PASS", (layer, ratio)
    post3 = next(e for e in est[3]["active"] if e.model == "ris-post")
    assert not post3.in_regime
    assert res.layers[3].task["active"]["x"].mse > 1.5 * post3.mse


def test_cis_check_judges_the_follow_up_formulas_beside_ours():
    from bounds.predict import VERDICTS
    from cis.compare import compare

    out, _ = compare(dict(D=240, d=4, S=4, T=60, L=3, z=2, batch=200, family="rotation",
                          construction="ris-capped", engine="dense"), samples=1000)
    lines = out["layers"][1]["task"]["active"]["x_estimates"]
    assert {ln["model"] for ln in lines} == {"ris-post", "ris-code", "ours-layer1", "cavity-ris"}
    assert all(ln["verdict"] in VERDICTS for ln in lines)
    assert out["layers"][1]["active"]["bound"]["verdict"] == "PASS"  # rigorous, batch's max h
    # our cis2 models beyond layer 1 do not describe this construction; the recursion of the
    # follow-up's constructions does, for the raw error and for every task quantity
    ests = out["layers"][2]["active"]["estimates"]
    assert all(e["verdict"] == "OUT-OF-REGIME" for e in ests if e["model"] != "cavity-ris")
    assert [e["verdict"] != "OUT-OF-REGIME" for e in ests if e["model"] == "cavity-ris"] == [True]
    for layer in (1, 2, 3):
        for cls in ("active", "inactive"):
            for q in ("x", "on"):
                got = [ln for ln in out["layers"][layer]["task"][cls][f"{q}_estimates"]
                       if ln["model"] == "cavity-ris"]
                assert len(got) == 1 and got[0]["verdict"] != "OUT-OF-REGIME", (layer, cls, q)
    assert 0 < out["layers"][3]["frac_on_predicted"] < 1


@pytest.mark.parametrize("construction, d, z", [("ris-capped", 4, 3), ("ris-uncapped", 4, 3),
                                                ("ris-capped", 3, 2)])
def test_our_layer1_task_estimate_holds(construction, d, z):
    """bounds.rotation.task_layer1 against the measured layer-1 task metrics, plain and corrected
    read-outs, d = 4 and 3 (layer 1 needs no W, so the dense engine is cheap at D ~ 1000)."""
    from bounds.predict import judge
    from bounds.rotation import rotation_estimates

    res = run(D=1000 if d == 4 else 999, d=d, S=6, T=557 if d == 4 else 500, L=1, z=z,
              batch=8000, family="rotation", construction=construction, engine="dense", seed=3)
    est = rotation_estimates(res.network, z)[1]
    for cls in ("active", "inactive"):
        ours = next(e for e in est[cls] if e.model == "ours-layer1")
        meas = res.layers[1].task[cls]["x"]
        verdict, ratio, _ = judge(ours, meas.mse, (meas.mse_ci[1] - meas.mse_ci[0]) / 2)
        assert ours.in_regime and verdict == "PASS", (cls, ratio)
        assert abs(ratio - 1) < 0.1, (cls, ratio)
