"""docs/error-terms.md: the measured decomposition eps = overlap + propagation + relu: the NumPy
oracle against explicit matrices, the compiled pass against the NumPy oracle, and both against the
engines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel import NetworkConfig, build_network, forward, make_batch, sample_batch
from kernel._jit_decompose import Terms, Truth, _decompose_batch, _decompose_range
from kernel.decompose import TERMS, decompose
from kernel.engines import net_arrays
from properties import strategies as cst
from tests.reference import decompose_explicit, decompose_numpy
from tests.test_network import small_networks

#: relative tolerance of the compiled terms against the NumPy oracle
RTOL = 1e-12


@pytest.mark.nojit
@settings(max_examples=settings.default.max_examples)
@given(params=small_networks, bias=st.sampled_from([0.0, -0.03]), z=st.integers(1, 4),
       batch_seed=st.integers(0, 1000), chunk=st.integers(1, 3))
def test_numpy_oracle_matches_the_explicit_matrices(params, bias, z, batch_seed, chunk):
    net = build_network(**{**params, "bias": bias})
    batch = sample_batch(net, 3, min(z, net.T), seed=batch_seed)
    ref = decompose_explicit(net, batch.active, batch.inputs)
    dec = decompose_numpy(net, batch, chunk=chunk)
    act = batch.active[:, None, :, None]
    inactive = np.ones((3, net.T), dtype=bool)
    inactive[np.arange(3)[:, None], batch.active] = False
    np.testing.assert_allclose(dec.active_total, np.take_along_axis(ref["total"], act, axis=2),
                               atol=1e-12)
    np.testing.assert_allclose(dec.inactive_sq,
                               ((ref["total"] ** 2).sum(-1) * inactive[:, None]).sum(-1),
                               atol=1e-12)
    for k in TERMS:
        np.testing.assert_allclose(dec.active_terms[k], np.take_along_axis(ref[k], act, axis=2),
                                   atol=1e-12, err_msg=k)
        np.testing.assert_allclose(dec.inactive_terms_sq[k],
                                   ((ref[k] ** 2).sum(-1) * inactive[:, None]).sum(-1),
                                   atol=1e-12, err_msg=k)
    # layer 1 has no propagation term (P^1 = A^0 = X^1)
    assert np.all(dec.active_terms["propagation"][:, 1] == 0.0)


def _assert_close(got: np.ndarray, want: np.ndarray, scale: float, what: str) -> None:
    """|got - want| <= RTOL (|want| + scale): relative, with ``scale`` the size of the largest
    quantity of the same kind (a term that cancels to ~0 is compared at the size of eps)."""
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def assert_decompositions_equal(got, want) -> None:
    # floored at 1e-3 of the signal's size (so atol ~1e-15 |a|, still above the ~1e-16 |a|
    # rounding of the signal): when every error of a sample is ~0 (z = 1, few circuits) the two
    # orders of summation differ by rounding of the signal, e.g. 3e-18 against 0
    vec = max(np.abs(want.active_total).max(), np.abs(want.inactive_sum).max(),
              *(np.abs(v).max() for v in want.active_terms.values()),
              1e-3 * float(np.abs(want.a).max(initial=0.0)), 1e-300)
    sq = max(want.inactive_sq.max(), *(v.max() for v in want.inactive_terms_sq.values()), 1e-300)
    np.testing.assert_array_equal(got.h, want.h)
    np.testing.assert_array_equal(got.a, want.a)
    assert got.n_inactive == want.n_inactive
    _assert_close(got.active_total, want.active_total, vec, "active_total")
    _assert_close(got.inactive_sum, want.inactive_sum, vec, "inactive_sum")
    _assert_close(got.inactive_max, want.inactive_max, vec, "inactive_max")
    _assert_close(got.inactive_sq, want.inactive_sq, sq, "inactive_sq")
    np.testing.assert_array_equal(got.frac_on, want.frac_on)
    for k in TERMS:
        _assert_close(got.active_terms[k], want.active_terms[k], vec, f"active {k}")
        _assert_close(got.inactive_terms_sq[k], want.inactive_terms_sq[k], sq, f"inactive {k}")


# every family, variant and width d (d = 4 runs 4-wide vector steps, 2 and 6 the generic loops);
# the library's own strategy (properties.strategies), random designs up to T = 3n
compiled_cases = cst.network_configs(
    families=("signed", "gaussian", "permutation"),
    d=st.sampled_from([2, 4, 6]),
    n=st.integers(8, 40),
    S=st.integers(2, 6),
    L=st.integers(1, 4),
    bias=st.sampled_from([0.0, -0.02, -0.1]),
    random_T_per_n=3.0,
).map(NetworkConfig.as_dict)


@pytest.mark.nojit
@settings(max_examples=2 * settings.default.max_examples)
@given(params=compiled_cases, z=st.integers(1, 5), size=st.integers(1, 9),
       batch_seed=st.integers(0, 1000))
def test_compiled_terms_equal_the_numpy_oracle(params, z, size, batch_seed):
    net = build_network(**params)
    batch = sample_batch(net, size, min(z, net.T), seed=batch_seed)
    dec = decompose(net, batch)
    assert_decompositions_equal(dec, decompose_numpy(net, batch))
    # layer 1 has no propagation term (P^1 = X^1), exactly
    assert np.all(dec.active_terms["propagation"][:, 1] == 0.0)
    assert np.all(dec.inactive_terms_sq["propagation"][:, 1] == 0.0)


@pytest.mark.parametrize(("family", "d"), [("signed", 4), ("gaussian", 4), ("permutation", 6)])
@pytest.mark.parametrize("variant", ["plain", "corrected"])
def test_compiled_terms_equal_the_oracle_on_a_mid_size_network(family, d, variant):
    net = build_network(D=300 * d, d=d, S=5, T=600, L=4, family=family, variant=variant,
                        bias=-0.02, seed=7)
    batch = sample_batch(net, 12, 3, seed=1)
    assert_decompositions_equal(decompose(net, batch), decompose_numpy(net, batch))


def test_decomposition_agrees_with_the_numba_engine_on_a_mid_size_network():
    for variant in ("plain", "corrected"):
        net = build_network(D=2000, S=5, T=600, L=4, variant=variant, bias=-0.02, seed=7)
        batch = sample_batch(net, 24, 3, seed=1)
        res = forward(net, batch, engine="factorised")
        dec = decompose(net, batch)
        np.testing.assert_allclose(dec.active_total, res.active_error, atol=1e-12)
        np.testing.assert_allclose(dec.inactive_sq, res.inactive_sq, rtol=1e-10)
        np.testing.assert_allclose(dec.inactive_max, res.inactive_max, atol=1e-12)
        np.testing.assert_allclose(dec.frac_on, res.frac_on, atol=1e-12)


def test_a_sample_does_not_depend_on_its_batch_or_the_number_of_workers():
    net = build_network(D=800, S=5, T=300, L=3, bias=-0.02, seed=3)
    batch = sample_batch(net, 7, 3, seed=5)
    whole = decompose(net, batch)
    alone = decompose(net, make_batch(net, batch.active[4:5]))
    for name in ("active_total", "inactive_sq", "inactive_max", "inactive_sum", "frac_on"):
        np.testing.assert_array_equal(getattr(alone, name)[0], getattr(whole, name)[4])
    for k in TERMS:
        np.testing.assert_array_equal(alone.active_terms[k][0], whole.active_terms[k][4])
        np.testing.assert_array_equal(alone.inactive_terms_sq[k][0], whole.inactive_terms_sq[k][4])
    # the serial twin and the parallel driver with 1, 2, 3 workers write the same numbers
    runs = []
    rec = net_arrays(net, "float64")
    truth = Truth(np.ascontiguousarray(batch.active, dtype=np.int64), whole.h, whole.a)
    for n_workers in (0, 1, 2, 3):
        out = _kernel_outputs(net, batch)
        if n_workers == 0:
            _decompose_range(0, batch.size, rec, truth, out)
        else:
            _decompose_batch(rec, truth, out, n_workers)
        runs.append(out)
    for out in runs[1:]:
        for x, y in zip(out, runs[0], strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(runs[0][0], whole.active_total)


def _kernel_outputs(net, batch):
    B, L, z, d = batch.size, net.L, batch.z, net.d
    return Terms(*([np.zeros((B, L + 1, z, d)) for _ in range(4)]
                   + [np.zeros((B, L + 1)) for _ in range(5)]
                   + [np.zeros((B, L + 1, d)), np.zeros((B, L + 1))]))
