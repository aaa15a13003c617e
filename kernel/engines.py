"""Three exact engines for the forward pass of the large network, and the batch API.

``dense`` (NumPy oracle: forms W^l), ``factorised`` and ``sparse`` (numba, activation-sparse)
return the same read-outs to float64 rounding; per dtype, ``factorised``, ``sparse`` and ``auto``
return bit-identical results, whatever the batch and the thread count. Read-outs of *all* T
circuits are reduced inside the kernels to per-sample statistics (sum of squares, max, false
activations) so that memory stays O(B * L) however large T is; full read-outs are returned only
for circuits asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from kernel import limits, validate
from kernel._jit import BatchArrays, NetArrays, Outputs, run_chunks, run_parallel
from kernel._numba import n_threads
from kernel.circuits import mean_active_norms, run_small, sample_inputs
from kernel.network import Network


@dataclass(frozen=True)
class Batch:
    """A batch of forward passes: ``active`` (B, z) distinct circuits, ``inputs`` (B, z, d)."""

    active: np.ndarray
    inputs: np.ndarray

    @property
    def size(self) -> int:
        return int(self.active.shape[0])

    @property
    def z(self) -> int:
        return int(self.active.shape[1])


def sample_batch(net: Network, batch: int, z: int, *, seed: int = 0) -> Batch:
    """Draw ``batch`` samples, each with z distinct active circuits chosen uniformly,
    fed their family's per-sample inputs (``rotation``: a fresh angle) or else their default
    inputs ``net.circuits.inputs``."""
    batch = validate.integer("batch", batch, low=1)
    z = validate.integer("z", z, low=1, high=net.T)
    limits.check_batch(net, batch, z)  # refuse a batch whose forward pass cannot fit
    rng = np.random.default_rng(validate.seed(seed))
    active = rng.integers(0, net.T, size=(batch, z))
    while True:  # redraw rows with repeated circuits (rare unless z ~ sqrt(T))
        srt = np.sort(active, axis=1)
        bad = np.nonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))[0]
        if bad.size == 0:
            break
        active[bad] = np.stack([rng.choice(net.T, z, replace=False) for _ in bad])
    return Batch(active, sample_inputs(net.circuits, active, rng))


def make_batch(net: Network, active: Any, inputs: Any = None) -> Batch:
    """Validate an explicit batch: active (B, z) distinct indices in [0, T); inputs (B, z, d) >= 0
    (default: the circuits' own inputs)."""
    act = validate.array("active", active, (None, None), dtype=np.int64)
    if act.size and (act.min() < 0 or act.max() >= net.T):
        raise validate.ConfigError(
            f"active has indices in [{act.min()}, {act.max()}], allowed [0, T-1={net.T - 1}]"
        )
    if act.shape[1] > 1 and (np.diff(np.sort(act, axis=1), axis=1) == 0).any():
        raise validate.ConfigError("active has a repeated circuit within a sample; need distinct")
    if inputs is None:
        x = net.circuits.inputs[act]
    else:
        x = validate.array("inputs", inputs, (act.shape[0], act.shape[1], net.d))
        if np.any(x < 0):
            raise validate.ConfigError("inputs has negative entries; a^0 is a ReLU state (>= 0)")
    validate.batch_arrays(net.T, net.d, act, x)  # sizes: at least one sample, 1 <= z <= T
    return Batch(act, x)


@dataclass(frozen=True)
class ForwardResult:
    """Everything a forward pass measures. Layer axes run over layers 0..L.

    h, a : (B, L+1, z, d) ground truth of the active circuits (bias-free pre-activation,
        activation).
    active_readout : (B, L+1, z, d) read-outs U_t^l A^l of the active circuits (layer 0: the input).
    readout : (B, L+1, R, d) read-outs of ``readout_ids`` (None if none were asked for).
    inactive_sq, inactive_max, inactive_false : (B, L+1) over the T - z inactive circuits per
        sample:
        sum of |read-out|^2, max abs component, count with |read-out| > ``thresholds``.
    frac_on : (B, L+1) fraction of large neurons > 0 (layer 0: the embedded input A^0).
    """

    engine: str
    batch: Batch
    h: np.ndarray
    a: np.ndarray
    active_readout: np.ndarray
    readout_ids: np.ndarray
    readout: np.ndarray | None
    inactive_sq: np.ndarray
    inactive_max: np.ndarray
    inactive_false: np.ndarray
    frac_on: np.ndarray
    thresholds: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    #: ``id`` of the Network it ran on (``kernel.measure.layer_stats`` refuses another one)
    network_id: int | None = None

    @property
    def active_error(self) -> np.ndarray:
        """(B, L+1, z, d) epsilon of the active circuits."""
        return self.active_readout - self.a


def _outputs(B: int, L: int, z: int, d: int, R: int) -> dict[str, np.ndarray]:
    return {
        "out_active": np.zeros((B, L, z, d)),
        "out_readout": np.zeros((B, L, R, d)),
        "out_sq": np.zeros((B, L)),
        "out_max": np.zeros((B, L)),
        "out_false": np.zeros((B, L), dtype=np.int64),
        "out_on": np.zeros((B, L + 1)),
    }


#: compute dtypes of the numba engines; float32 halves memory traffic, see docs/performance.md
DTYPES = {"float64": np.float64, "float32": np.float32}

#: samples per chunk (columns of the (D, C) layer array) of the numba engines, per dtype: one
#: 512-bit vector of samples, so that a chunk's two layers (2 * D * C values) stay in the
#: caches; chosen by the measurements in docs/performance.md. Results do not depend on it.
CHUNK = {"float64": 8, "float32": 16}

#: ``auto``: the activation-sparse pass is used for a layer when the chunk's densest sample has
#: fewer than this fraction of neurons on (calibrated in docs/performance.md). Results do not
#: depend on it.
AUTO_SPARSE_BELOW = 0.02

#: batches up to this size run one sample per chunk (the single-sample pass)
SINGLE_MAX_BATCH = 2


def _ro_csr(T: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR circuit -> positions in ``ids`` (read-outs requested), or empty when none are."""
    if ids.size == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(ids, kind="stable").astype(np.int64)
    ptr = np.searchsorted(ids[order], np.arange(T + 1)).astype(np.int64)
    return ptr, order


def net_arrays(net: Network, dtype: str = "float64") -> NetArrays:
    """The network's arrays as the kernels' record, in the compute ``dtype``: built once per
    network and dtype (``Network.memo``; a single-sample pass is short enough that rebuilding
    it per call was a tenth of its time)."""
    return net.memo(("kernel_record", dtype), lambda: _build_net_arrays(net, dtype))


def _build_net_arrays(net: Network, dtype: str) -> NetArrays:
    dt = DTYPES[dtype]
    con = net.construction
    return NetArrays(
        offsets=net.offsets,
        # the construction's per-circuit weights (cis2: the circuits' own, no copy)
        weights=net.weights_as(dt) if con.name == "cis2" else con.weights_as(dt),
        bias=np.ascontiguousarray(net.circuits.bias, dtype=dt),
        # 1/S from the patterns themselves (the offsets' last axis), as the kernels always did
        coef=np.array([1.0 / net.offsets.shape[2] + net.read_c], dtype=dt),
        read_c=np.array([net.read_c], dtype=dt),
        inv_indptr=net.inv_indptr,
        inv_circuits=net.inv_circuits,
        all_circuits=np.arange(net.T, dtype=np.int32),
        **dict(zip(("ext_N", "ext_G", "ext_R", "sp_ptr", "sp_idx", "sp_val", "sp_w", "ext_flags"),
                   con.kernel_args(dt), strict=True)),
    )


def chunk_plan(B: int, mode: str, dtype: str) -> tuple[int, float]:
    """Chunk width and sparse threshold of a mode: 'factorised' (dense passes), 'sparse' (one
    sample per chunk, sparse passes) or 'auto' (per layer and chunk from the measured density)."""
    if mode == "sparse":
        return 1, np.inf
    chunk = 1 if B <= SINGLE_MAX_BATCH else min(B, CHUNK[dtype])
    return chunk, (0.0 if mode == "factorised" else AUTO_SPARSE_BELOW)


def _run_numba(
    net: Network,
    batch: Batch,
    thr: np.ndarray,
    ids: np.ndarray,
    *,
    mode: str,
    dtype: str = "float64",
) -> dict:
    """Run the numba engine; mode 'factorised', 'sparse' or 'auto' (bit-identical results).

    Besides the outputs, ``out["worker_thread"]`` holds the numba thread id of each worker (one
    entry, 0, when the serial driver ran)."""
    B = batch.size
    out = _outputs(B, net.L, batch.z, net.d, ids.size)
    ro_ptr, ro_slot = _ro_csr(net.T, ids)
    bat = BatchArrays(
        active=batch.active,
        x0=np.ascontiguousarray(batch.inputs, dtype=np.float64),
        thr2=np.ascontiguousarray(np.minimum(thr, 1e154) ** 2),  # a huge threshold: no overflow
        ro_ptr=ro_ptr,
        ro_slot=ro_slot,
    )
    chunk, below = chunk_plan(B, mode, dtype)
    n_chunks = -(-B // chunk)
    n_workers = min(n_chunks, n_threads())
    out["worker_thread"] = np.zeros(n_workers, dtype=np.int64)
    res = Outputs(
        active=out["out_active"],
        readout=out["out_readout"],
        sq=out["out_sq"],
        absmax=out["out_max"],
        false=out["out_false"],
        on=out["out_on"],
    )
    net_rec = net_arrays(net, dtype)
    if n_workers == 1:
        # a parallel region costs a wait for every thread, ruinous on a loaded machine
        run_chunks(0, n_chunks, chunk, float(below), net_rec, bat, res)
    else:
        run_parallel(n_workers, chunk, float(below), net_rec, bat, res, out["worker_thread"])
    return out


def _readout_dense(net: Network, A: np.ndarray, layer: int) -> np.ndarray:
    """U_t^l A for all t and all rows of A (B, D): returns (B, T, d)."""
    n, d = net.n, net.d
    idx = np.arange(d)[None, :, None] * n + net.offsets[layer - 1][:, None, :]  # (T, d, S)
    r = A[:, idx].sum(axis=-1) * (1.0 / net.S + net.read_c)
    if net.read_c:
        r -= net.read_c * A.reshape(-1, d, n).sum(axis=-1)[:, None, :]
    return r


def _run_dense(
    net: Network, batch: Batch, thr: np.ndarray, ids: np.ndarray, dtype: str = "float64"
) -> dict:
    """NumPy oracle: A^0 by scatter, W^l formed densely, read-outs gathered for all circuits."""
    B, z, d, n, L = batch.size, batch.z, net.d, net.n, net.L
    out = _outputs(B, L, z, d, ids.size)
    h1 = np.einsum("bzij,bzj->bzi", net.circuits.weights[0][batch.active], batch.inputs)
    rows = np.arange(d)[None, None, :, None] * n + net.offsets[0][batch.active][:, :, None, :]
    A = np.zeros((B, net.D))
    np.add.at(A, (np.arange(B)[:, None, None, None], rows), h1[..., None])
    out["out_on"][:, 0] = (A > 0).mean(axis=1)
    bias = np.repeat(net.circuits.bias, n, axis=1)  # (L, D): B^l = b^l kron 1_n
    A = np.maximum(A + bias[0], 0.0)
    is_active = np.zeros((B, net.T), dtype=bool)
    is_active[np.arange(B)[:, None], batch.active] = True
    chunk = max(1, int(2e7 // (net.T * d * net.S)))
    for layer in range(1, L + 1):
        out["out_on"][:, layer] = (A > 0).mean(axis=1)
        for lo in range(0, B, chunk):
            sl = slice(lo, lo + chunk)
            r = _readout_dense(net, A[sl], layer)  # (b, T, d)
            out["out_active"][sl, layer - 1] = np.take_along_axis(
                r, batch.active[sl][:, :, None], axis=1
            )
            out["out_readout"][sl, layer - 1] = r[:, ids]
            sq = np.where(is_active[sl], 0.0, (r**2).sum(axis=2))
            out["out_sq"][sl, layer - 1] = sq.sum(axis=1)
            out["out_max"][sl, layer - 1] = np.where(is_active[sl][..., None], 0.0, np.abs(r)).max(
                axis=(1, 2)
            )
            out["out_false"][sl, layer - 1] = (sq > thr[layer - 1] ** 2).sum(axis=1)
        if layer < L:
            A = np.maximum(A @ net.dense_layer(layer + 1).T + bias[layer], 0.0)
    return out


def dense_forward(net: Network, Wt: list[np.ndarray], batch: Batch, dtype: Any) -> np.ndarray:
    """Dense forward pass with pre-formed, transposed W^l (l = 2..L): returns A^L (B, D).

    The baseline of ``cis bench`` and the benchmarks (one BLAS GEMM/GEMV per layer, ``dtype``
    float64 or float32); no read-outs, so it does less work than the engines.
    """
    B, d, n = batch.size, net.d, net.n
    h1 = np.einsum("bzij,bzj->bzi", net.circuits.weights[0][batch.active], batch.inputs)
    rows = np.arange(d)[None, None, :, None] * n + net.offsets[0][batch.active][:, :, None, :]
    A = np.zeros((B, net.D), dtype=dtype)
    np.add.at(A, (np.arange(B)[:, None, None, None], rows), h1[..., None].astype(dtype))
    bias = np.repeat(net.circuits.bias, n, axis=1).astype(dtype)
    A = np.maximum(A + bias[0], 0)
    for layer, W in enumerate(Wt, start=2):
        A = np.maximum(A @ W + bias[layer - 1], 0)
    return A


Runner = Callable[..., dict]

#: engine name -> runner; ``activation-sparse`` is an alias of ``sparse``
ENGINES: dict[str, Runner] = {
    "dense": _run_dense,
    "factorised": partial(_run_numba, mode="factorised"),
    "sparse": partial(_run_numba, mode="sparse"),
    "activation-sparse": partial(_run_numba, mode="sparse"),
    "auto": partial(_run_numba, mode="auto"),
}


def _readout_ids(net: Network, readout: Any) -> np.ndarray:
    if readout is None:
        return np.zeros(0, dtype=np.int64)
    if isinstance(readout, str):
        validate.choice("readout", readout, ("all",))
        return np.arange(net.T, dtype=np.int64)
    ids = validate.array("readout", readout, (None,), dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= net.T):
        raise validate.ConfigError(
            f"readout has ids in [{ids.min()}, {ids.max()}], allowed [0, T-1={net.T - 1}]"
        )
    return ids


def forward(
    net: Network,
    batch: Batch,
    *,
    engine: str = "auto",
    readout: str | np.ndarray | None = None,
    threshold_fraction: float = 0.1,
    dtype: str = "float64",
) -> ForwardResult:
    """Run the large network on a batch and the small circuits beside it (docs/construction.md).

    Parameters
    ----------
    engine : "auto" (default), "dense" (NumPy oracle), "factorised" or "sparse" (numba).
        ``auto`` runs the numba engine and chooses, per layer and chunk of samples, the sparse
        pass when few neurons are on and the factorised one otherwise. Per dtype, the three
        numba engines give bit-identical read-outs and statistics, and a sample's results do not
        depend on the batch it is in or the thread count (tested; see ``kernel._jit``).
    readout : None, "all", or circuit ids whose full read-outs (B, L+1, R, d) are returned.
    threshold_fraction : false-activation threshold per layer, as a fraction of the mean active
        norm <|a_t^l|> of all circuits on their default inputs (``mean_active_norms``: fixed by
        the network, so the same for a sample alone or in any batch).
    dtype : "float64" (default, exact to float64 rounding) or "float32" (numba engines only: the
        large layers and weights in float32, statistics accumulated in float64; its error against
        float64 is measured in docs/performance.md).
    """
    dtype = validate.forward_args(net, batch, dtype)  # batch belongs to net; no overflow
    engine = validate.choice("engine", engine, ENGINES)
    dtype = validate.choice("dtype", dtype, DTYPES)
    if engine == "dense" and dtype != "float64":
        raise validate.ConfigError(f"dtype={dtype!r} is not available for engine 'dense' (float64)")
    threshold_fraction = validate.real("threshold_fraction", threshold_fraction, low=0.0)
    ids = _readout_ids(net, readout)
    limits.check_forward(net, batch.size, batch.z, engine, ids.size)  # refuse what cannot fit
    t0 = time.perf_counter()
    h, a = run_small(net.circuits, batch.active, batch.inputs)
    # (L+1,), from the circuits, not the batch; once per network (its arrays are read-only)
    thr = threshold_fraction * net.memo("mean_active_norms",
                                        lambda: mean_active_norms(net.circuits))
    t1 = time.perf_counter()
    out = ENGINES[engine](net, batch, np.ascontiguousarray(thr[1:]), ids, dtype=dtype)
    t2 = time.perf_counter()
    B, L = batch.size, net.L

    def with_layer0(x: np.ndarray, first: np.ndarray | float = 0.0) -> np.ndarray:
        full = np.zeros((B, L + 1, *x.shape[2:]), dtype=x.dtype)
        full[:, 0] = first
        full[:, 1:] = x
        return full

    readout_arr = None
    if ids.size:
        readout_arr = with_layer0(out["out_readout"])
        # layer 0 is the exact input: active circuits read their input, inactive ones 0
        hit = batch.active[:, :, None] == ids[None, None, :]  # (B, z, R)
        readout_arr[:, 0] = np.einsum("bzr,bzd->brd", hit, batch.inputs)
    return ForwardResult(
        engine=engine,
        batch=batch,
        h=h,
        a=a,
        active_readout=with_layer0(out["out_active"], batch.inputs),
        readout_ids=ids,
        readout=readout_arr,
        inactive_sq=with_layer0(out["out_sq"]),
        inactive_max=with_layer0(out["out_max"]),
        inactive_false=with_layer0(out["out_false"]),
        frac_on=out["out_on"],
        thresholds=thr,
        network_id=id(net),
        seconds={"small": t1 - t0, "large": t2 - t1},
    )


def compile_kernels() -> None:
    """Compile (or load from numba's cache) the engine kernels outside anything that is timed:
    one tiny forward per path (single sample, chunked batch; factorised and sparse gathers)."""
    from kernel.network import build_network

    net = build_network(D=60, d=4, S=3, T=10, L=2)
    for size in (2, 9):
        batch = sample_batch(net, size, 2)
        for engine in ("factorised", "sparse", "auto"):
            forward(net, batch, engine=engine)
