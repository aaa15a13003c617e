"""Datasets: sampled forward passes of a network with their ground truth, written in shards.

Each row is one sample: its active circuits and their inputs, and for each chosen layer the
ground-truth activations a_t^l of the active circuits (the small circuits run on their own,
``kernel.circuits.run_small``) beside their read-outs U_t^l A^l from the large network
(``kernel.engines.forward``). Optionally the read-outs of listed circuits (``--inactive``) and
the large network's activations A^l. The batch of shard k is drawn from a seed derived from
(seed, k), so a dataset is reproducible from its seed and shard size. A ``manifest.json``
describes the columns; the shards are in ``shards/`` and the network itself beside them
(``network.safetensors``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kernel import validate
from kernel.engines import ENGINES, dense_forward, forward, sample_batch
from kernel.io.netfile import package_version, read_network, save_network
from kernel.network import Network

FORMAT = "cis-dataset"
FORMAT_VERSION = 1
FORMATS = ("parquet", "npz")
#: default limit on the dataset's size on disk (before compression); larger ones need ``force``
SIZE_LIMIT = 4 * 2**30
#: default shard: at most this many samples, and at most SHARD_BYTES of columns
SHARD_SAMPLES = 10_000
SHARD_BYTES = 256 * 2**20
NETWORK_FILE = "network.safetensors"
MANIFEST = "manifest.json"
#: sub-directory of the shards (only shards, so ``pandas.read_parquet(out / SHARDS)`` reads all)
SHARDS = "shards"


@dataclass(frozen=True)
class Column:
    """One column: per-sample ``shape`` and ``dtype``, and what it holds."""

    shape: tuple[int, ...]
    dtype: str
    description: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def parse_layers(layers: str | Sequence[int], L: int) -> tuple[int, ...]:
    """``"all"`` or a comma-separated list (or sequence) of layers in 1..L, sorted, distinct."""
    if isinstance(layers, str):
        if layers.strip() == "all":
            return tuple(range(1, L + 1))
        try:
            items: Sequence[Any] = [int(x) for x in layers.split(",")]
        except ValueError:
            raise validate.ConfigError(
                f"layers={layers!r} must be 'all' or a comma-separated list of layers 1..L={L}"
            ) from None
    else:
        items = layers
    out = sorted({validate.integer("layers", x, low=1, high=L) for x in items})
    if not out:
        raise validate.ConfigError("layers is empty; give 'all' or layers in 1..L")
    return tuple(out)


def parse_ids(ids: str | Sequence[int] | None, T: int) -> np.ndarray:
    """Circuit ids from a comma-separated list (or sequence), each in [0, T); may be empty."""
    if ids is None or (isinstance(ids, str) and not ids.strip()):
        return np.zeros(0, dtype=np.int64)
    if isinstance(ids, str):
        try:
            items: Sequence[Any] = [int(x) for x in ids.split(",")]
        except ValueError:
            raise validate.ConfigError(
                f"inactive={ids!r} must be a comma-separated list of circuit ids"
            ) from None
    else:
        items = ids
    return np.array([validate.integer("inactive", x, low=0, high=T - 1) for x in items],
                    dtype=np.int64)


def columns(
    net: Network, z: int, layers: Sequence[int], inactive: np.ndarray, activations: bool
) -> dict[str, Column]:
    """The dataset's columns, in order."""
    d, R = net.d, inactive.size
    cols = {
        "sample": Column((), "int64", "index of the sample in the dataset"),
        "active": Column((z,), "int64", "ids of the z active circuits"),
        "inputs": Column((z, d), "float64", "a_t^0: inputs of the active circuits"),
    }
    for layer in layers:
        cols[f"a_l{layer}"] = Column(
            (z, d), "float64", f"ground truth a_t^{layer} of the active circuits (run alone)"
        )
        cols[f"readout_l{layer}"] = Column(
            (z, d), "float64", f"read-outs U_t^{layer} A^{layer} of the active circuits"
        )
        if R:
            cols[f"inactive_readout_l{layer}"] = Column(
                (R, d), "float64",
                f"read-outs U_t^{layer} A^{layer} of the listed circuits 'inactive_ids' (their "
                "ground truth is 0 unless the circuit is in this sample's active set)",
            )
        if activations:
            cols[f"A_l{layer}"] = Column(
                (net.D,), "float64", f"large-network activations A^{layer}"
            )
    return cols


def _shard_seed(seed: int, shard: int) -> int:
    return int(np.random.SeedSequence([seed, shard]).generate_state(1)[0])


def shard_arrays(
    net: Network,
    cols: dict[str, Column],
    *,
    first: int,
    size: int,
    z: int,
    layers: Sequence[int],
    inactive: np.ndarray,
    seed: int,
    engine: str = "auto",
    dense_weights: list[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The columns of ``size`` samples from ``first`` on, each (size, *shape)."""
    batch = sample_batch(net, size, z, seed=seed)
    res = forward(net, batch, engine=engine, readout=inactive if inactive.size else None)
    out: dict[str, np.ndarray] = {
        "sample": np.arange(first, first + size, dtype=np.int64),
        "active": batch.active.astype(np.int64),
        "inputs": batch.inputs,
    }
    for layer in layers:
        out[f"a_l{layer}"] = res.a[:, layer]
        out[f"readout_l{layer}"] = res.active_readout[:, layer]
        if inactive.size:
            out[f"inactive_readout_l{layer}"] = res.readout[:, layer]  # type: ignore[index]
        if dense_weights is not None:  # the dense pass up to layer l returns A^l
            out[f"A_l{layer}"] = dense_forward(net, dense_weights[: layer - 1], batch, np.float64)
    if list(out) != list(cols):  # pragma: no cover - columns() and this function must agree
        raise RuntimeError("dataset columns out of step with columns()")
    return out


def _write_parquet(arrays: dict[str, np.ndarray], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = {}
    for name, arr in arrays.items():
        width = int(np.prod(arr.shape[1:], dtype=np.int64))
        flat = pa.array(np.ascontiguousarray(arr).reshape(-1))
        fields[name] = flat if arr.ndim == 1 else pa.FixedSizeListArray.from_arrays(flat, width)
    pq.write_table(pa.table(fields), path)


def _write_shard(arrays: dict[str, np.ndarray], path: Path, fmt: str) -> None:
    if fmt == "parquet":
        _write_parquet(arrays, path)
    else:
        with open(path, "wb") as fh:
            members: dict[str, Any] = arrays  # (numpy's stub types ** as allow_pickle)
            np.savez(fh, **members)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise validate.ConfigError(f"out={str(out)!r} exists and is not an empty directory")


def _check_size(net: Network, cols: dict[str, Column], samples: int, activations: bool,
                limit: int) -> None:
    """Refuse (ConfigError with the estimate) a dataset, or the dense matrices that A^l needs,
    over ``limit`` bytes."""
    per_sample = sum(c.nbytes for c in cols.values())
    total = per_sample * samples
    if total > limit:
        raise validate.ConfigError(
            f"the dataset would take {total / 2**30:.2f} GiB ({per_sample} bytes per sample), "
            f"over the limit of {limit / 2**30:.2f} GiB (use --force, fewer --samples or layers)"
        )
    dense = 8 * (net.L - 1) * net.D**2
    if activations and dense > limit:
        raise validate.ConfigError(
            f"--activations forms the dense W^2..W^L of D={net.D}: {dense / 2**30:.2f} GiB, over "
            f"the limit of {limit / 2**30:.2f} GiB (use --force)"
        )


def _manifest(meta: dict[str, str], cols: dict[str, Column], shards: list[dict[str, Any]],
              **fields: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "network": {"file": NETWORK_FILE, "sha256": meta["sha256"],
                    "config": json.loads(meta["config"])},
        **fields,
        "flattening": "parquet: columns of more than one number per sample are fixed-size lists "
                      "of the row-major flattened shape; npz: arrays of shape (rows, *shape)",
        "columns": {k: {"shape": list(c.shape), "dtype": c.dtype, "description": c.description}
                    for k, c in cols.items()},
        "shards": shards,
    }


def write_dataset(
    net: Network,
    out: str | os.PathLike[str],
    *,
    samples: int,
    z: int = 2,
    layers: str | Sequence[int] = "all",
    fmt: str = "parquet",
    seed: int = 0,
    shard_size: int | None = None,
    inactive: str | Sequence[int] | None = None,
    activations: bool = False,
    engine: str = "auto",
    limit: int = SIZE_LIMIT,
    force: bool = False,
    progress: Callable[[Sequence[int], str], Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Write a dataset of ``samples`` forward passes of ``net`` to the directory ``out``.

    Returns the manifest (also written to ``out/manifest.json``, last: a directory without it is
    incomplete). The size is estimated before any work; over ``limit`` bytes the call is refused
    (ConfigError with the estimate) unless ``force``. ``out`` must not exist or be an empty
    directory. ``progress(items, description)``, if given, wraps the loop over shards.
    """
    samples = validate.integer("samples", samples, low=1)
    z = validate.integer("z", z, low=1, high=net.T)
    seed = validate.seed(seed)
    fmt = validate.choice("format", fmt, FORMATS)
    engine = validate.choice("engine", engine, ENGINES)
    layer_list = parse_layers(layers, net.L)
    ids = parse_ids(inactive, net.T)
    cols = columns(net, z, layer_list, ids, activations)
    if not force:
        _check_size(net, cols, samples, activations, limit)
    if shard_size is None:
        shard_size = max(1, min(SHARD_SAMPLES, SHARD_BYTES // sum(c.nbytes for c in cols.values())))
    shard_size = min(validate.integer("shard_size", shard_size, low=1), samples)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ModuleNotFoundError:  # pragma: no cover - the io extra is installed for the tests
            raise validate.ConfigError(
                "format 'parquet' needs pyarrow: pip install 'cis-toolkit[io]' (or use npz)"
            ) from None
    out = Path(out)
    _check_out(out)
    dense_weights = None
    if activations:  # A^l comes from the dense pass: form W^2..W^L once
        dense_weights = [net.dense_layer(layer).T for layer in range(2, net.L + 1)]
    n_shards = -(-samples // shard_size)
    steps: Iterable[int] = range(n_shards)
    if progress is not None:
        steps = progress(range(n_shards), f"{samples} samples, {n_shards} shards")
    shards = []
    try:
        (out / SHARDS).mkdir(parents=True, exist_ok=True)
        meta = read_network(save_network(net, out / NETWORK_FILE))[1]
        for k in steps:
            first = k * shard_size
            size = min(shard_size, samples - first)
            arrays = shard_arrays(
                net, cols, first=first, size=size, z=z, layers=layer_list, inactive=ids,
                seed=_shard_seed(seed, k), engine=engine, dense_weights=dense_weights,
            )
            name = f"{SHARDS}/shard-{k:05d}.{fmt}"
            _write_shard(arrays, out / name, fmt)
            shards.append({"file": name, "rows": size, "first_sample": first})
        manifest = _manifest(
            meta, cols, shards, samples=samples, z=z, seed=seed, shard_size=shard_size,
            layers=list(layer_list), inactive_ids=ids.tolist(), activations=activations,
            engine=engine, file_format=fmt,
        )
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    except OSError as exc:
        why = exc.strerror or exc
        raise validate.ConfigError(f"out={str(out)!r}: cannot write ({why})") from None
    return manifest
