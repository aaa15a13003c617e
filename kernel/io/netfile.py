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
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from kernel import validate
from kernel.circuits import Circuits, circuits_from_arrays
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


#: safetensors dtype codes of the arrays we write
_DTYPES = {"float64": "F64", "float32": "F32", "int64": "I64", "int32": "I32", "uint8": "U8",
           "bool": "BOOL"}


def encode_safetensors(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file of ``arrays`` with string ``metadata``, in canonical form: tensors in
    name order, header JSON with sorted keys and no spaces, padded with spaces to a multiple of 8
    bytes. The same arrays and metadata give the same bytes in every process (the safetensors
    library's own writer orders the header keys differently from one call to the next)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    chunks, offset = [], 0
    for name in sorted(arrays):
        arr = np.asarray(arrays[name])
        code = _DTYPES.get(arr.dtype.name)
        if code is None:  # pragma: no cover - only the dtypes above are ever written
            raise NetworkFileError(f"array {name!r} has dtype {arr.dtype}, which is not written")
        data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as ``sha256sum`` prints it."""
    return hashlib.sha256(read_file(path)).hexdigest()


def network_bytes(net: Network) -> bytes:
    """The network file of ``net`` as bytes (what ``save_network`` writes)."""
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "config": json.dumps(net.config.as_dict(), sort_keys=True),
        "family": net.circuits.family,
        HASH_KEY: _HASH_FILL,
    }
    blob = encode_safetensors(network_arrays(net), metadata)
    end = 8 + int.from_bytes(blob[:8], "little")
    head = blob[:end]
    if head.count(_hash_field(_HASH_FILL)) != 1:  # pragma: no cover - written once above
        raise NetworkFileError("could not place the content hash in the header")
    body = memoryview(blob)[end:]
    head = head.replace(_hash_field(_HASH_FILL), _hash_field(_content_hash(head, body)))
    return head + bytes(body)


def network_hash(net: Network) -> str:
    """A canonical identity of the network: SHA-256 of its arrays (name order, little-endian
    bytes, dtype and shape) and its configuration as sorted JSON. Independent of the package
    version and of how or where the network was stored; equal networks give equal hashes."""
    h = hashlib.sha256(json.dumps(net.config.as_dict(), sort_keys=True).encode())
    h.update(net.circuits.family.encode())
    for name, arr in sorted(network_arrays(net).items()):
        arr = np.asarray(arr)
        h.update(f"|{name}|{arr.dtype.name}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def save_network(net: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` to ``path`` (one safetensors file, canonical: the same network gives the same
    bytes, so ``sha256sum`` identifies it); returns the path.

    The file is written as ``safe_write`` does: to a temporary name beside ``path`` and renamed,
    so an interrupted save never leaves a partial file; a symbolic link is refused and a device
    or FIFO is written in place, never replaced.
    """
    data = network_bytes(net)
    return safe_write(path, lambda fh: fh.write(data))


def _new_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _refuse(path: Path, why: str) -> None:
    raise NetworkFileError(f"{path}: {why}")


def safe_write(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], Any],
    *,
    protect: tuple[str | os.PathLike[str], ...] = (),
) -> Path:
    """Call ``write(fh)`` to produce the file ``path``, never replacing what must not be replaced.

    - a symbolic link is refused (replacing it would cut the link; writing through it would
      surprise whoever made it): give its target instead;
    - an existing target that is not a regular file (a device such as ``/dev/null``, a FIFO) is
      written in place, so it stays what it is; a directory is refused;
    - ``path`` being the same file as one of ``protect`` (the input) is refused;
    - otherwise ``write`` goes to a temporary file beside ``path`` that is renamed over it, so an
      interrupted write never leaves a partial file.

    Raises NetworkFileError (one line naming the file) on any of these and on OS errors.
    """
    path = Path(path)
    try:
        if path.is_symlink():
            _refuse(path, "is a symbolic link; refusing to replace it (write to its target)")
        mode = path.stat().st_mode if path.exists() else None
        for other in protect:
            if mode is not None and Path(other).exists() and os.path.samefile(path, other):
                _refuse(path, f"is the input file {other}; refusing to write over it")
        if mode is not None and stat.S_ISDIR(mode):
            _refuse(path, "is a directory")
        if mode is not None and not stat.S_ISREG(mode):  # device, FIFO, socket: in place
            with open(path, "wb") as fh:
                write(fh)
            return path
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


def _check_patterns(path: Path, design: np.ndarray, offsets: np.ndarray, n: int) -> None:
    """What the builder guarantees of patterns: offsets in [0, n), no offset twice within a
    pattern, and every layer's patterns a reordering of the design's rows."""
    for name, arr in (("patterns.design", design), ("patterns.offsets", offsets)):
        if arr.min(initial=0) < 0 or arr.max(initial=0) >= n:
            raise NetworkFileError(f"{path}: {name} has entries outside [0, n={n})")
        srt = np.sort(arr, axis=-1)
        if (srt[..., 1:] == srt[..., :-1]).any():
            raise NetworkFileError(f"{path}: {name} has a pattern with a repeated offset")
    rows = np.unique(np.sort(design, axis=1), axis=0, return_counts=True)
    for layer in range(offsets.shape[0]):
        got = np.unique(np.sort(offsets[layer], axis=1), axis=0, return_counts=True)
        if got[0].shape != rows[0].shape or any(
            not np.array_equal(a, b) for a, b in zip(got, rows)
        ):
            raise NetworkFileError(
                f"{path}: patterns.offsets at layer {layer + 1} are not the design's patterns"
            )


def _circuits(path: Path, arrays: dict[str, np.ndarray], shape: tuple[int, int, int],
              family: str) -> Circuits:
    """The circuits, with the builder's checks (finite weights, bias <= 0, inputs >= 0)."""
    L, T, d = shape
    w = _array(path, arrays, "circuits.weights", (L, T, d, d), np.float64)
    b = _array(path, arrays, "circuits.bias", (L, d), np.float64)
    x = _array(path, arrays, "circuits.inputs", (T, d), np.float64)
    try:
        checked = circuits_from_arrays(w.transpose(1, 0, 2, 3), b, x)
    except validate.ConfigError as exc:
        raise NetworkFileError(f"{path}: invalid circuits ({exc})") from None
    return Circuits(checked.weights, checked.bias, checked.inputs, family)


def network_from_arrays(path: Path, meta: dict[str, str], arrays: dict[str, np.ndarray]
                        ) -> Network:
    """Rebuild the Network from checked arrays (the inverse index is derived from the patterns).

    A file whose hash matches is still checked as the builder checks its arguments, so a file
    written by other code cannot run what ``build_network`` would refuse."""
    try:
        cfg = NetworkConfig(**json.loads(meta["config"])).validated()
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise NetworkFileError(f"{path}: invalid configuration ({exc})") from None
    n, S, T, L, d = cfg.D // cfg.d, cfg.S, int(cfg.T), cfg.L, cfg.d  # type: ignore[arg-type]
    offsets = _array(path, arrays, "patterns.offsets", (L, T, S), np.int32)
    design = _array(path, arrays, "patterns.design", (T, S), np.int32)
    _check_patterns(path, design, offsets, n)
    family = meta.get("family")
    if family != cfg.family:
        raise NetworkFileError(f"{path}: family {family!r} disagrees with the configuration")
    circuits = _circuits(path, arrays, (L, T, d), str(family))
    read_c = float(_array(path, arrays, "readout.c", (), np.float64))
    if not np.isfinite(read_c):
        raise NetworkFileError(f"{path}: readout.c={read_c} is not finite")
    return assemble_network(cfg, circuits, design, offsets, read_c)


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
    return network_from_arrays(path, meta, arrays), dict(meta)


def load_network(path: str | os.PathLike[str]) -> Network:
    """Read a network written by ``save_network``; the loaded network is bit-identical.

    Raises NetworkFileError (a ConfigError, one line naming the file) when the file is missing,
    truncated, corrupt (content hash), of another format version, or not a network file.
    """
    return read_network(path)[0]
