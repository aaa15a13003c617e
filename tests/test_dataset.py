"""Datasets: columns hold what the manifest says, agree with independent oracles, reproduce."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kernel import ConfigError, build_network, forward, make_batch
from kernel.io import load_network, save_network
from kernel.io.dataset import SHARDS, write_dataset
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
