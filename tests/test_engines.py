"""docs/construction.md (the large network): the three engines agree with each other and with
explicit matrices."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel import build_network, forward, make_batch, sample_batch, user_network
from tests.reference import forward_explicit
from tests.test_network import small_networks

ENGINES = ["dense", "factorised", "sparse"]


@pytest.mark.nojit
@given(params=small_networks, bias=st.sampled_from([0.0, -0.03]), z=st.integers(1, 4),
       batch_seed=st.integers(0, 1000))
def test_engines_agree_with_the_explicit_oracle(params, bias, z, batch_seed):
    net = build_network(**params, bias=bias)
    batch = sample_batch(net, 3, min(z, net.T), seed=batch_seed)
    ref = forward_explicit(net, batch.active, batch.inputs)
    for engine in ENGINES:
        res = forward(net, batch, engine=engine, readout="all")
        np.testing.assert_allclose(res.readout, ref, atol=1e-12, err_msg=engine)
        act = np.take_along_axis(ref, batch.active[:, None, :, None], axis=2)
        np.testing.assert_allclose(res.active_readout, act, atol=1e-12, err_msg=engine)
        # the in-kernel statistics agree with statistics of the full read-outs
        inactive = np.ones((3, net.T), dtype=bool)
        inactive[np.arange(3)[:, None], batch.active] = False
        sq = (ref**2).sum(-1) * inactive[:, None, :]
        np.testing.assert_allclose(res.inactive_sq, sq.sum(-1), atol=1e-12)
        np.testing.assert_allclose(
            res.inactive_max, (np.abs(ref) * inactive[:, None, :, None]).max(axis=(2, 3)),
            atol=1e-12,
        )
        thr2 = res.thresholds[:, None] ** 2
        np.testing.assert_array_equal(res.inactive_false, (sq > thr2[None]).sum(-1))


@pytest.mark.parametrize("variant", ["plain", "corrected", "random"])
def test_engines_agree_on_a_mid_size_network(variant):
    net = build_network(D=2000, S=5, T=600, L=4, variant=variant, bias=-0.02, seed=7)
    batch = sample_batch(net, 16, 3, seed=1)
    ids = np.arange(0, 600, 7)
    res = {e: forward(net, batch, engine=e, readout=ids) for e in ENGINES}
    for e in ("factorised", "sparse"):
        np.testing.assert_allclose(res[e].readout, res["dense"].readout, atol=1e-12)
        np.testing.assert_allclose(res[e].inactive_sq, res["dense"].inactive_sq, rtol=1e-12)
        np.testing.assert_array_equal(res[e].inactive_false, res["dense"].inactive_false)
        np.testing.assert_array_equal(res[e].frac_on, res["dense"].frac_on)


@pytest.mark.nojit
@pytest.mark.parametrize("family", ["signed", "gaussian", "permutation"])
def test_single_active_circuit_is_exact_at_layer_one(family):
    # z = 1: A^1 = ReLU(E_t h_t + B), read back exactly since U_t E_t = I.
    net = build_network(D=1000, T=557, family=family, bias=-0.01 if family == "gaussian" else 0.0)
    res = forward(net, sample_batch(net, 50, 1, seed=2), engine="sparse")
    np.testing.assert_allclose(res.active_error[:, 1], 0.0, atol=1e-14)
    np.testing.assert_allclose(res.a[:, 1], res.active_readout[:, 1], atol=1e-14)


@pytest.mark.nojit
def test_user_circuits_and_explicit_batch():
    rng = np.random.default_rng(0)
    T, L, d = 20, 2, 3
    w = rng.standard_normal((T, L, d, d)) / 3
    x = np.abs(rng.standard_normal((T, d)))
    net = user_network(w, -0.01, x, D=60, S=3)
    assert net.config.family == "user" and net.T == T
    np.testing.assert_array_equal(net.circuits.weights[1, 4], w[4, 1])
    batch = make_batch(net, [[0, 5], [3, 19]], inputs=np.ones((2, 2, d)))
    res = forward(net, batch, engine="factorised", readout=[0, 5])
    ref = forward_explicit(net, batch.active, batch.inputs)
    np.testing.assert_allclose(res.readout, ref[:, :, [0, 5]], atol=1e-12)


@pytest.mark.nojit
def test_inactive_ground_truth_is_zero_so_inactive_error_is_the_read_out():
    net = build_network(D=400, S=4, T=100, L=3)
    res = forward(net, sample_batch(net, 4, 2), readout="all")
    per = (res.readout**2).sum(-1)
    mask = np.ones((4, 100), bool)
    mask[np.arange(4)[:, None], res.batch.active] = False
    np.testing.assert_allclose(res.inactive_sq, (per * mask[:, None]).sum(-1), atol=1e-12)


# ----------------------------------------------------------------------------- auto and float32


@pytest.mark.nojit
@given(params=small_networks, bias=st.sampled_from([0.0, -0.03]), z=st.integers(1, 4),
       size=st.sampled_from([1, 2, 21, 40]), batch_seed=st.integers(0, 1000))
def test_auto_and_chunked_drivers_agree_with_the_explicit_oracle(params, bias, z, size,
                                                                 batch_seed):
    # sizes 1, 2: one sample per chunk; 21: one chunk of 21 columns; 40: a full chunk of 32
    # (float64) and a padded partial chunk of 8
    net = build_network(**params, bias=bias)
    batch = sample_batch(net, size, min(z, net.T), seed=batch_seed)
    ref = forward_explicit(net, batch.active, batch.inputs)
    inactive = np.ones((size, net.T), dtype=bool)
    inactive[np.arange(size)[:, None], batch.active] = False
    sq = ((ref**2).sum(-1) * inactive[:, None, :]).sum(-1)
    for engine in ("auto", "factorised", "sparse"):
        res = forward(net, batch, engine=engine, readout="all")
        np.testing.assert_allclose(res.readout, ref, atol=1e-12, err_msg=engine)
        act = np.take_along_axis(ref, batch.active[:, None, :, None], axis=2)
        np.testing.assert_allclose(res.active_readout, act, atol=1e-12, err_msg=engine)
        np.testing.assert_allclose(res.inactive_sq, sq, atol=1e-12, err_msg=engine)


@pytest.mark.parametrize("size", [1, 2, 16, 21])
@pytest.mark.parametrize("regime", [(-0.02, 600), (0.0, 1500)])
def test_auto_matches_dense_on_a_mid_size_network(size, regime):
    bias, T = regime
    net = build_network(D=2000, S=5, T=T, L=4, bias=bias, seed=3)
    batch = sample_batch(net, size, 3, seed=4)
    ids = np.arange(0, T, 11)
    dense = forward(net, batch, engine="dense", readout=ids)
    auto = forward(net, batch, engine="auto", readout=ids)
    np.testing.assert_allclose(auto.readout, dense.readout, atol=1e-12)
    np.testing.assert_allclose(auto.inactive_sq, dense.inactive_sq, rtol=1e-12)
    np.testing.assert_allclose(auto.inactive_max, dense.inactive_max, rtol=1e-12)
    np.testing.assert_array_equal(auto.inactive_false, dense.inactive_false)
    np.testing.assert_array_equal(auto.frac_on, dense.frac_on)


@pytest.mark.nojit
def test_auto_is_the_default_engine():
    net = build_network(D=400, S=4, T=100, L=3)
    assert forward(net, sample_batch(net, 2, 2)).engine == "auto"


@pytest.mark.parametrize("engine", ["auto", "factorised", "sparse"])
@pytest.mark.parametrize("size", [1, 12])
def test_float32_is_close_to_float64(engine, size):
    # float32 rounding (2^-24 ~ 6e-8 relative) over L = 4 layers of sums of S*d*T*S/n terms;
    # measured max abs difference ~1e-6 here (docs/performance.md), checked with 30x margin
    net = build_network(D=2000, S=5, T=1500, L=4, bias=0.0, seed=3)
    batch = sample_batch(net, size, 3, seed=4)
    r64 = forward(net, batch, engine=engine)
    r32 = forward(net, batch, engine=engine, dtype="float32")
    np.testing.assert_allclose(r32.active_readout, r64.active_readout, atol=3e-5)
    np.testing.assert_allclose(r32.inactive_sq, r64.inactive_sq, rtol=1e-4, atol=1e-9)
    assert np.abs(r32.frac_on - r64.frac_on).max() < 1e-3


@pytest.mark.nojit
def test_float32_is_refused_by_the_dense_oracle():
    from kernel import ConfigError

    net = build_network(D=400, S=4, T=100, L=3)
    with pytest.raises(ConfigError, match="dtype='float32' is not available for engine 'dense'"):
        forward(net, sample_batch(net, 2, 2), engine="dense", dtype="float32")
    with pytest.raises(ConfigError, match="dtype='float16' is not one of"):
        forward(net, sample_batch(net, 2, 2), dtype="float16")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", ["plain", "corrected"])
@pytest.mark.parametrize("d", [4, 6])
def test_single_sample_path_matches_the_oracle_and_the_chunked_path(variant, d, dtype):
    # batches of <= 2 samples run one sample at a time (d = 4 has its own 4-wide vector kernel);
    # every operation happens in the same order as in the chunked kernels: bit-identical
    net = build_network(D=d * 150, d=d, S=5, T=280, L=4, variant=variant, bias=-0.01, seed=3)
    big = sample_batch(net, 16, 3, seed=4)
    chunked = forward(net, big, engine="factorised", readout="all", dtype=dtype)
    dense = forward(net, make_batch(net, big.active[:2], big.inputs[:2]), engine="dense",
                    readout="all")
    for s in range(2):
        one = forward(net, make_batch(net, big.active[s : s + 1], big.inputs[s : s + 1]),
                      engine="factorised", readout="all", dtype=dtype)
        np.testing.assert_array_equal(one.readout[0], chunked.readout[s])
        np.testing.assert_array_equal(one.inactive_sq[0], chunked.inactive_sq[s])
        np.testing.assert_array_equal(one.inactive_max[0], chunked.inactive_max[s])
        atol = 1e-12 if dtype == "float64" else 3e-5
        np.testing.assert_allclose(one.readout[0], dense.readout[s], atol=atol)


# ----------------------------------------------------------------------------- bit-for-bit
# Per dtype, factorised, sparse and auto give bit-identical read-outs and statistics, and a
# sample's results do not depend on the batch it is in (size, position, chunk-mates, which
# pass auto picks for its chunk) nor on the number of threads.

NUMBA_ENGINES = ["factorised", "sparse", "auto"]
DTYPES = ["float64", "float32"]


def _fields(res) -> dict[str, np.ndarray]:
    return {
        "readout": res.readout,
        "active_readout": res.active_readout,
        "inactive_sq": res.inactive_sq,
        "inactive_max": res.inactive_max,
        "inactive_false": res.inactive_false,
        "frac_on": res.frac_on,
    }


def _assert_bitwise_equal(a: dict, b: dict, msg: str) -> None:
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{msg}: {key}")


def _rows(res, rows) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in _fields(res).items()}


@pytest.fixture(scope="module")
def mixed_density_net():
    # beta < 0 and T = 280 (T_max = 287): layer 1 sparse (z S d / D = 4%), later layers denser, so
    # auto runs both passes; d = 4 (4-wide vector single-sample pass) and d = 6 (generic)
    return {
        d: build_network(D=d * 150, d=d, S=5, T=280, L=4, bias=-0.02, seed=11) for d in (4, 6)
    }


@pytest.mark.parametrize("d", [4, 6])
@pytest.mark.parametrize("variant", ["plain", "corrected"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_engines_are_bit_identical(d, variant, dtype):
    net = build_network(D=d * 150, d=d, S=5, T=280, L=4, bias=-0.02, variant=variant, seed=11)
    for size in (1, 2, 5, 21, 40):
        batch = sample_batch(net, size, 3, seed=size)
        runs = {e: _fields(forward(net, batch, engine=e, readout="all", dtype=dtype))
                for e in NUMBA_ENGINES}
        for e in ("sparse", "auto"):
            _assert_bitwise_equal(runs[e], runs["factorised"], f"{e} vs factorised, B={size}")


@pytest.mark.parametrize("engine", NUMBA_ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [4, 6])
@pytest.mark.parametrize("widths", ["default", "uneven"])
def test_a_sample_alone_equals_the_same_sample_in_any_batch(monkeypatch, mixed_density_net,
                                                            engine, dtype, d, widths):
    from kernel import engines

    if widths == "uneven":  # chunks of one full vector and 4 columns taken one at a time
        monkeypatch.setitem(engines.CHUNK, "float64", 12)
        monkeypatch.setitem(engines.CHUNK, "float32", 20)
    net = mixed_density_net[d]
    pool = sample_batch(net, 70, 3, seed=2)
    rng = np.random.default_rng(0)
    probe = [0, 13, 41]
    # inputs that vary in scale (0.1x-10x): a false-activation threshold taken from the batch's
    # own active norms would move with the chunk-mates and change inactive_false
    scale = np.random.default_rng(1).uniform(0.1, 10.0, (70, 1, 1))

    def run(rows):
        b = make_batch(net, pool.active[rows], pool.inputs[rows] * scale[rows])
        return forward(net, b, engine=engine, readout=[1, 7, 250], dtype=dtype)

    alone = {s: _rows(run(np.array([s])), 0) for s in probe}
    # batch sizes through every path: single-sample pass (<= 2), one chunk as wide as the batch
    # (5; 8 in float32), several chunks (of 8 / 16 by default, 12 / 20 uneven) with padded last
    # chunks; the probe samples at different positions with different chunk-mates
    for size in (2, 5, 8, 21, 40, 70):
        for order in range(2):
            others = rng.permutation(np.setdiff1d(np.arange(70), probe))[: size - 1]
            for s in probe:
                rows = np.insert(others, rng.integers(0, size), s)
                pos = int(np.nonzero(rows == s)[0][0])
                _assert_bitwise_equal(_rows(run(rows), pos), alone[s],
                                      f"sample {s} at {pos} of {size} (draw {order})")


@pytest.mark.parametrize("below", [0.0, 0.01, 0.05, 0.2, np.inf])
def test_auto_threshold_changes_no_bit(monkeypatch, mixed_density_net, below):
    # the threshold decides which chunks run the sparse pass; the numbers must not move
    from kernel import engines

    net = mixed_density_net[4]
    batch = sample_batch(net, 29, 3, seed=8)
    ref = _fields(forward(net, batch, engine="factorised", readout="all"))
    monkeypatch.setattr(engines, "AUTO_SPARSE_BELOW", below)
    _assert_bitwise_equal(_fields(forward(net, batch, engine="auto", readout="all")), ref,
                          f"AUTO_SPARSE_BELOW={below}")


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no threads without the JIT")
@pytest.mark.parametrize("engine", NUMBA_ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_thread_equals_two_threads_really_used(mixed_density_net, engine, dtype):
    from kernel import engines

    assert numba.config.NUMBA_NUM_THREADS >= 2, "this test needs NUMBA_NUM_THREADS >= 2"
    net = mixed_density_net[4]
    batch = sample_batch(net, 75, 3, seed=9)
    thr = np.full(net.L, 0.01)
    ids = np.arange(0, net.T, 5)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = engines._run_numba(net, batch, thr, ids, mode=engine, dtype=dtype)
        numba.set_num_threads(2)
        two = engines._run_numba(net, batch, thr, ids, mode=engine, dtype=dtype)
        two_fw = forward(net, batch, engine=engine, readout=ids, dtype=dtype)
        numba.set_num_threads(1)
        one_fw = forward(net, batch, engine=engine, readout=ids, dtype=dtype)
    finally:
        numba.set_num_threads(old)
    assert one["worker_thread"].size == 1
    # the parallel driver ran, with its two workers on two different threads
    assert two["worker_thread"].size == 2
    assert len(set(two["worker_thread"].tolist())) == 2, two["worker_thread"]
    for key in ("out_active", "out_readout", "out_sq", "out_max", "out_false", "out_on"):
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    _assert_bitwise_equal(_fields(two_fw), _fields(one_fw), "forward, 2 vs 1 threads")


@pytest.mark.nojit
def test_the_on_disk_cache_can_be_turned_off(tmp_path):
    # CIS_NUMBA_CACHE=0: compiling a kernel writes nothing into NUMBA_CACHE_DIR; by default it
    # writes the cache index and data there
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from kernel import _numba\n"
        "from kernel.patterns import inverse_index\n"
        "inverse_index(np.array([[[0, 1], [1, 2]]], dtype=np.int32), 3)\n"
        "print(_numba.JIT['cache'])\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = {}
    for flag in ("0", None):
        cache_dir = tmp_path / f"cache-{flag}"
        env = {k: v for k, v in os.environ.items() if k not in ("CIS_NUMBA_CACHE",
                                                                "NUMBA_DISABLE_JIT")}
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
        if flag is not None:
            env["CIS_NUMBA_CACHE"] = flag
        out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                             capture_output=True, text=True, check=True)
        files = [p.name for p in cache_dir.rglob("*") if p.is_file()]
        found[flag] = (out.stdout.strip(), files)
    assert found["0"] == ("False", [])
    assert found[None][0] == "True"
    assert any(name.endswith(".nbi") for name in found[None][1]), found[None][1]


@pytest.mark.parametrize("size", [1, 3])
def test_a_read_out_exactly_at_the_threshold_is_not_a_false_activation(size):
    # the single-sample d = 4 pass (size 1) and the chunked pass count |r|^2 > thr^2 strictly:
    # thr is set so that thr^2 equals one inactive circuit's |r|^2 bit for bit
    from kernel.engines import _readout_ids, _run_numba

    net = build_network(D=200, d=4, S=3, T=60, L=2, seed=7)
    batch = sample_batch(net, size, 2, seed=1)
    ids = _readout_ids(net, "all")
    thr = np.zeros(net.L)
    r = _run_numba(net, batch, thr, ids, mode="factorised")["out_readout"][0, 0]  # (T, d)
    sq = np.zeros(net.T)
    for i in range(net.d):  # as the kernels sum: components in index order, float64
        sq += r[:, i] * r[:, i]
    inactive = np.setdiff1d(np.arange(net.T), batch.active[0])
    tie = next(t for t in inactive if sq[t] > 0 and np.sqrt(sq[t]) ** 2 == sq[t])
    thr[0] = np.sqrt(sq[tie])
    got = _run_numba(net, batch, thr, np.zeros(0, dtype=np.int64), mode="factorised")
    assert got["out_false"][0, 0] == np.count_nonzero(sq[inactive] > sq[tie])
