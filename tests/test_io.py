"""Network files: bit-exact round trip; every corruption answered by one line naming the file."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel.io.netfile as kio
from kernel import ConfigError, build_network, forward, run
from kernel.io import NetworkFileError, load_network, read_network, save_network
from properties.strategies import scenarios, user_circuits

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

FIXTURE = [HealthCheck.function_scoped_fixture]  # tmp_path is reused across examples


def assert_same_network(a, b) -> None:
    """Every array that defines a network, and the derived ones, equal bit for bit."""
    assert a.config == b.config
    assert a.circuits.family == b.circuits.family
    for name in ("weights", "bias", "inputs"):
        x, y = getattr(a.circuits, name), getattr(b.circuits, name)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    for name in ("design", "offsets", "inv_indptr", "inv_circuits"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y)
    assert np.float64(a.read_c).tobytes() == np.float64(b.read_c).tobytes()


@pytest.fixture
def saved(tmp_path):
    net = build_network(D=60, d=4, S=3, T=12, L=2, variant="corrected", bias=-0.05)
    path = save_network(net, tmp_path / "net.safetensors")
    return net, path


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURE)
@given(sc=scenarios())
def test_round_trip_is_bit_exact(tmp_path, sc):
    net = sc.network()
    back = load_network(save_network(net, tmp_path / "n.safetensors"))
    assert_same_network(net, back)
    batch = sc.sample(net)
    ids = np.arange(net.T)
    for engine in ("factorised", "dense"):
        r1 = forward(net, batch, engine=engine, readout=ids)
        r2 = forward(back, batch, engine=engine, readout=ids)
        np.testing.assert_array_equal(r1.readout, r2.readout)
        np.testing.assert_array_equal(r1.inactive_sq, r2.inactive_sq)


@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURE)
@given(uc=user_circuits(), n=st.integers(8, 20))
def test_user_network_round_trip(tmp_path, uc, n):
    from kernel.patterns import capacity

    T = uc.weights.shape[0]
    d = uc.weights.shape[2]
    S = 2 if capacity(n, 2) >= T else None
    if S is None:
        return
    net = uc.network(D=d * n, S=S)
    back = load_network(save_network(net, tmp_path / "u.safetensors"))
    assert back.circuits.family == "user"
    assert_same_network(net, back)


def test_file_is_plain_safetensors_with_metadata(saved):
    """Any safetensors reader opens it; the header metadata carries format, versions, config."""
    from safetensors import safe_open

    net, path = saved
    with safe_open(str(path), framework="numpy") as fh:
        meta = fh.metadata()
        keys = set(fh.keys())
        np.testing.assert_array_equal(fh.get_tensor("patterns.offsets"), net.offsets)
    assert keys == set(kio.network_arrays(net))
    assert meta["format"] == "cis-network" and meta["format_version"] == "1"
    assert json.loads(meta["config"]) == net.config.as_dict()
    assert len(meta["sha256"]) == 64


def test_file_opens_in_pytorch(saved):
    pytest.importorskip("torch")
    from safetensors.torch import load_file

    net, path = saved
    tensors = load_file(str(path))
    for key, arr in kio.network_arrays(net).items():
        np.testing.assert_array_equal(tensors[key].numpy(), arr)


def _load_error(path: Path) -> str:
    with pytest.raises(NetworkFileError) as exc:
        load_network(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_every_single_byte_change_is_detected_exhaustively(saved, tmp_path):
    """Each byte of the file, changed in two ways (low bit, high bit), is refused."""
    _, path = saved
    raw = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    for pos in range(len(raw)):
        for mask in (0x01, 0x80):
            flipped = bytearray(raw)
            flipped[pos] ^= mask
            bad.write_bytes(flipped)
            _load_error(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE)
@given(data=st.data())
def test_any_single_byte_change_is_detected(saved, tmp_path, data):
    _, path = saved
    raw = path.read_bytes()
    pos = data.draw(st.integers(0, len(raw) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[pos]), label="new byte")
    flipped = bytearray(raw)
    flipped[pos] = value
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(flipped)
    _load_error(bad)


def test_same_meaning_header_with_other_bytes_is_refused(saved, tmp_path):
    """The hash covers bytes, not meaning: a header re-serialised with identical JSON content
    (other whitespace) is refused too, so no byte of a file can change unnoticed."""
    _, path = saved
    raw = path.read_bytes()
    end = 8 + int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:end])
    text = json.dumps(header, separators=(", ", ": ")).encode()
    text += b" " * (-len(text) % 8)
    body = raw[end:]
    bad = tmp_path / "respaced.safetensors"
    bad.write_bytes(len(text).to_bytes(8, "little") + text + body)
    assert json.loads(text) == header
    assert "hash" in _load_error(bad)


def test_every_truncation_is_detected(saved, tmp_path):
    _, path = saved
    raw = path.read_bytes()
    bad = tmp_path / "short.safetensors"
    for size in range(len(raw)):
        bad.write_bytes(raw[:size])
        _load_error(bad)
    bad.write_bytes(raw[:-1])
    assert "truncated" in _load_error(bad)


def test_trailing_bytes_are_detected(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "long.safetensors"
    bad.write_bytes(path.read_bytes() + b"\0")
    assert "hash" in _load_error(bad)


def test_other_format_version_is_named(saved, tmp_path):
    _, path = saved
    raw = path.read_bytes()
    assert raw.count(b'"format_version":"1"') == 1
    bad = tmp_path / "v2.safetensors"
    bad.write_bytes(raw.replace(b'"format_version":"1"', b'"format_version":"7"'))
    msg = _load_error(bad)
    assert "format version '7'" in msg and "reads version '1'" in msg


def test_foreign_files_are_refused(tmp_path):
    from safetensors.numpy import save_file

    cases = {
        "empty.bin": b"",
        "text.txt": b"hello, this is not a network\n",
        "random.bin": np.random.default_rng(0).bytes(4096),
        "json.safetensors": b'{"a": 1}',
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "arrays.npz", a=np.arange(3))
    save_file({"w": np.ones(3)}, str(tmp_path / "other.safetensors"), metadata={"x": "y"})
    for name in [*cases, "arrays.npz", "other.safetensors"]:
        assert "not a cis network file" in _load_error(tmp_path / name)
    assert "cannot read" in _load_error(tmp_path / "missing.safetensors")
    assert "cannot read" in _load_error(tmp_path)  # a directory


def test_hash_valid_but_inconsistent_arrays_are_refused(saved, tmp_path, monkeypatch):
    """A file with a correct hash whose arrays do not fit its configuration (a writer bug, not
    corruption) is refused by the shape and range checks."""
    net, _ = saved
    arrays = kio.network_arrays(net)
    bad_shape = {**arrays, "patterns.offsets": arrays["patterns.offsets"][:, :-1]}
    monkeypatch.setattr(kio, "network_arrays", lambda _net: bad_shape)
    path = save_network(net, tmp_path / "shape.safetensors")
    assert "patterns.offsets" in _load_error(path)
    out_of_range = {**arrays, "patterns.offsets": arrays["patterns.offsets"] + net.n}
    monkeypatch.setattr(kio, "network_arrays", lambda _net: out_of_range)
    path = save_network(net, tmp_path / "range.safetensors")
    assert "outside" in _load_error(path)


def test_read_network_returns_the_metadata(saved):
    net, path = saved
    back, meta = read_network(path)
    assert_same_network(net, back)
    assert meta["family"] == net.circuits.family and meta["format"] == "cis-network"


def test_saved_file_has_the_mode_of_an_ordinary_new_file(saved, tmp_path):
    _, path = saved
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"")
    assert path.stat().st_mode == ordinary.stat().st_mode  # not mkstemp's 0600


def test_save_to_unwritable_path_is_one_line(tmp_path):
    net = build_network(D=40, d=4, S=2, T=5, L=1)
    with pytest.raises(NetworkFileError, match="cannot write") as exc:
        save_network(net, tmp_path / "no" / "such" / "dir.safetensors")
    assert "\n" not in str(exc.value)
    assert not list(tmp_path.iterdir())  # no partial or temporary file left behind


def test_missing_safetensors_is_one_line(saved, monkeypatch):
    """Saving writes the canonical file itself; loading needs safetensors and says so."""
    net, path = saved
    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if the io extra were missing
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    save_network(net, path)
    with pytest.raises(NetworkFileError, match=r"^network files need the safetensors"):
        load_network(path)


def test_run_with_a_given_network(saved):
    net, path = saved
    a = run(network=load_network(path), z=2, batch=20, engine="factorised")
    b = run(D=60, d=4, S=3, T=12, L=2, variant="corrected", bias=-0.05, z=2, batch=20,
            engine="factorised")
    assert a.config == b.config
    np.testing.assert_array_equal(a.forward.active_readout, b.forward.active_readout)
    with pytest.raises(ConfigError, match=r"\['D'\] cannot be combined"):
        run(network=net, D=80)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """``cis ARGS`` in this process (``cis.cli.main``: exit code, stdout, stderr)."""
    from cis.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


def cis(*args: str) -> subprocess.CompletedProcess:
    """``python -m cis ARGS`` in a fresh process (the installed entry point, end to end)."""
    return subprocess.run([sys.executable, "-m", "cis", *args], capture_output=True, text=True)


def _no_seconds(out: str) -> dict:
    obj = json.loads(out)
    obj.pop("seconds")
    return obj


def test_cli_run_save_then_load_gives_the_same_result(tmp_path):
    path = str(tmp_path / "net.safetensors")
    opts = ["--D", "200", "--T", "20", "--L", "3", "--batch", "40", "--seed", "3",
            "--variant", "corrected", "--json"]
    saved_run = cis("run", *opts, "--save", path)
    assert saved_run.returncode == 0, saved_run.stderr
    loaded_run = run_cli("run", "--load", path, "--batch", "40", "--json")
    assert loaded_run.returncode == 0, loaded_run.stderr
    assert _no_seconds(saved_run.stdout) == _no_seconds(loaded_run.stdout)
    assert _no_seconds(run_cli("run", *opts).stdout) == _no_seconds(saved_run.stdout)
    checked = run_cli("check", "--load", path, "--batch", "200", "--samples", "1000", "--json")
    assert checked.returncode in (0, 1), checked.stderr
    assert json.loads(checked.stdout)["config"]["variant"] == "corrected"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--load", "{net}", "--D", "80"], "--D cannot be combined with --load"),
        (["run", "--load", "{net}", "--seed", "1"], "--seed cannot be combined with --load"),
        (["run", "--load", "{net}", "--save", "{dir}/b"], "--save and --load cannot be combined"),
        (["run", "--load", "{dir}/missing"], "cannot read"),
        (["run", "--load", "{bad}"], "corrupt"),
        (["check", "--load", "{bad}"], "corrupt"),
        (["run", "--save", "{dir}/no/such/net"], "does not exist"),
    ],
    ids=["load+D", "load+seed", "load+save", "missing", "corrupt-run", "corrupt-check",
         "unwritable"],
)
def test_cli_bad_network_files_exit_2_with_one_line(saved, tmp_path, args, expected):
    _, path = saved
    bad = tmp_path / "bad.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    bad.write_bytes(raw)
    fill = {"net": str(path), "dir": str(tmp_path), "bad": str(bad)}
    res = run_cli(*[a.format(**fill) for a in args])
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and expected in res.stderr, res.stderr


def test_a_loaded_network_owns_read_only_arrays(tmp_path):
    path = tmp_path / "net.safetensors"
    save_network(build_network(D=400, S=5, T=30, L=2, seed=3), path)
    net = load_network(path)
    arrays = [net.circuits.weights, net.circuits.bias, net.circuits.inputs, net.design,
              net.offsets, net.inv_indptr, net.inv_circuits]
    for arr in arrays:
        with pytest.raises(ValueError, match="read-only"):
            arr.reshape(-1)[0] = arr.reshape(-1)[0]
