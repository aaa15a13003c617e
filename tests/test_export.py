"""Exports replayed in plain NumPy from the file alone reproduce the package's forward pass."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel import CONSTRUCTIONS, ConfigError, build_network, forward, truth
from kernel.io import save_network
from kernel.io.export import (
    dense_arrays,
    dense_bytes,
    export_network,
    input_embedding,
    neuron_indices,
    readout_matrix,
    to_torch,
)
from properties.strategies import network_configs, scenarios
from tests.reference_constructions import literal_layer
from tests.test_io import run_cli

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

FIXTURE = [HealthCheck.function_scoped_fixture]  # tmp_path is reused across examples


# --- replays that use only NumPy and the exported file (no kernel code) -----------------------


def read_export(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of an exported file, by the documented layout only."""
    if path.endswith(".npz"):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays, json.loads(str(arrays.pop("metadata")))
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


def stacked_inputs(T: int, d: int, active: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """(B, T*d): each active circuit's input in its slot, zeros elsewhere."""
    x = np.zeros((active.shape[0], T, d))
    x[np.arange(active.shape[0])[:, None], active] = inputs
    return x.reshape(active.shape[0], T * d)


def doc_block(marker: str, page: str = "io.md") -> str:
    """The python block of docs/``page`` after ``<!-- marker -->``: the tests run what users
    read."""
    text = (Path(__file__).parents[1] / "docs" / page).read_text()
    start = text.index(f"<!-- {marker} -->")
    return text[start:].split("```python\n", 1)[1].split("```", 1)[0]


def doc_function(marker: str, name: str):
    ns: dict = {}
    exec(doc_block(marker), ns)
    return ns[name]


replay_dense = doc_function("dense-replay", "replay_dense")
replay_factorised = doc_function("factorised-replay", "replay_factorised")
weights_from_parts = doc_function("components-replay", "weights_from_parts")
EVERY = network_configs(n=st.integers(4, 20), constructions=tuple(CONSTRUCTIONS))


# --- tests ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(sc=scenarios(EVERY), fmt=st.sampled_from(["safetensors", "npz"]))
def test_dense_export_replays_the_forward_pass(tmp_path, sc, fmt):
    """The dense replay of docs/io.md, every construction."""
    net = sc.network()
    path = str(export_network(net, tmp_path / f"net.{fmt}", fmt=fmt, dense=True))
    arrays, meta = read_export(path)
    assert meta["layout"] == "dense" and int(meta["L"]) == net.L
    batch = sc.sample(net)
    ref = forward(net, batch, readout="all").readout[:, 1:]  # (B, L, T, d)
    x = stacked_inputs(net.T, net.d, batch.active, batch.inputs)
    got = replay_dense(arrays, meta, x).reshape(ref.shape)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(sc=scenarios(EVERY), fmt=st.sampled_from(["safetensors", "npz"]))
def test_factorised_export_replays_the_forward_pass(tmp_path, sc, fmt):
    """The factorised replay of docs/io.md, every construction (ris-* failed before: the file
    held the circuits' weights but not the construction's other terms)."""
    net = sc.network()
    path = str(export_network(net, tmp_path / f"net.{fmt}", fmt=fmt))
    arrays, meta = read_export(path)
    assert meta["layout"] == "factorised"
    batch = sc.sample(net)
    ref = forward(net, batch, readout="all").readout[:, 1:]
    x = stacked_inputs(net.T, net.d, batch.active, batch.inputs)
    got = replay_factorised(arrays, meta, x).reshape(ref.shape)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_the_issue_ris_export_replays(tmp_path, construction):
    """The reproduction of the issue (D=240, S=4, T=30, L=3, seed 2) and a rotation network."""
    for kw in (dict(D=240, S=4, T=30, L=3, seed=2),
               dict(D=160, S=4, T=40, L=3, family="rotation", seed=1)):
        net = build_network(construction=construction, **kw)
        for dense in (False, True):
            arrays, meta = read_export(str(export_network(net, tmp_path / "x.npz", fmt="npz",
                                                          dense=dense)))
            from kernel import sample_batch

            batch = sample_batch(net, 20, 3, seed=4)
            ref = forward(net, batch, readout="all").readout[:, 1:]
            x = stacked_inputs(net.T, net.d, batch.active, batch.inputs)
            replay = replay_dense if dense else replay_factorised
            got = replay(arrays, meta, x).reshape(ref.shape)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE)
@given(cfg=EVERY)
def test_exported_parts_sum_to_the_weights(tmp_path, cfg):
    """Components V, U and the shared part of a dense export, summed by the docs' block, give
    every decomposed weight matrix within 1e-12, every construction."""
    net = build_network(cfg)
    arrays, _ = read_export(str(export_network(net, tmp_path / "c.npz", fmt="npz", dense=True)))
    for k, W in weights_from_parts(arrays).items():
        np.testing.assert_allclose(W, arrays[f"net.{k}.weight"], rtol=0, atol=1e-12)
        layer = 1 if k == 0 else (k + 1) // 2
        np.testing.assert_allclose(W, truth.layer_matrix(net, layer), rtol=0, atol=1e-12)
        if layer >= 2:  # and the construction's W^l written out independently of the engines
            literal = literal_layer(net.config.construction, net.circuits.weights[layer - 1],
                                    net.offsets[layer - 1], net.offsets[layer - 2], net.n,
                                    read_c=net.read_c, kappa_scale=net.config.kappa_scale)
            np.testing.assert_allclose(W, literal, rtol=0, atol=1e-12)
    labels = arrays["components.labels"]
    assert labels.shape == (net.T * net.d, 2)
    np.testing.assert_array_equal(labels[:, 0] * net.d + labels[:, 1], np.arange(net.T * net.d))


@settings(max_examples=20, deadline=None)
@given(cfg=network_configs(n=st.integers(4, 16)))
def test_dense_blocks_match_the_per_circuit_matrices(cfg):
    """Embedding columns are E_t^1 w_t^1, read-out rows are U_t^l, labels are E_t's rows."""
    net = build_network(cfg)
    M0 = input_embedding(net)
    labels = neuron_indices(net)
    for layer in range(1, net.L + 1):
        U = readout_matrix(net, layer)
        for t in range(net.T):
            rows_t = U[t * net.d:(t + 1) * net.d]
            np.testing.assert_array_equal(rows_t, net.unembed_matrix(t, layer))
            rows = np.nonzero(net.embed_matrix(t, layer).any(axis=1))[0]
            np.testing.assert_array_equal(np.sort(labels[layer - 1, t].ravel()), rows)
    for t in range(net.T):
        np.testing.assert_allclose(M0[:, t * net.d:(t + 1) * net.d],
                                   net.embed_matrix(t, 1) @ net.circuits.weights[0, t], atol=0)


def test_dense_size_estimate_is_exact_and_enforced(tmp_path):
    net = build_network(D=120, d=4, S=3, T=40, L=3)
    arrays = dense_arrays(net)
    assert dense_bytes(net) == sum(a.nbytes for a in arrays.values())
    with pytest.raises(ConfigError, match=r"needs 0\.00 GiB, over the limit") as exc:
        export_network(net, tmp_path / "x.safetensors", dense=True, limit=1000)
    assert "\n" not in str(exc.value) and not (tmp_path / "x.safetensors").exists()
    export_network(net, tmp_path / "x.safetensors", dense=True, limit=1000, force=True)
    assert (tmp_path / "x.safetensors").stat().st_size > dense_bytes(net)


def test_export_carries_the_ground_truth(tmp_path):
    net = build_network(D=80, d=4, S=3, T=15, L=2, family="gaussian", bias=-0.1, seed=5)
    arrays, meta = read_export(str(export_network(net, tmp_path / "a.npz", fmt="npz")))
    assert json.loads(meta["config"]) == net.config.as_dict()
    assert meta["family"] == "gaussian"
    np.testing.assert_array_equal(arrays["circuits.weights"], net.circuits.weights)
    np.testing.assert_array_equal(arrays["circuits.bias"], net.circuits.bias)
    np.testing.assert_array_equal(arrays["circuits.inputs"], net.circuits.inputs)
    assert arrays["truth.neurons"].shape == (net.L, net.T, net.d, net.S)


def test_torch_loader_of_the_docs(tmp_path):
    """The five-line loader of docs/io.md, verbatim, gives the package's read-outs."""
    torch = pytest.importorskip("torch")
    net = build_network(D=120, d=4, S=3, T=30, L=3, variant="corrected", bias=-0.02)
    export_network(net, tmp_path / "net.safetensors", dense=True)
    ns: dict = {}
    exec(DOC_LOADER.replace("net.safetensors", str(tmp_path / "net.safetensors")), ns)
    model, L = ns["model"], ns["L"]
    from kernel import sample_batch

    batch = sample_batch(net, 16, 3, seed=1)
    x = torch.from_numpy(stacked_inputs(net.T, net.d, batch.active, batch.inputs))
    with torch.no_grad():
        A = model.net[0](x)
        outs = []
        for layer in range(L):
            A = model.net[2 * layer + 2](model.net[2 * layer + 1](A))
            outs.append(model.readout[layer](A).numpy())
    ref = forward(net, batch, readout="all").readout[:, 1:]
    np.testing.assert_allclose(np.stack(outs, 1).reshape(ref.shape), ref, rtol=0, atol=1e-10)


def test_to_torch_matches_forward():
    torch = pytest.importorskip("torch")
    from kernel import sample_batch

    net = build_network(D=100, d=4, S=3, T=25, L=3, family="permutation", bias=-0.05)
    batch = sample_batch(net, 12, 2, seed=2)
    x = torch.from_numpy(stacked_inputs(net.T, net.d, batch.active, batch.inputs))
    with torch.no_grad():
        got = to_torch(net)(x).numpy()
    ref = forward(net, batch, readout="all").readout[:, 1:]
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=0, atol=1e-10)


DOC_LOADER = doc_block("torch-loader")


def test_doc_loader_is_five_lines_and_the_readme_shows_the_same():
    from pathlib import Path

    assert len([ln for ln in DOC_LOADER.splitlines() if ln.strip()]) == 5
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert DOC_LOADER.replace('"net.safetensors"', '"model.safetensors"') in readme




def test_cli_export_writes_both_layouts(tmp_path):
    net = build_network(D=80, d=4, S=3, T=15, L=2)
    src = str(save_network(net, tmp_path / "net.safetensors"))
    for extra, fmt in (([], "npz"), (["--dense"], "safetensors")):
        out = str(tmp_path / f"e{len(extra)}.{fmt}")
        res = run_cli("export", src, "--format", fmt, "--out", out, *extra)
        assert res.returncode == 0, res.stderr
        arrays, meta = read_export(out)
        assert meta["layout"] == ("dense" if extra else "factorised")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["{missing}", "--out", "{dir}/x"], "cannot read"),
        (["{net}", "--out", "{dir}/x", "--format", "onnx"], "'onnx' is not one of"),
        (["{net}"], "Missing option '--out'"),
        (["{net}", "--out", "{dir}/no/such/x"], "does not exist"),
        (["{notnet}", "--out", "{dir}/x"], "not a cis network file"),
    ],
    ids=["missing-net", "bad-format", "no-out", "unwritable", "foreign-file"],
)
def test_cli_export_bad_input_exits_2_with_one_line(tmp_path, args, expected):
    net = build_network(D=40, d=4, S=2, T=5, L=1)
    src = save_network(net, tmp_path / "net.safetensors")
    (tmp_path / "notnet").write_text("hello\n")
    fill = {"net": str(src), "dir": str(tmp_path), "missing": str(tmp_path / "nope"),
            "notnet": str(tmp_path / "notnet")}
    res = run_cli("export", *[a.format(**fill) for a in args])
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and expected in res.stderr, res.stderr


def test_to_torch_pickles_and_runs_in_float32(tmp_path):
    torch = pytest.importorskip("torch")
    from kernel import sample_batch

    net = build_network(D=100, d=4, S=3, T=25, L=3, construction="ris-capped", bias=-0.05)
    batch = sample_batch(net, 12, 2, seed=2)
    x = stacked_inputs(net.T, net.d, batch.active, batch.inputs)
    ref = forward(net, batch, readout="all").readout[:, 1:].reshape(12, net.L, -1)
    model = to_torch(net)
    torch.save(model, tmp_path / "m.pt")
    back = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        np.testing.assert_array_equal(back(torch.from_numpy(x)).numpy(),
                                      model(torch.from_numpy(x)).numpy())
        m32 = to_torch(net, dtype="float32")
        assert all(p.dtype == torch.float32 for p in m32.parameters())
        got = m32(torch.from_numpy(x).float()).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    with pytest.raises(ConfigError, match="dtype='float16' is not one of"):
        to_torch(net, dtype="float16")


def test_to_torch_without_torch_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(ConfigError, match="to_torch needs PyTorch: pip install torch"):
        to_torch(build_network(D=40, d=4, S=2, T=5, L=1))
