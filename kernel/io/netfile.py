"""Networks on disk: ``save_network`` / ``load_network``, one safetensors file per network.

The file holds the factorised network (circuit weights, bias and inputs, the pattern design, the
per-layer patterns and the read-out constant) under the names of ``network_arrays``, and in the
safetensors header a small metadata table: a format marker and version, the package version, the
configuration as JSON and a SHA-256 content hash. The inverse index is derived from the patterns
on load (deterministically), so it is not stored.

The hash covers every byte of the file, the header included, with the hash's own 64 hex digits
replaced by zeros: any change to any byte (data, header JSON, even its whitespace padding, or the
8-byte length prefix) is detected on load, and so is a changed hash. Why safetensors rather than
NumPy's npz: no pickle (a file cannot run code when loaded), the header is plain JSON with room for
metadata, the tensors are raw little-endian bytes at known offsets (a bit-exact round trip, and a
whole-file hash is easy to define), and the same file opens in PyTorch, JAX or TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from kernel import validate
from kernel.circuits import Circuits
from kernel.network import Network, NetworkConfig, assemble_network

#: marker in the header metadata of every network file
FORMAT = "cis-network"
#: version of the file layout this code writes and reads
FORMAT_VERSION = "1"
#: metadata key of the content hash
HASH_KEY = "sha256"
_HASH_FILL = "0" * 64


class NetworkFileError(validate.ConfigError):
    """A network file cannot be read or written; the message names the file and the problem."""


def package_version() -> str:
    """The installed version of cis-toolkit ("unknown" when run from a source tree)."""
    from importlib import metadata

    try:
        return metadata.version("cis-toolkit")
    except metadata.PackageNotFoundError:
        return "unknown"


def network_arrays(net: Network) -> dict[str, np.ndarray]:
    """The arrays that define a network (the factorised form), by file key.

    ``circuits.weights`` (L, T, d, d) float64, ``weights[l-1, t]`` is w_t^l;
    ``circuits.bias`` (L, d) float64; ``circuits.inputs`` (T, d) float64;
    ``patterns.design`` (T, S) int32, offsets of each pattern within a block;
    ``patterns.offsets`` (L, T, S) int32, circuit t's pattern at layer l is
    ``offsets[l-1, t]``; ``readout.c`` () float64, the read-out constant c.
    """
    return {
        "circuits.weights": net.circuits.weights,
        "circuits.bias": net.circuits.bias,
        "circuits.inputs": net.circuits.inputs,
        "patterns.design": net.design,
        "patterns.offsets": net.offsets,
        "readout.c": np.array(net.read_c, dtype=np.float64),
    }


def safetensors_numpy() -> Any:
    """``safetensors.numpy``, or a one-line NetworkFileError naming the extra that provides it."""
    try:
        import safetensors.numpy
    except ModuleNotFoundError:
        raise NetworkFileError(
            "network files need the safetensors package: pip install 'cis-toolkit[io]'"
        ) from None
    return safetensors.numpy


def _hash_field(digest: str) -> bytes:
    return f'"{HASH_KEY}":"{digest}"'.encode()


def _content_hash(head: bytes | bytearray, body: memoryview) -> str:
    """SHA-256 of the file with the stored hash's digits zeroed (``head`` already has them)."""
    h = hashlib.sha256(head)
    h.update(body)
    return h.hexdigest()


def save_network(net: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` to ``path`` (one safetensors file); returns the path.

    The file is written to a temporary name in the same directory and renamed, so an interrupted
    save never leaves a partial file under ``path``.
    """
    path = Path(path)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "config": json.dumps(net.config.as_dict(), sort_keys=True),
        "family": net.circuits.family,
        HASH_KEY: _HASH_FILL,
    }
    blob = safetensors_numpy().save(network_arrays(net), metadata=metadata)
    end = 8 + int.from_bytes(blob[:8], "little")
    head = bytes(blob[:end])
    if head.count(_hash_field(_HASH_FILL)) != 1:  # pragma: no cover - safetensors writes it once
        raise NetworkFileError(f"{path}: could not place the content hash in the header")
    body = memoryview(blob)[end:]
    digest = _content_hash(head, body)
    head = head.replace(_hash_field(_HASH_FILL), _hash_field(digest))
    return write_atomic(path, lambda fh: (fh.write(head), fh.write(body)))


def _new_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path`` and rename it to ``path``, so an
    interrupted write never leaves a partial file; NetworkFileError (one line) on an OS error."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.chmod(tmp, _new_file_mode())  # mkstemp makes 0600; give what open() would
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise NetworkFileError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def _header(path: Path, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(header end, header JSON, metadata), checking size, JSON, format marker and version."""
    if len(raw) < 8:
        raise NetworkFileError(f"{path}: not a cis network file (only {len(raw)} bytes)")
    size = int.from_bytes(raw[:8], "little")
    if raw[8:9] != b"{":  # a safetensors header is a JSON object right after its length
        raise NetworkFileError(f"{path}: not a cis network file (no safetensors header)")
    if size > len(raw) - 8:
        raise NetworkFileError(
            f"{path}: truncated or not a cis network file (header of {size} bytes announced, "
            f"{len(raw) - 8} bytes follow)"
        )
    try:
        header = json.loads(raw[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NetworkFileError(
            f"{path}: not a cis network file (header is not valid JSON)"
        ) from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NetworkFileError(f"{path}: not a cis network file (no {FORMAT!r} marker)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise NetworkFileError(
            f"{path}: written in format version {version!r} (package {meta.get('package_version')}"
            f"); this version of cis-toolkit reads version {FORMAT_VERSION!r}"
        )
    return 8 + size, header, meta


def _data_size(header: dict[str, Any]) -> int | None:
    """Bytes of tensor data the header announces (None if its entries are malformed)."""
    try:
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    return max(ends, default=0)


def _check_hash(path: Path, raw: bytes, end: int, header: dict[str, Any], stored: Any) -> None:
    expected = _data_size(header)
    if expected is not None and len(raw) - end < expected:
        raise NetworkFileError(
            f"{path}: truncated ({len(raw)} bytes, the header announces {end + expected})"
        )
    if not (isinstance(stored, str) and re.fullmatch("[0-9a-f]{64}", stored)):
        raise NetworkFileError(f"{path}: corrupt (content hash missing or malformed)")
    field = _hash_field(stored)
    if raw[:end].count(field) != 1:
        raise NetworkFileError(f"{path}: corrupt (content hash field not found in the header)")
    head = raw[:end].replace(field, _hash_field(_HASH_FILL))
    digest = _content_hash(head, memoryview(raw)[end:])
    if digest != stored:
        raise NetworkFileError(
            f"{path}: corrupt (content hash {digest[:12]}... does not match the stored "
            f"{stored[:12]}...)"
        )


def _array(path: Path, arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...],
           dtype: type) -> np.ndarray:
    arr = arrays.get(key)
    if arr is None or arr.shape != shape or arr.dtype != np.dtype(dtype):
        got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
        want = f"{np.dtype(dtype)} {shape}"
        raise NetworkFileError(f"{path}: array {key!r} is {got}, expected {want}")
    return np.array(arr, order="C")  # an owned, writable copy


def _network(path: Path, meta: dict[str, str], arrays: dict[str, np.ndarray]) -> Network:
    """Rebuild the Network from checked arrays (the inverse index is derived from the patterns)."""
    try:
        cfg = NetworkConfig(**json.loads(meta["config"])).validated()
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise NetworkFileError(f"{path}: invalid configuration ({exc})") from None
    n, S, T, L, d = cfg.D // cfg.d, cfg.S, int(cfg.T), cfg.L, cfg.d  # type: ignore[arg-type]
    offsets = _array(path, arrays, "patterns.offsets", (L, T, S), np.int32)
    design = _array(path, arrays, "patterns.design", (T, S), np.int32)
    if offsets.min(initial=0) < 0 or offsets.max(initial=0) >= n:
        raise NetworkFileError(f"{path}: patterns.offsets has entries outside [0, n={n})")
    family = meta.get("family")
    if family != cfg.family:
        raise NetworkFileError(f"{path}: family {family!r} disagrees with the configuration")
    circuits = Circuits(
        _array(path, arrays, "circuits.weights", (L, T, d, d), np.float64),
        _array(path, arrays, "circuits.bias", (L, d), np.float64),
        _array(path, arrays, "circuits.inputs", (T, d), np.float64),
        family,
    )
    read_c = _array(path, arrays, "readout.c", (), np.float64)
    return assemble_network(cfg, circuits, design, offsets, float(read_c))


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``; NetworkFileError (one line) if it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NetworkFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_network(path: str | os.PathLike[str]) -> tuple[Network, dict[str, str]]:
    """``load_network`` that also returns the file's metadata (format, versions, config, hash)."""
    path = Path(path)
    raw = read_file(path)
    end, header, meta = _header(path, raw)
    _check_hash(path, raw, end, header, meta.get(HASH_KEY))
    reader = safetensors_numpy()
    try:
        arrays = reader.load(raw)
    except Exception as exc:  # the hash matched, so this is a file we did not write
        raise NetworkFileError(f"{path}: unreadable tensors ({exc})") from None
    return _network(path, meta, arrays), dict(meta)


def load_network(path: str | os.PathLike[str]) -> Network:
    """Read a network written by ``save_network``; the loaded network is bit-identical.

    Raises NetworkFileError (a ConfigError, one line naming the file) when the file is missing,
    truncated, corrupt (content hash), of another format version, or not a network file.
    """
    return read_network(path)[0]
