"""Datasets: columns hold what the manifest says, agree with independent oracles, reproduce."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kernel import ConfigError, build_network, forward, make_batch
from kernel.io import load_network, save_network
from kernel.io.dataset import SHARDS, read_dataset, write_dataset
from kernel.io.export import readout_matrix
from tests.reference import forward_explicit
from tests.test_io import cis, run_cli

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


@pytest.fixture(scope="module")
def net():
    return build_network(D=120, d=4, S=3, T=30, L=3, variant="corrected", bias=-0.02, seed=4)


def read_parquet(out) -> tuple[pd.DataFrame, dict]:
    """The dataset read back with pandas/pyarrow alone, and its manifest."""
    return pd.read_parquet(out / SHARDS), json.loads((out / "manifest.json").read_text())


def column(df: pd.DataFrame, manifest: dict, name: str) -> np.ndarray:
    shape = manifest["columns"][name]["shape"]
    return np.stack(df[name].to_numpy()).reshape(len(df), *shape) if shape else df[name].to_numpy()


def small_truth(net, active: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Each active circuit run on its own, written out independently of kernel.run_small."""
    a = inputs.copy()
    out = []
    for layer in range(net.L):
        w = net.circuits.weights[layer][active]  # (B, z, d, d)
        a = np.maximum((w @ a[..., None])[..., 0] + net.circuits.bias[layer], 0.0)
        out.append(a)
    return np.stack(out, axis=1)  # (B, L, z, d)


def test_parquet_columns_match_oracles(net, tmp_path):
    out = tmp_path / "ds"
    manifest = write_dataset(net, out, samples=25, z=3, seed=2, shard_size=10, inactive=[0, 7],
                             activations=True)
    df, on_disk = read_parquet(out)
    assert on_disk == json.loads(json.dumps(manifest))
    assert list(df.columns) == list(manifest["columns"])
    assert len(df) == 25 and [s["rows"] for s in manifest["shards"]] == [10, 10, 5]
    np.testing.assert_array_equal(column(df, manifest, "sample"), np.arange(25))
    active = column(df, manifest, "active")
    inputs = column(df, manifest, "inputs")
    assert (np.sort(active, 1)[:, 1:] != np.sort(active, 1)[:, :-1]).all()
    np.testing.assert_array_equal(inputs, net.circuits.inputs[active])
    truth = small_truth(net, active, inputs)
    explicit = forward_explicit(net, active, inputs)  # (B, L+1, T, d), explicit E/U/W matrices
    rows = np.arange(25)[:, None]
    for layer in range(1, net.L + 1):
        np.testing.assert_allclose(column(df, manifest, f"a_l{layer}"), truth[:, layer - 1],
                                   rtol=0, atol=1e-12)
        readout = column(df, manifest, f"readout_l{layer}")
        np.testing.assert_allclose(readout, explicit[rows, layer, active], rtol=0, atol=1e-10)
        np.testing.assert_allclose(column(df, manifest, f"inactive_readout_l{layer}"),
                                   explicit[:, layer, [0, 7]], rtol=0, atol=1e-10)
        A = column(df, manifest, f"A_l{layer}")
        assert (A >= 0).all()
        from_A = (A @ readout_matrix(net, layer).T).reshape(25, net.T, net.d)
        np.testing.assert_allclose(from_A, explicit[:, layer], rtol=0, atol=1e-10)
    assert load_network(out / "network.safetensors").config == net.config


def test_npz_holds_the_same_data_as_parquet(net, tmp_path):
    kw = dict(samples=13, z=2, seed=5, shard_size=6, layers="1,3")
    write_dataset(net, tmp_path / "p", **kw)
    manifest = write_dataset(net, tmp_path / "n", fmt="npz", **kw)
    df, _ = read_parquet(tmp_path / "p")
    shards = [np.load(tmp_path / "n" / s["file"]) for s in manifest["shards"]]
    assert list(manifest["columns"]) == ["sample", "active", "inputs", "n_active", "active_mask",
                                         "x_index", "x_value", "a_l1", "readout_l1", "a_l3",
                                         "readout_l3"]
    for name in manifest["columns"]:
        from_npz = np.concatenate([s[name] for s in shards])
        np.testing.assert_array_equal(from_npz, column(df, manifest, name))


def test_same_seed_same_dataset_other_seed_other_dataset(net, tmp_path):
    kw = dict(samples=30, z=2, shard_size=8)
    write_dataset(net, tmp_path / "a", seed=11, **kw)
    write_dataset(net, tmp_path / "b", seed=11, **kw)
    write_dataset(net, tmp_path / "c", seed=12, **kw)
    a, m = read_parquet(tmp_path / "a")
    b, _ = read_parquet(tmp_path / "b")
    c, _ = read_parquet(tmp_path / "c")
    for name in m["columns"]:
        np.testing.assert_array_equal(column(a, m, name), column(b, m, name))
    assert not np.array_equal(column(a, m, "active"), column(c, m, "active"))


def test_readouts_agree_with_a_direct_forward(net, tmp_path):
    """Rows re-run through kernel.forward on their own give the stored read-outs bit for bit."""
    manifest = write_dataset(net, tmp_path / "d", samples=9, z=2, seed=1, engine="factorised")
    df, _ = read_parquet(tmp_path / "d")
    batch = make_batch(net, column(df, manifest, "active"), column(df, manifest, "inputs"))
    res = forward(net, batch, engine="factorised")
    for layer in range(1, net.L + 1):
        np.testing.assert_array_equal(column(df, manifest, f"readout_l{layer}"),
                                      res.active_readout[:, layer])


def test_size_limit_refuses_with_the_estimate(net, tmp_path):
    with pytest.raises(ConfigError, match=r"would take .* GiB \(\d+ bytes per sample\), over"):
        write_dataset(net, tmp_path / "big", samples=1000, activations=True, limit=10_000)
    assert not (tmp_path / "big").exists()
    manifest = write_dataset(net, tmp_path / "big", samples=20, activations=True, limit=10_000,
                             force=True)
    per_sample = sum(
        int(np.prod(c["shape"], dtype=np.int64)) * np.dtype(c["dtype"]).itemsize
        for c in manifest["columns"].values()
    )
    # the estimate's own terms: sample, active, inputs, n_active, x_index, x_value, A^0, then
    # per layer a, readout, A^l; and the mask of T = 30 booleans
    assert per_sample == 8 * (1 + 2 + 2 * 4 + 1 + 8 + 8 + 120 + 3 * (2 * 2 * 4 + 120)) + 30


def test_dense_matrices_of_activations_count_against_the_limit(net, tmp_path):
    dense = 8 * (net.L - 1) * net.D**2  # W^2..W^L, float64
    with pytest.raises(ConfigError, match=r"--activations forms the dense W\^2..W\^L of D=120"):
        write_dataset(net, tmp_path / "a", samples=1, activations=True, limit=dense - 1)
    write_dataset(net, tmp_path / "a", samples=1, activations=True, limit=dense)
    write_dataset(net, tmp_path / "b", samples=1, limit=dense - 1)  # no A^l, no dense matrices


def test_default_shards_respect_the_sample_and_byte_caps(net, tmp_path, monkeypatch):
    import kernel.io.dataset as ds

    monkeypatch.setattr(ds, "SHARD_SAMPLES", 7)
    assert write_dataset(net, tmp_path / "a", samples=20)["shard_size"] == 7
    per_sample = 8 * (1 + 2 + 2 * 4 + 1 + 8 + 8 + 3 * 2 * 2 * 4) + 30
    monkeypatch.setattr(ds, "SHARD_BYTES", 5 * per_sample + 1)
    manifest = write_dataset(net, tmp_path / "b", samples=20)
    assert manifest["shard_size"] == 5 and len(manifest["shards"]) == 4


def test_non_empty_output_directory_is_refused(net, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not an empty directory"):
        write_dataset(net, tmp_path / "x", samples=3)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"




def test_cli_dataset_writes_shards(net, tmp_path):
    src = str(save_network(net, tmp_path / "net.safetensors"))
    res = cis("dataset", src, "--samples", "50", "--out", str(tmp_path / "ds"), "--layers", "2",
              "--inactive", "1,2", "--shard-size", "20")
    assert res.returncode == 0, res.stderr
    df, manifest = read_parquet(tmp_path / "ds")
    assert len(df) == 50 and len(manifest["shards"]) == 3
    assert set(df.columns) == {"sample", "active", "inputs", "n_active", "active_mask",
                               "x_index", "x_value", "a_l2", "readout_l2", "inactive_readout_l2"}


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--samples", "0"], "samples=0 must be >= 1"),
        (["--samples", "5", "--z", "31"], "z=31 must be <= 30"),
        (["--samples", "5", "--layers", "0"], "layers=0 must be >= 1"),
        (["--samples", "5", "--layers", "4"], "layers=4 must be <= 3"),
        (["--samples", "5", "--layers", "one"], "must be 'all' or a comma-separated list"),
        (["--samples", "5", "--inactive", "30"], "inactive=30 must be <= 29"),
        (["--samples", "5", "--inactive", "a,b"], "comma-separated list of circuit ids"),
        (["--samples", "5", "--shard-size", "0"], "shard_size=0 must be >= 1"),
        (["--samples", "5", "--format", "csv"], "'csv' is not one of"),
        (["--samples", "100000000", "--activations"], "over the limit of 4.00 GiB"),
        (["--samples", "5", "--out", "{dir}/full"], "exists and is not an empty directory"),
        (["--out", "{dir}/o"], "Missing option '--samples'"),
        (["--samples", "5", "--out", "{dir}/full/x/o"], "cannot write (Not a directory)"),
    ],
    ids=["samples-0", "z-too-big", "layer-0", "layer-too-big", "layer-word", "id-too-big",
         "id-word", "shard-0", "format", "too-large", "out-not-empty", "no-samples", "unwritable"],
)
def test_cli_dataset_bad_input_exits_2_with_one_line(net, tmp_path, args, expected):
    src = str(save_network(net, tmp_path / "net.safetensors"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    args = [a.format(dir=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    res = run_cli("dataset", src, *args)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and expected in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()


# --- variable sparsity, input distributions, model input, A^0 ---------------------------------


def _doc_input_table() -> dict[str, str]:
    """family -> its `inputs="default"` cell in docs/io.md's table after <!-- dataset-inputs -->."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "io.md").read_text()
    block = text[text.index("<!-- dataset-inputs -->"):].split("\n\n", 1)[0]
    rows = [r.split("|")[1:-1] for r in block.splitlines()[3:]]  # marker, header, rule
    return {cells[0].strip().strip("`"): cells[1].strip() for cells in rows}


@pytest.mark.parametrize("family", ["signed", "gaussian", "permutation", "rotation"])
def test_the_docs_say_which_families_get_fresh_inputs(tmp_path, family):
    """docs/io.md says, per family, whether default inputs are fixed or fresh; datasets agree."""
    cell = _doc_input_table()[family]
    assert cell.split(":")[0] in ("fixed", "fresh")
    d = 4 if family != "gaussian" else 3
    net = build_network(D=10 * d, d=d, S=2, T=12, L=1, family=family, seed=2)
    m = write_dataset(net, tmp_path / "d", samples=30, z=2, fmt="npz", seed=1)
    with np.load(tmp_path / "d" / m["shards"][0]["file"]) as z:
        same = np.array_equal(z["inputs"], net.circuits.inputs[z["active"]])
    assert same == cell.startswith("fixed")


def test_bernoulli_activity_pads_and_matches_a_direct_forward(net, tmp_path):
    m = write_dataset(net, tmp_path / "b", samples=400, p=0.1, fmt="npz", seed=3,
                      shard_size=150, inactive=[5])
    arrays, manifest = read_dataset(tmp_path / "b")
    assert manifest["activity"] == {"kind": "bernoulli", "value": 0.1} and manifest["z"] is None
    k = arrays["n_active"]
    # Binomial(30, 0.1) counts: mean 3, sd of the mean over 400 samples 0.082
    assert abs(k.mean() - 3.0) < 5 * 0.082 and k.max() == m["max_active"] and (k == 0).any()
    act, T, d = arrays["active"], net.T, net.d
    for i in range(len(k)):
        assert (act[i, k[i]:] == -1).all() and (act[i, :k[i]] >= 0).all()
        assert not arrays["readout_l1"][i, k[i]:].any() and not arrays["inputs"][i, k[i]:].any()
        mask = np.zeros(T, dtype=bool)
        mask[act[i, :k[i]]] = True
        np.testing.assert_array_equal(arrays["active_mask"][i], mask)
        x = np.zeros(T * d)
        idx, val = arrays["x_index"][i], arrays["x_value"][i]
        x[idx[idx >= 0]] = val[idx >= 0]
        np.testing.assert_array_equal(x.reshape(T, d)[act[i, :k[i]]], arrays["inputs"][i, :k[i]])
        assert np.count_nonzero(idx >= 0) == k[i] * d
        if k[i]:
            res = forward(net, make_batch(net, act[i:i + 1, :k[i]], arrays["inputs"][i:i + 1,
                                                                                :k[i]]),
                          readout=[5])
            for layer in (1, 2, 3):
                np.testing.assert_allclose(arrays[f"readout_l{layer}"][i, :k[i]],
                                           res.active_readout[0, layer], rtol=0, atol=1e-12)
                np.testing.assert_allclose(arrays[f"inactive_readout_l{layer}"][i],
                                           res.readout[0, layer], rtol=0, atol=1e-12)
        else:  # nothing active: every read-out is 0
            assert not arrays["inactive_readout_l3"][i].any()


def test_poisson_activity_and_reproducibility(net, tmp_path):
    kw = dict(samples=300, z_mean=2.5, fmt="npz", seed=9, shard_size=70, inputs="random")
    write_dataset(net, tmp_path / "a", **kw)
    write_dataset(net, tmp_path / "b", **kw)
    a, m = read_dataset(tmp_path / "a")
    b, _ = read_dataset(tmp_path / "b")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    # Poisson(2.5): mean 2.5, sd of the mean over 300 samples 0.091
    assert abs(a["n_active"].mean() - 2.5) < 5 * 0.091
    assert m["activity"]["kind"] == "poisson"


@pytest.mark.parametrize("family", ["signed", "rotation"])
def test_random_inputs_stay_in_the_family_domain(tmp_path, family):
    net = build_network(D=80, d=4, S=2, T=30, L=2, family=family, seed=1)
    write_dataset(net, tmp_path / "r", samples=300, z=3, inputs="random", fmt="npz", seed=2)
    arrays, _ = read_dataset(tmp_path / "r")
    x = arrays["inputs"].reshape(-1, net.d)
    assert (x >= 0).all()
    if family == "rotation":
        np.testing.assert_array_equal(x[:, :2], np.broadcast_to([1.5, 0.5], (len(x), 2)))
        r = np.linalg.norm(x[:, 2:] - 1.0, axis=1)
        assert r.min() >= 0.5 and r.max() <= 1.0 and r.max() - r.min() > 0.4
        # the circuits still compute their rotation: the run-alone truth keeps the radius
        a = arrays["a_l2"].reshape(-1, net.d)
        np.testing.assert_allclose(np.linalg.norm(a[:, 2:] - (a[:, :1] - a[:, 1:2]), axis=1),
                                   r, rtol=1e-9)
    else:
        norms = np.linalg.norm(x, axis=1)
        assert norms.min() >= 0.5 and norms.max() <= 1.5 and norms.max() - norms.min() > 0.8
        assert len(np.unique(np.round(x / norms[:, None], 12), axis=0)) == len(x)


def test_activations_from_layer_0(net, tmp_path):
    from kernel.truth import layer_matrix

    write_dataset(net, tmp_path / "a", samples=40, p=0.1, activations=True, fmt="npz", seed=4)
    arrays, _ = read_dataset(tmp_path / "a")
    x = np.zeros((40, net.T * net.d))
    for i in range(40):
        idx = arrays["x_index"][i]
        x[i, idx[idx >= 0]] = arrays["x_value"][i][idx >= 0]
    np.testing.assert_allclose(arrays["A_l0"], x @ layer_matrix(net, 1).T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(arrays["A_l1"],
                               np.maximum(arrays["A_l0"] + np.repeat(net.circuits.bias[0], net.n),
                                          0), rtol=0, atol=1e-12)


def test_read_dataset_reads_parquet_as_npz(net, tmp_path):
    kw = dict(samples=23, p=0.1, seed=5, shard_size=10, layers="2")
    write_dataset(net, tmp_path / "p", **kw)
    write_dataset(net, tmp_path / "n", fmt="npz", **kw)
    a, _ = read_dataset(tmp_path / "p")
    b, _ = read_dataset(tmp_path / "n")
    for name in b:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(ConfigError, match="column='nope' is not one of"):
        read_dataset(tmp_path / "n", ["nope"])


def test_one_activity_at_a_time(net, tmp_path):
    with pytest.raises(ConfigError, match="give one of z, p, z_mean"):
        write_dataset(net, tmp_path / "x", samples=3, z=2, p=0.1)
    with pytest.raises(ConfigError, match="p=1.5 must be <= 1"):
        write_dataset(net, tmp_path / "x", samples=3, p=1.5)
    with pytest.raises(ConfigError, match="inputs='uniform' is not one of"):
        write_dataset(net, tmp_path / "x", samples=3, inputs="uniform")
    assert not (tmp_path / "x").exists()


def test_torch_dataset(net, tmp_path):
    torch = pytest.importorskip("torch")
    from kernel.io.for_torch import ShardDataset

    write_dataset(net, tmp_path / "t", samples=25, p=0.1, shard_size=10, activations=True)
    ds = ShardDataset(tmp_path / "t", ["n_active", "active_mask", "A_l2"], dtype=torch.float32)
    assert len(ds) == 25
    item = ds[3]
    assert item["A_l2"].shape == (net.D,) and item["A_l2"].dtype == torch.float32
    assert item["active_mask"].dtype == torch.bool and int(item["active_mask"].sum()) == int(
        item["n_active"])
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    assert next(iter(loader))["A_l2"].shape == (8, net.D)


def test_the_python_example_of_the_docs_runs(tmp_path, monkeypatch):
    from tests.test_export import doc_block

    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(doc_block("dataset-python"), ns)
    arrays, manifest = ns["arrays"], ns["manifest"]
    assert manifest["activity"] == {"kind": "bernoulli", "value": 0.01}
    assert arrays["A_l0"].shape == (2000, 400) and arrays["active_mask"].shape == (2000, 80)


def test_fixed_z_with_default_inputs_draws_as_sample_batch(net, tmp_path):
    """Datasets written before variable sparsity existed are reproduced by the same seed."""
    from kernel import sample_batch
    from kernel.io.dataset import _shard_seed

    m = write_dataset(net, tmp_path / "f", samples=30, z=3, seed=7, shard_size=30, fmt="npz")
    arrays, _ = read_dataset(tmp_path / "f")
    batch = sample_batch(net, 30, 3, seed=_shard_seed(7, 0))
    np.testing.assert_array_equal(arrays["active"], batch.active)
    np.testing.assert_array_equal(arrays["inputs"], batch.inputs)
    assert m["z"] == 3 and m["max_active"] == 3
