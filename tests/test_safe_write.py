"""Writers never replace a symbolic link, a device or FIFO, or their input; files are canonical."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import numpy as np
import pytest

import kernel.io.netfile as kio
from kernel import build_network
from kernel.io import NetworkFileError, load_network, network_hash, safe_write, save_network
from kernel.io.dataset import write_dataset
from kernel.io.export import export_network

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


@pytest.fixture
def net():
    return build_network(D=40, d=4, S=2, T=6, L=2, bias=-0.05)


WRITERS = {
    "save": lambda net, out: save_network(net, out),
    "export-safetensors": lambda net, out: export_network(net, out),
    "export-npz": lambda net, out: export_network(net, out, fmt="npz"),
    "export-dense": lambda net, out: export_network(net, out, dense=True),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_symlink_is_refused_and_left_alone(net, tmp_path, writer):
    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(NetworkFileError, match="symbolic link") as exc:
        WRITERS[writer](net, link)
    assert "\n" not in str(exc.value)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]  # no temp file left


def _read_fifo(path, sink: list[bytes]) -> threading.Thread:
    def reader() -> None:
        with open(path, "rb") as fh:  # blocks until the writer opens the FIFO
            sink.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_fifo_is_written_in_place_and_stays_a_fifo(net, tmp_path, writer):
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = _read_fifo(fifo, got)
    WRITERS[writer](net, fifo)
    thread.join(timeout=60)
    assert not thread.is_alive() and got
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    regular = tmp_path / "regular"
    WRITERS[writer](net, regular)
    if writer != "export-npz":  # safetensors files are canonical
        assert got[0] == regular.read_bytes()
    else:  # a zip streamed to a pipe has other bytes (data descriptors): compare its members
        import io

        with np.load(io.BytesIO(got[0])) as a, np.load(regular) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_the_input_file_and_directories_are_refused(net, tmp_path):
    src = save_network(net, tmp_path / "net.safetensors")
    raw = src.read_bytes()
    with pytest.raises(NetworkFileError, match="is the input file"):
        export_network(net, src, protect=(src,))
    with pytest.raises(NetworkFileError, match="is the input file"):
        safe_write(tmp_path / "." / "net.safetensors", lambda fh: fh.write(b"x"), protect=(src,))
    assert src.read_bytes() == raw
    with pytest.raises(NetworkFileError, match="is a directory"):
        save_network(net, tmp_path)


def test_the_file_is_canonical_and_sha256sum_identifies_it(net, tmp_path):
    a = save_network(net, tmp_path / "a.safetensors").read_bytes()
    b = save_network(build_network(net.config), tmp_path / "b.safetensors").read_bytes()
    assert a == b
    end = 8 + int.from_bytes(a[:8], "little")
    header = a[8:end].rstrip(b" ")
    parsed = json.loads(header)
    assert header == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    assert list(parsed) == sorted(parsed) and list(parsed["__metadata__"]) == sorted(
        parsed["__metadata__"])
    assert kio.file_sha256(tmp_path / "a.safetensors") == hashlib.sha256(a).hexdigest()


def test_the_manifest_records_sha256sum_and_a_stable_identity(net, tmp_path):
    m1 = write_dataset(net, tmp_path / "one", samples=8, fmt="npz")
    m2 = write_dataset(net, tmp_path / "two", samples=8, fmt="npz")
    raw = (tmp_path / "one" / "network.safetensors").read_bytes()
    assert m1["network"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert m1["network"]["sha256"] == m2["network"]["sha256"]
    assert m1["network"]["id"] == m2["network"]["id"] == network_hash(net)
    other = build_network(net.config, seed=1)
    assert network_hash(other) != network_hash(net)
    assert network_hash(load_network(tmp_path / "one" / "network.safetensors")) == network_hash(
        net)


# --- the loader refuses what the builder refuses ---------------------------------------------


def _save_with(net, tmp_path, monkeypatch, **changes):
    arrays = dict(kio.network_arrays(net))
    arrays.update(changes)
    monkeypatch.setattr(kio, "network_arrays", lambda _net: arrays)
    path = save_network(net, tmp_path / "bad.safetensors")
    monkeypatch.undo()
    return path


def _refused(path, words: str) -> None:
    with pytest.raises(NetworkFileError) as exc:
        load_network(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg


def test_the_loader_refuses_a_positive_bias(net, tmp_path, monkeypatch):
    bias = np.array(net.circuits.bias)
    bias[1, 2] = 0.3
    _refused(_save_with(net, tmp_path, monkeypatch, **{"circuits.bias": bias}), "positive")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_the_loader_refuses_non_finite_weights(net, tmp_path, monkeypatch, value):
    w = np.array(net.circuits.weights)
    w[0, 1, 2, 3] = value
    _refused(_save_with(net, tmp_path, monkeypatch, **{"circuits.weights": w}), "non-finite")


def test_the_loader_refuses_negative_inputs(net, tmp_path, monkeypatch):
    x = np.array(net.circuits.inputs)
    x[0, 0] = -1.0
    _refused(_save_with(net, tmp_path, monkeypatch, **{"circuits.inputs": x}), "negative")


def test_the_loader_refuses_a_repeated_offset_in_a_pattern(net, tmp_path, monkeypatch):
    off = np.array(net.offsets)
    off[1, 0, 1] = off[1, 0, 0]
    _refused(_save_with(net, tmp_path, monkeypatch, **{"patterns.offsets": off}), "repeated")
    design = np.array(net.design)
    design[2, 1] = design[2, 0]
    _refused(_save_with(net, tmp_path, monkeypatch, **{"patterns.design": design}), "repeated")


def test_the_loader_refuses_patterns_that_are_not_the_design(net, tmp_path, monkeypatch):
    off = np.array(net.offsets)
    free = sorted(set(range(net.n)) - set(off[0, 0].tolist()))
    off[0, 0, 0] = free[0]
    _refused(_save_with(net, tmp_path, monkeypatch, **{"patterns.offsets": off}),
             "not the design's patterns")


def test_the_loader_refuses_a_non_finite_read_out_constant(net, tmp_path, monkeypatch):
    _refused(_save_with(net, tmp_path, monkeypatch, **{"readout.c": np.array(np.nan)}),
             "readout.c")
