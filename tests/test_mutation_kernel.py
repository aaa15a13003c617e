"""Tests added after a mutation-testing run over ``kernel/measure.py``, ``kernel/patterns.py`` and
``kernel/validate.py`` (docs/testing.md): each pins a statistic, a boundary or a pass-through
that a surviving mutant changed without any test failing.

Expected values come from hand computation, a documented definition recomputed here from the
raw arrays, or a brute-force scan, never from the function's own output.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from bounds import leading
from kernel import Batch, build_network, forward, patterns, sample_batch, validate
from kernel.measure import RunConfig, ci_half_width, layer_stats, run, task_readout_ids
from kernel.validate import ConfigError

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

TINY = dict(D=120, d=4, S=3, T=40, L=2, seed=1)

# ----------------------------------------------------------------------------- measure


def test_ci_half_width_of_fewer_than_two_samples_is_infinite():
    assert ci_half_width(np.array([0.3])) == float("inf")
    assert ci_half_width(np.zeros(0)) == float("inf")


@pytest.mark.parametrize("fraction", [1e-6, 0.1, 0.5])
def test_false_activation_rate_is_the_documented_fraction(fraction):
    # rate = mean over samples of (#inactive circuits with |read-out| > threshold) / (T - z),
    # recounted here from the full read-outs of every circuit
    net = build_network(**TINY)
    z = 3
    batch = sample_batch(net, 50, z, seed=2)
    res = forward(net, batch, readout="all", threshold_fraction=fraction)
    inactive = np.ones((50, net.T), dtype=bool)
    np.put_along_axis(inactive, batch.active, False, axis=1)
    norms = np.linalg.norm(res.readout, axis=-1)  # (B, L+1, T)
    stats = layer_stats(net, res)
    for layer in range(net.L + 1):
        over = (norms[:, layer] > res.thresholds[layer]) & inactive
        want = (over.sum(axis=1) / (net.T - z)).mean()
        assert stats[layer].false_activation_rate == pytest.approx(want, abs=1e-12)
        assert 0.0 <= stats[layer].false_activation_rate <= 1.0
    assert stats[1].false_activation_rate > 0.5 if fraction == 1e-6 else True


def test_all_active_has_no_false_activations():
    res = run(D=60, d=4, S=3, T=5, L=2, z=5, batch=20, seed=0)
    for s in res.layers:
        assert s.inactive is None and s.false_activation_rate == 0.0


def test_run_config_round_trips_through_its_flat_form():
    cfg = RunConfig.from_params(D=120, d=4, S=3, T=40, L=2, z=3, batch=7, engine="sparse",
                                threshold_fraction=0.25)
    flat = cfg.as_dict()
    assert (flat["z"], flat["batch"], flat["engine"], flat["threshold_fraction"]) == (
        3, 7, "sparse", 0.25)
    assert RunConfig.from_params(**flat) == cfg


def test_run_draws_its_batch_from_the_seed():
    a = run(**TINY, z=2, batch=30)
    b = run(**{**TINY, "seed": 2}, z=2, batch=30)
    assert not np.array_equal(a.forward.batch.active, b.forward.batch.active)


def test_run_reports_build_and_forward_seconds_within_the_wall_time():
    t0 = time.perf_counter()
    res = run(**TINY, z=2, batch=30)
    wall = time.perf_counter() - t0
    assert set(res.seconds) == {"build", "forward"}
    assert 0.0 <= res.seconds["build"] <= wall and 0.0 <= res.seconds["forward"] <= wall
    assert res.seconds["build"] + res.seconds["forward"] <= wall


def test_run_of_a_given_network_uses_it_and_its_configuration():
    net = build_network(**{**TINY, "seed": 7})
    res = run(network=net, z=2, batch=30)
    assert res.network is net and res.config.network == net.config
    with pytest.raises(ConfigError, match=r"parameter\(s\) \['D'\] cannot be combined"):
        run(network=net, D=240)


@pytest.mark.parametrize(("kw", "match"), [({"z": 0}, r"z=0 must be >= 1"),
                                           ({"z": 41}, r"z=41 must be <= 40"),
                                           ({"batch": 0}, r"batch=0 must be >= 1")])
def test_run_refuses_z_and_batch_out_of_range(kw, match):
    with pytest.raises(ConfigError, match=match):
        run(**TINY, **{"z": 2, "batch": 10, **kw})


def test_task_readout_ids_are_distinct_and_only_for_families_with_a_task():
    rot = build_network(D=400, d=4, S=4, T=60, L=2, family="rotation", seed=0)
    ids = task_readout_ids(rot)
    assert ids.size == 32 and np.unique(ids).size == 32 and ids.max() < 60
    assert task_readout_ids(build_network(**TINY)).size == 0  # signed: no task


def test_json_task_metrics_are_the_layer_statistics():
    res = run(D=400, d=4, S=4, T=60, L=2, family="rotation", z=2, batch=40, seed=0)
    out = res.to_dict()
    for s, lay in zip(res.layers, out["layers"]):
        assert s.task is not None
        for kind, by_q in s.task.items():
            for q, c in by_q.items():
                assert lay["task"][kind][q] == {"mse": c.mse, "mse_ci": list(c.mse_ci),
                                                "max_abs": c.max_abs}


# ----------------------------------------------------------------------------- leading order


def test_leading_order_terms_by_hand():
    # z (d/D) <|h|^2> = 2 * 0.004 * 1.5
    assert leading.overlap_term_inactive(2, 1000, 4, 1.5) == pytest.approx(0.012)
    h2, wa2 = [0.0, 1.5, 2.0, 0.5], [0.0, 3.0, 0.25, 4.0]
    # no propagation term at layer 1 (nothing below it to propagate)
    assert leading.active_propagation(1, 2, 100, 1000, 4, h2, wa2) == 0.0
    # layer 2: the whole layer-1 error (z-1)(d/D) h2[1] plus z T (d/D)^2 wa2[2]
    want = 1 * 0.004 * 1.5 + 2 * 100 * 0.004**2 * 0.25
    assert leading.active_propagation(2, 2, 100, 1000, 4, h2, wa2) == pytest.approx(want)


# ----------------------------------------------------------------------------- patterns


def test_packing_bound_is_an_integer_floor():
    # floor(n (n-1) / (S (S-1))): 8*7/6 = 9.33 -> 9, 11*10/6 = 18.33 -> 18, Fano plane n = 7 -> 7
    assert [patterns.packing_bound(n, 3) for n in (7, 8, 11)] == [7, 9, 18]
    assert all(type(patterns.packing_bound(n, 3)) is int for n in (7, 8, 11))


def test_pair_overlap_mean_of_two_circuits_equals_the_realised_mean_at_uniform_load():
    # n = 2, S = 2, T = 2: both circuits use both offsets, so they share 2 (every load is 2)
    design = np.array([[0, 1], [0, 1]])
    assert patterns.realised_pair_overlap_mean(design, 2) == 2.0
    assert patterns.pair_overlap_mean(2, 2, 2) == pytest.approx(2.0)
    assert patterns.pair_overlap_mean(10, 3, 1) == 0.0  # one circuit: no pairs


@pytest.mark.parametrize("S", [2, 3, 5])
def test_smallest_block_equals_a_linear_scan(S):
    caps = {n: patterns.capacity(n, S) for n in range(S, 80)}
    for T in range(1, caps[79] + 1):
        want = min(n for n, c in caps.items() if c >= T)
        assert patterns.smallest_block(T, S) == want, (T, S)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: patterns.smallest_block(0, 3), r"^T=0 must be >= 1$"),
    (lambda: patterns.smallest_block(5, 1), r"^S=1 must be >= 2$"),
    (lambda: patterns.random_patterns(10, 3, 0, np.random.default_rng(0)), r"^T=0 must be >= 1$"),
])
def test_pattern_helpers_name_the_bad_parameter(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# ----------------------------------------------------------------------------- validate


def test_layer_gains_by_hand():
    # growth = log(d * max|w| * max(max_load, 1) * max(spread, 1)), d = 2
    w = np.zeros((2, 3, 2, 2))
    w[0, 1, 0, 1], w[1, 2, 1, 0] = -0.5, 3.0
    got = validate.layer_gains(w, 4, 2.5)
    want = [[0.5, np.log(2 * 0.5 * 4 * 2.5)], [3.0, np.log(2 * 3 * 4 * 2.5)]]
    np.testing.assert_allclose(got, want)
    # max_load and spread below 1 count as 1; entries below 1 give a negative log growth
    small = np.full((1, 1, 2, 2), 0.1)
    np.testing.assert_allclose(validate.layer_gains(small, 0, 0.5), [[0.1, np.log(0.2)]])
    # zero weights: growth is the log of the floor 1e-300, not -inf
    np.testing.assert_allclose(validate.layer_gains(np.zeros((1, 1, 2, 2)), 1, 1.0),
                               [[0.0, np.log(1e-300)]])


def test_no_overflow_keeps_e2_of_headroom_and_starts_from_the_largest_input():
    log_max = float(np.log(np.finfo(np.float64).max))
    one = np.ones((1, 1, 2))

    def gains(growth):
        return np.array([[1.0, growth]])

    validate.no_overflow(gains(log_max - 2.5), one, "float64")  # inside the e^2 headroom
    with pytest.raises(ConfigError, match="could overflow float64"):
        validate.no_overflow(gains(log_max - 1.5), one, "float64")
    # the bound starts from max|inputs| = 1e-3, i.e. log 1e-3 ~ -6.9 below the growth
    validate.no_overflow(gains(log_max - 2.5 - np.log(1e-3)), 1e-3 * one, "float64")
    # all-zero inputs: the start is the floor log(1e-300), not log 1
    validate.no_overflow(gains(log_max), 0 * one, "float64")


def test_forward_refuses_an_object_that_is_not_a_batch():
    net = build_network(**TINY)
    with pytest.raises(ConfigError, match=r"^batch=SimpleNamespace must be a Batch"):
        forward(net, SimpleNamespace(active=np.zeros((1, 2), dtype=np.int64)))


@pytest.mark.parametrize(("active", "inputs", "match"), [
    ([[0, 40]], None, r"indices in \[0, 40\], allowed \[0, T-1=39\]"),  # T itself: one past the end
    ([[0, 1]], -np.ones((1, 2, 4)), r"^batch.inputs has negative entries"),
])
def test_forward_refuses_a_hand_built_batch_outside_the_network(active, inputs, match):
    net = build_network(**TINY)  # T = 40, d = 4
    act = np.asarray(active, dtype=np.int64)
    x = np.ones((*act.shape, 4)) if inputs is None else inputs
    with pytest.raises(ConfigError, match=match):
        forward(net, Batch(act, x))


def test_array_refuses_text_for_a_float_array():
    with pytest.raises(ConfigError, match=r"^w has dtype <U1, expected real numbers$"):
        validate.array("w", np.array(["a", "b"]), (2,))


def test_run_honours_a_given_run_config_and_engine():
    cfg = RunConfig.from_params(**TINY, z=3, batch=7, engine="dense")
    res = run(cfg)
    assert res.config == cfg and res.forward.batch.active.shape == (7, 3)
    assert res.forward.engine == "dense"


def test_task_readout_ids_are_a_fixed_subset():
    rot = build_network(D=400, d=4, S=4, T=60, L=2, family="rotation", seed=0)
    np.testing.assert_array_equal(task_readout_ids(rot, 5), task_readout_ids(rot, 5))


@pytest.mark.parametrize("value", [np.array([1, 2]), np.array([1.0, 2.0], dtype=np.float32)])
def test_array_converts_integers_and_float32_to_float64(value):
    got = validate.array("w", value, (2,))
    assert got.dtype == np.float64 and got.tolist() == [1.0, 2.0]


def test_array_shape_message_marks_free_axes_with_a_star():
    with pytest.raises(ConfigError, match=r"^w has shape \(3,\), expected \(\*, 2\)$"):
        validate.array("w", np.ones(3), (None, 2))
    with pytest.raises(ConfigError, match="non-finite"):
        validate.array("w", [np.inf], (1,), dtype=np.float32)
