"""The property suite under the Hypothesis profile of ``HYPOTHESIS_PROFILE``.

Each property of ``properties.suite.PROPERTIES`` runs as one ``@given`` test (``note`` value,
bound and gap; ``target`` the slack). ``cis verify`` runs the same registry.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kernel import build_network, forward, make_batch, sample_batch
from kernel.network import NetworkConfig
from properties import checks as C
from properties import strategies as cst
from properties.suite import PROPERTIES, check_example

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property(name):
    prop = PROPERTIES[name]

    @given(prop.strategy)
    def inner(ex):
        check_example(prop, ex).raise_if_failed()

    inner()


# Pinned hard cases.


@given(cst.scenarios(cst.network_configs(families=("permutation",), variants=("plain",),
                                         bias=cst.st.just(0.0))))
@example(cst.Scenario(NetworkConfig(D=4 * 250, d=4, S=6, T=557, L=2, family="permutation"),
                      z=4, batch=20, batch_seed=0))
@example(cst.Scenario(NetworkConfig(D=4 * 30, d=4, S=3, T=50, L=1, family="permutation"),
                      z=1, batch=5, batch_seed=0))  # z = 1 was skipped before
def test_worst_case_bound_is_tight_for_non_negative_circuits(sc):
    # b = 0 and h >= 0: no ReLU cuts, eps_t^1 = sum_{u active, u != t} (o_tu/S) h_u^1, so the
    # pair bound is an equality at every circuit, component and sample -- also for z = 1, where
    # the active circuit's bound and error are both 0: the sandwich cannot pass vacuously.
    from properties import sandwich

    net = sc.network()
    batch = sc.sample(net)
    C.layer1_worst_case_sandwich(net, batch).raise_if_failed()
    res = forward(net, batch, readout="all")
    truth = np.zeros((batch.size, net.T, net.d))
    truth[np.arange(batch.size)[:, None], batch.active] = res.a[:, 1]
    err = np.abs(res.readout[:, 1] - truth)
    bound = sandwich.layer1_overlap_bound(net, batch, res.h[:, 1])
    np.testing.assert_allclose(err, bound, rtol=1e-9, atol=1e-12)
    if batch.z == 1:  # the one active circuit shares with no other active one: exact read-out
        assert err[np.arange(batch.size)[:, None], batch.active].max() <= 1e-12


def test_overlap_check_fails_on_the_random_baseline():
    # the random variant has unbounded overlaps: the check must be able to fail
    net = build_network(D=4 * 30, S=5, T=150, L=1, variant="random", seed=0)
    r = C.pairwise_overlap_at_most_one(net)
    assert not r.passed and r.value >= 2


def test_statistical_prediction_against_a_long_run():
    # leading term alone is ~30% low at this size (cross term (z-1) S^2/n); the sum is within CI
    net = build_network(D=4 * 30, d=4, S=3, T=50, L=1, family="permutation", seed=3)
    batch = sample_batch(net, 4000, 3, seed=11)
    r = C.layer1_inactive_mse(net, batch).raise_if_failed()
    assert r.numbers["cross"] > 0.1 * r.numbers["lead"]
    assert abs(r.numbers["measured"] - r.numbers["lead"]) > 5 * r.numbers["se"]


@given(cst.scenarios(cst.network_configs(n=st.integers(4, 20))))
def test_sandwich_bound_agrees_with_the_reference(sc):
    from properties import sandwich
    from tests.reference import layer1_bound_vectorised

    net = sc.network()
    batch = sc.sample(net)
    h1 = np.einsum("bzij,bzj->bzi", net.circuits.weights[0][batch.active], batch.inputs)
    np.testing.assert_allclose(sandwich.layer1_overlap_bound(net, batch, h1),
                               layer1_bound_vectorised(net, batch.active, h1), rtol=1e-12,
                               atol=0)


def test_single_circuit_check_accepts_a_subset_and_explicit_batches():
    net = build_network(D=400, S=5, T=100, L=2, bias=-0.05)
    assert C.single_circuit_exact_at_layer_one(net, circuits=np.arange(0, 100, 9)).passed
    batch = make_batch(net, [[0, 1], [2, 3]])
    assert C.layer1_worst_case_sandwich(net, batch, "sparse").passed


@pytest.mark.parametrize(
    ("check", "args", "message"),
    [
        (C.input_scaling, {"c": 2.0, "bias": -0.1}, "zero bias"),
        (C.input_scaling, {"c": -1.0, "bias": 0.0}, "c > 0"),
        (C.layer1_max_sandwich, {"variant": "random"}, "overlaps <= 1"),
        (C.layer1_inactive_mse, {"family": "signed"}, "h_u\\^1 >= 0"),
        (C.disjoint_patterns_exact, {}, "no shared neuron"),
    ],
    ids=["scaling-needs-zero-bias", "scaling-needs-positive-c", "max-bound-needs-prime-step",
         "statistical-needs-non-negative-h", "disjoint-needs-disjoint"],
)
def test_checks_refuse_examples_outside_their_regime(check, args, message):
    c = args.pop("c", None)
    net = build_network(D=4 * 30, S=3, T=50, L=2, **args)
    batch = sample_batch(net, 3, 2)
    extra = () if c is None else (c,)
    with pytest.raises(ValueError, match=message):
        check(net, batch, *extra)
