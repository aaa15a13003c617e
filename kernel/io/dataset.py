"""Datasets: sampled forward passes of a network with their ground truth, written in shards.

Each row is one sample: its active circuits and their inputs (also as the model input x, T*d
numbers stored sparsely, and as an active mask), and for each chosen layer the ground-truth
activations a_t^l of the active circuits (the small circuits run on their own,
``kernel.circuits.run_small``) beside their read-outs U_t^l A^l from the large network
(``kernel.engines.forward``). Optionally the read-outs of listed circuits (``inactive``) and the
large network's activations A^0..A^L.

Which circuits are active: exactly z per sample (``z``), each circuit independently with
probability p (``p``), or a Poisson number of them with mean ``z_mean``; with a varying count the
per-circuit columns are padded to the largest count of the dataset (``n_active`` gives the count,
padding is -1 in ``active`` and 0 elsewhere). Their inputs: the family's default (``inputs=
"default"``) or random magnitudes and directions within the family's valid domain (``"random"``,
``random_inputs``). The counts are drawn first from a stream of (seed, "counts"), and the batch of
shard k from a seed derived from (seed, k), so a dataset is reproducible from its seed and shard
size. A ``manifest.json`` describes the columns; the shards are in ``shards/`` and the network
itself beside them (``network.safetensors``).
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
from kernel.circuits import rotation_inputs, sample_inputs
from kernel.engines import ENGINES, Batch, dense_forward, forward, make_batch, sample_batch
from kernel.io.netfile import (
    file_sha256,
    network_hash,
    package_version,
    safe_write,
    save_network,
)
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
#: input distributions: the family's default inputs, or random magnitudes and directions
INPUTS = ("default", "random")
#: range of the random input magnitudes: |a^0| for the families of unit-norm inputs (and user
#: circuits, whose default input direction is kept), the radius of x for ``rotation`` (at most 1,
#: so that the stored x + 1 stays >= 0)
RANDOM_MAGNITUDE = (0.5, 1.5)
ROTATION_RADIUS = (0.5, 1.0)


@dataclass(frozen=True)
class Activity:
    """How many circuits are active per sample: ``kind`` "fixed" (exactly ``value`` = z),
    "bernoulli" (each circuit with probability ``value`` = p) or "poisson" (a Poisson count of
    mean ``value``, at most T), the circuits then drawn uniformly without repetition."""

    kind: str
    value: float

    def counts(self, rng: np.random.Generator, size: int, T: int) -> np.ndarray:
        if self.kind == "fixed":
            return np.full(size, int(self.value), dtype=np.int64)
        if self.kind == "bernoulli":
            return rng.binomial(T, self.value, size).astype(np.int64)
        return np.minimum(rng.poisson(self.value, size), T).astype(np.int64)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


def activity(T: int, z: int | None = None, p: float | None = None,
             z_mean: float | None = None) -> Activity:
    """The Activity of at most one of ``z``, ``p``, ``z_mean`` (none: z = 2)."""
    given = [k for k, v in (("z", z), ("p", p), ("z_mean", z_mean)) if v is not None]
    if len(given) > 1:
        raise validate.ConfigError(f"give one of z, p, z_mean (got {', '.join(given)})")
    if p is not None:
        return Activity("bernoulli", validate.real("p", p, low=0.0, high=1.0))
    if z_mean is not None:
        return Activity("poisson", validate.real("z_mean", z_mean, low=0.0, high=float(T)))
    return Activity("fixed", float(validate.integer("z", 2 if z is None else z, low=1, high=T)))


def random_inputs(net: Network, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inputs (B, k, d) with random magnitudes and directions inside each family's domain:
    ``rotation``: the on-indicator as usual and x = r (cos theta, sin theta), theta uniform,
    r uniform in ROTATION_RADIUS; user circuits: the default input scaled by a magnitude uniform
    in RANDOM_MAGNITUDE; the other families: a direction uniform on the unit sphere's
    non-negative orthant (a^0 is a ReLU state) times such a magnitude."""
    shape = active.shape
    if net.circuits.family == "rotation":
        theta = rng.uniform(0.0, 2.0 * np.pi, shape)
        x = rotation_inputs(net.d, theta)
        r = rng.uniform(*ROTATION_RADIUS, shape)[..., None]
        x[..., -2:] = 1.0 + r * (x[..., -2:] - 1.0)  # the last two entries hold x + 1
        return x
    mag = rng.uniform(*RANDOM_MAGNITUDE, shape)[..., None]
    if net.circuits.family == "user":
        return net.circuits.inputs[active] * mag
    g = np.abs(rng.standard_normal((*shape, net.d)))
    return g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-300) * mag


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
    net: Network, k: int, layers: Sequence[int], inactive: np.ndarray, activations: bool
) -> dict[str, Column]:
    """The dataset's columns, in order (k: the largest number of active circuits per sample)."""
    d, R, T = net.d, inactive.size, net.T
    cols = {
        "sample": Column((), "int64", "index of the sample in the dataset"),
        "active": Column((k,), "int64", "ids of the active circuits (padded with -1)"),
        "inputs": Column((k, d), "float64", "a_t^0: inputs of the active circuits"),
        "n_active": Column((), "int64", "number of active circuits"),
        "active_mask": Column((T,), "bool", "active_mask[t]: circuit t is active"),
        "x_index": Column((k * d,), "int64",
                          "model input x (T*d) sparse: indices t*d + j of its nonzeros (pad -1)"),
        "x_value": Column((k * d,), "float64", "model input x: the values at x_index (pad 0)"),
    }
    if activations:
        cols["A_l0"] = Column((net.D,), "float64", "A^0: the embedded input, net.0.weight @ x")
    for layer in layers:
        cols[f"a_l{layer}"] = Column(
            (k, d), "float64", f"ground truth a_t^{layer} of the active circuits (run alone)"
        )
        cols[f"readout_l{layer}"] = Column(
            (k, d), "float64", f"read-outs U_t^{layer} A^{layer} of the active circuits"
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


def _count_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x636F756E74]))  # "count"


def _distinct(rng: np.random.Generator, m: int, k: int, T: int) -> np.ndarray:
    """(m, k) rows of k distinct circuits drawn uniformly."""
    if k > T // 2:  # dense: a permutation per row
        return np.argsort(rng.random((m, T)), axis=1)[:, :k]
    active = rng.integers(0, T, size=(m, k))
    while True:  # redraw rows with repeated circuits
        srt = np.sort(active, axis=1)
        bad = np.nonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))[0]
        if bad.size == 0:
            return active
        active[bad] = rng.integers(0, T, size=(bad.size, k))


def draw_samples(net: Network, counts: np.ndarray, inputs: str, seed: int
                 ) -> list[tuple[np.ndarray, Batch]]:
    """The samples of one shard, grouped by their number of active circuits: (rows, Batch) per
    count > 0 (rows: positions in the shard). Fixed z with default inputs draws exactly as
    ``sample_batch(net, size, z, seed=seed)``."""
    if inputs == "default" and counts.size and (counts == counts[0]).all() and counts[0] > 0:
        return [(np.arange(counts.size), sample_batch(net, counts.size, int(counts[0]),
                                                      seed=seed))]
    rng = np.random.default_rng(seed)
    groups = []
    for k in np.unique(counts[counts > 0]):
        rows = np.nonzero(counts == k)[0]
        active = _distinct(rng, rows.size, int(k), net.T)
        x = (sample_inputs(net.circuits, active, rng) if inputs == "default"
             else random_inputs(net, active, rng))
        groups.append((rows, make_batch(net, active, x)))
    return groups


def embedded_input(net: Network, batch: Batch) -> np.ndarray:
    """A^0 (B, D): each active circuit's w_t^1 a_t^0 on its neurons of layer 1."""
    B, z = batch.active.shape
    h = np.einsum("bzij,bzj->bzi", net.circuits.weights[0][batch.active], batch.inputs)
    rows = np.arange(net.d)[None, :, None] * net.n + net.offsets[0][batch.active][:, :, None, :]
    out = np.zeros((B, net.D))
    np.add.at(out, (np.arange(B)[:, None, None, None], rows), h[..., None])
    return out


def shard_arrays(
    net: Network,
    cols: dict[str, Column],
    *,
    first: int,
    counts: np.ndarray,
    layers: Sequence[int],
    inactive: np.ndarray,
    seed: int,
    inputs: str = "default",
    engine: str = "auto",
    dense_weights: list[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The columns of the ``counts.size`` samples from ``first`` on, each (size, *shape);
    ``counts`` holds each sample's number of active circuits."""
    size = counts.size
    out = {name: np.zeros((size, *c.shape), dtype=c.dtype) for name, c in cols.items()}
    out["sample"] = np.arange(first, first + size, dtype=np.int64)
    out["active"][:] = -1
    out["x_index"][:] = -1
    out["n_active"] = counts.astype(np.int64)
    for rows, batch in draw_samples(net, counts, inputs, seed):
        k, d = batch.z, net.d
        res = forward(net, batch, engine=engine, readout=inactive if inactive.size else None)
        out["active"][rows, :k] = batch.active
        out["inputs"][rows, :k] = batch.inputs
        out["active_mask"][rows[:, None], batch.active] = True
        out["x_index"][rows, : k * d] = (batch.active[:, :, None] * d + np.arange(d)).reshape(
            rows.size, k * d)
        out["x_value"][rows, : k * d] = batch.inputs.reshape(rows.size, k * d)
        if dense_weights is not None:
            out["A_l0"][rows] = embedded_input(net, batch)
        for layer in layers:
            out[f"a_l{layer}"][rows, :k] = res.a[:, layer]
            out[f"readout_l{layer}"][rows, :k] = res.active_readout[:, layer]
            if inactive.size:
                out[f"inactive_readout_l{layer}"][rows] = res.readout[:, layer]  # type: ignore
            if dense_weights is not None:  # the dense pass up to layer l returns A^l
                out[f"A_l{layer}"][rows] = dense_forward(net, dense_weights[: layer - 1], batch,
                                                         np.float64)
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
        members: dict[str, Any] = arrays  # (numpy's stub types ** as allow_pickle)
        safe_write(path, lambda fh: np.savez(fh, **members))


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


def _manifest(net: Network, path: Path, cols: dict[str, Column], shards: list[dict[str, Any]],
              **fields: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "network": {"file": NETWORK_FILE, "sha256": file_sha256(path), "id": network_hash(net),
                    "config": net.config.as_dict()},
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
    z: int | None = None,
    p: float | None = None,
    z_mean: float | None = None,
    inputs: str = "default",
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

    ``z`` (exactly z active circuits per sample; 2 if none of the three is given), ``p`` (each
    circuit active with probability p) or ``z_mean`` (a Poisson number of active circuits) say
    how many circuits are active; ``inputs`` ("default" or "random", ``random_inputs``) what they
    are fed. Returns the manifest (also written to ``out/manifest.json``, last: a directory
    without it is incomplete). The size is estimated before any work; over ``limit`` bytes the
    call is refused (ConfigError with the estimate) unless ``force``. ``out`` must not exist or
    be an empty directory. ``progress(items, description)``, if given, wraps the loop over shards.
    """
    samples = validate.integer("samples", samples, low=1)
    act = activity(net.T, z, p, z_mean)
    inputs = validate.choice("inputs", inputs, INPUTS)
    seed = validate.seed(seed)
    fmt = validate.choice("format", fmt, FORMATS)
    engine = validate.choice("engine", engine, ENGINES)
    layer_list = parse_layers(layers, net.L)
    ids = parse_ids(inactive, net.T)
    if not force:  # the estimate at the mean count, before the counts are drawn
        mean_k = max(1, int(np.ceil(act.value * net.T if act.kind == "bernoulli" else act.value)))
        _check_size(net, columns(net, mean_k, layer_list, ids, activations), samples,
                    activations, limit)
    counts = act.counts(_count_rng(seed), samples, net.T)
    cols = columns(net, max(1, int(counts.max())), layer_list, ids, activations)
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
        net_path = save_network(net, out / NETWORK_FILE)
        for k in steps:
            first = k * shard_size
            size = min(shard_size, samples - first)
            arrays = shard_arrays(
                net, cols, first=first, counts=counts[first:first + size], layers=layer_list,
                inactive=ids, seed=_shard_seed(seed, k), inputs=inputs, engine=engine,
                dense_weights=dense_weights,
            )
            name = f"{SHARDS}/shard-{k:05d}.{fmt}"
            _write_shard(arrays, out / name, fmt)
            shards.append({"file": name, "rows": size, "first_sample": first})
        manifest = _manifest(
            net, net_path, cols, shards, samples=samples,
            z=int(act.value) if act.kind == "fixed" else None, activity=act.as_dict(),
            inputs=inputs, max_active=int(cols["active"].shape[0]), seed=seed,
            shard_size=shard_size, layers=list(layer_list), inactive_ids=ids.tolist(),
            activations=activations, engine=engine, file_format=fmt,
        )
        text = (json.dumps(manifest, indent=2) + "\n").encode()
        safe_write(out / MANIFEST, lambda fh: fh.write(text))
    except OSError as exc:
        why = exc.strerror or exc
        raise validate.ConfigError(f"out={str(out)!r}: cannot write ({why})") from None
    return manifest


def read_dataset(directory: str | os.PathLike[str], names: Sequence[str] | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The columns of a dataset directory as arrays (rows, *shape), and its manifest.

    ``names`` picks columns (default all). Reads parquet (needs pyarrow) or npz shards."""
    root = Path(directory)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise validate.ConfigError(f"{root}: not a complete dataset ({exc})") from None
    cols = manifest["columns"]
    names = list(cols) if names is None else list(names)
    for name in names:
        validate.choice("column", name, cols)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for shard in manifest["shards"]:
        path = root / shard["file"]
        if manifest["file_format"] == "npz":
            with np.load(path) as z:
                for name in names:
                    parts[name].append(z[name])
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=names)
            for name in names:
                col = table.column(name).combine_chunks()
                flat = col.flatten() if cols[name]["shape"] else col
                arr = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=cols[name]["dtype"])
                parts[name].append(arr.reshape(len(table), *cols[name]["shape"]))
    return {k: np.concatenate(v) for k, v in parts.items()}, manifest
