"""``cis bench``: time the numba engines against the dense oracle on one configuration.

Everything runs in one process, one after the other, so the ratios compare like with like on a
noisy machine. Times are medians over ``--reps`` repetitions of the whole forward pass (the JIT
is compiled before the first timed repetition).

Two dense baselines, both with the D x D matrices W^2..W^L formed *before* timing (forming them is
reported separately, never timed in the ratios):
  ``dense-f64`` / ``dense-f32``: A^0 by scatter, then ReLU(A W^T + B) layer by layer (one BLAS GEMM
    or GEMV per layer) — the forward pass alone, no read-outs of inactive circuits;
  ``dense-f64+readout``: the same plus the read-outs U_t^l A^l of all T circuits at every layer
    and their statistics (what the numba engines compute; engine ``dense``).
Rows ``<engine>-f32``: the engine in float32. The numba engines always compute the read-outs of
all T circuits at every layer, so the ratios against ``dense-f64`` / ``dense-f32`` credit the
dense side with less work than ours. The dense baselines run only when ``Network.dense_layer``
can form the W^l (it refuses large D) and, with ``--dense auto``, when they need < 8 GiB;
otherwise the report says why they were skipped.

Distance to the machine's limit: a STREAM-like triad (``a = b + s c`` on three float64 arrays of
``TRIAD_N`` elements, far larger than any cache, numba parallel over all threads, median of
``TRIAD_REPS``) measures the memory bandwidth in the same process. Each row gets its achieved
GFLOP/s and GB/s from the work model of ``work_model`` (documented there) and the fraction of the
triad bandwidth.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import click
import numpy as np

from cis import report
from cis.cli import _guard, network_options


def _median_time(fn: Any, reps: int) -> tuple[float, Any]:
    out = fn()  # warm-up (compiles numba on first use, faults in the buffers)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


#: triad arrays: 3 x 20M float64 = 480 MB, far beyond the caches (32 MiB L3 here)
TRIAD_N = 20_000_000
TRIAD_REPS = 7


def triad_bandwidth(n: int = TRIAD_N, reps: int = TRIAD_REPS) -> dict[str, float]:
    """Memory bandwidth of a STREAM-like triad a = b + s c (numba, parallel), median of ``reps``.

    Bytes counted as STREAM does: 3 x 8 bytes per element (read b and c, write a; the
    write-allocate read of a is not counted)."""
    from kernel.bench import triad

    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    seconds, _ = _median_time(lambda: triad(a, b, c, 3.0), reps)
    if not np.all(a[:: max(1, n // 1000)] == 7.0):  # the kernel really ran
        raise RuntimeError("triad produced wrong values")
    return {"GB_per_s": 3 * 8 * n / seconds / 1e9, "seconds": seconds, "elements": float(n)}


def work_model(
    *, T: int, S: int, d: int, L: int, D: int, batch: int, chunk: int, itemsize: int
) -> dict[str, float]:
    """Floating-point operations and bytes of one factorised forward pass (all T circuits read
    out at every layer), the count behind the GFLOP/s and GB/s of ``cis bench``.

    Per sample and layer l = 1..L, per circuit: the gather adds S*d neurons (S*d - d adds) and
    scales them (d mults); the statistics cost 2*d (square, add) + 1; the scatter (layers < L)
    costs d*(2d - 1) for w_t r_t and S*d adds into the next layer. Bytes: the circuit arrays
    (offsets read twice as int32: S*4*2, weights d*d*itemsize, flags 1) stream from memory once
    per chunk of ``chunk`` samples and layer; the layer arrays A^l and the next pre-activation
    (D * itemsize each, read and written) once per sample and layer. The gathers and scatters
    themselves hit the caches (a chunk's layers, 2 * D * chunk * itemsize = 1 MB at D = 8000
    with the default chunks, stay in L2) and are not counted as memory traffic.

    The same count is used for ``auto`` and ``sparse`` (they give identical numbers and skip
    circuits that read exactly 0), so their rates are factorised-equivalent rates; the
    fraction of neurons on (frac_on) decides how much of this work they actually skip.
    """
    n_chunks = -(-batch // chunk)
    per_circuit_read = (S * d - d) + d + (2 * d + 1)
    per_circuit_scatter = d * (2 * d - 1) + S * d
    flops = batch * T * (L * per_circuit_read + (L - 1) * per_circuit_scatter)
    circuit_bytes = T * (S * 4 * 2 + d * d * itemsize + 1)
    layer_bytes = 2 * 2 * D * itemsize
    bytes_moved = n_chunks * L * circuit_bytes + batch * L * layer_bytes
    return {"flops": float(flops), "bytes": float(bytes_moved)}


def dense_work(*, D: int, L: int, batch: int, itemsize: int) -> dict[str, float]:
    """The dense baseline: per layer l = 2..L one GEMM/GEMV, 2 D^2 flops per sample, the D x D
    matrix read once per call and the (batch, D) activations read and written."""
    return {
        "flops": float(2 * D * D * batch * (L - 1)),
        "bytes": float((L - 1) * (D * D + 2 * batch * D) * itemsize),
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_config(reps: int = 5, dense: str = "auto", **params: Any) -> dict[str, Any]:
    """Run the benchmark of ``cis bench``; ``params`` are ``cis run`` parameters."""
    from kernel import engines, validate
    from kernel.engines import ENGINES, dense_forward, forward, sample_batch
    from kernel.measure import RunConfig
    from kernel.network import build_network

    reps = validate.integer("reps", reps, low=1)
    dense = validate.choice("dense", dense, ("auto", "yes", "no"))
    cfg = RunConfig.from_params(**params)
    net_cfg = cfg.network
    engine = validate.choice("engine", cfg.engine, ("auto", "factorised", "sparse"))
    if dense == "yes":  # refused before the engines run, not after them
        from kernel.network import DENSE_MAX_D

        if net_cfg.D > DENSE_MAX_D:
            raise validate.ConfigError(
                f"--dense yes: D={net_cfg.D} is too large for the dense baselines "
                f"(D <= {DENSE_MAX_D}; W^2..W^L would need "
                f"{(net_cfg.L - 1) * net_cfg.D**2 * 12 / 2**30:.1f} GiB in float64 + float32)")
    t0 = time.perf_counter()
    net = build_network(net_cfg)
    build_s = time.perf_counter() - t0
    batch = sample_batch(net, cfg.batch, cfg.z, seed=1)
    rss_build = _peak_rss_mib()

    times: dict[str, float] = {}
    results = {}
    for name, eng, dt in (
        (engine, engine, "float64"),
        (f"{engine}-f32", engine, "float32"),
        ("factorised", "factorised", "float64"),
        ("sparse", "sparse", "float64"),
    ):
        if name in times:
            continue
        times[name], results[name] = _median_time(
            lambda e=eng, t=dt: forward(net, batch, engine=e, dtype=t), reps
        )
    rss_numba = _peak_rss_mib()
    ref = results[engine]
    f32 = results[f"{engine}-f32"]
    f32_err = {
        "active_readout_max_abs": float(np.abs(f32.active_readout - ref.active_readout).max()),
        "inactive_sq_max_rel": float(
            (
                np.abs(f32.inactive_sq - ref.inactive_sq)[:, 1:]
                / np.maximum(ref.inactive_sq[:, 1:], 1e-300)
            ).max()
        ),
        "frac_on_max_abs": float(np.abs(f32.frac_on - ref.frac_on).max()),
    }

    dense_gib = (net.L - 1) * net.D**2 * 8 / 2**30
    dense_info: dict[str, Any] = {"W_float64_GiB": dense_gib, "formed": False}
    Wt64: list[np.ndarray] | None = None
    if dense == "no":
        dense_info["skipped"] = "--dense no"
    elif dense == "auto" and dense_gib >= 8.0:
        dense_info["skipped"] = f"W^2..W^L need {dense_gib:.1f} GiB (--dense auto: < 8)"
    else:
        t0 = time.perf_counter()
        try:
            Wt64 = [np.ascontiguousarray(net.dense_layer(layer).T) for layer in range(2, net.L + 1)]
        except validate.ConfigError as exc:
            if dense == "yes":
                raise
            dense_info["skipped"] = str(exc)
        else:
            dense_info.update(formed=True, form_seconds=time.perf_counter() - t0)
    if Wt64 is not None:
        Wt32 = [W.astype(np.float32) for W in Wt64]
        times["dense-f64"], _ = _median_time(
            lambda: dense_forward(net, Wt64, batch, np.float64), reps
        )
        times["dense-f32"], _ = _median_time(
            lambda: dense_forward(net, Wt32, batch, np.float32), reps
        )
        # the oracle engine with its W^l already formed: patch dense_layer to return them
        cache = {layer: W.T for layer, W in enumerate(Wt64, start=2)}
        thr = np.ascontiguousarray(ref.thresholds[1:])
        ids = np.zeros(0, dtype=np.int64)
        object.__setattr__(net, "dense_layer", lambda layer: cache[layer])
        try:
            times["dense-f64+readout"], _ = _median_time(
                lambda: ENGINES["dense"](net, batch, thr, ids), reps
            )
        finally:
            object.__delattr__(net, "dense_layer")
        del Wt64, Wt32, cache
    rss_dense = _peak_rss_mib()

    ratios = {}
    for base in ("dense-f64", "dense-f32", "dense-f64+readout"):
        if base in times:
            for name in (engine, f"{engine}-f32", "factorised", "sparse"):
                if name in times:
                    ratios[f"{base} / {name}"] = times[base] / times[name]
    triad = triad_bandwidth()
    rates = {}
    for name, secs in times.items():
        itemsize = 4 if name.endswith("f32") else 8
        if name.startswith("dense-f64+readout"):
            continue  # NumPy oracle with fancy indexing: no meaningful work count
        if name.startswith("dense"):
            work = dense_work(D=net.D, L=net.L, batch=cfg.batch, itemsize=itemsize)
        else:
            dt = "float32" if itemsize == 4 else "float64"
            chunk = engines.chunk_plan(cfg.batch, "factorised", dt)[0]
            work = work_model(T=net.T, S=net.S, d=net.d, L=net.L, D=net.D, batch=cfg.batch,
                              chunk=chunk, itemsize=itemsize)
        gbs = work["bytes"] / secs / 1e9
        rates[name] = {
            "seconds": secs,
            "GFLOP_per_s": work["flops"] / secs / 1e9,
            "GB_per_s": gbs,
            "fraction_of_triad": gbs / triad["GB_per_s"],
            "flops": work["flops"],
            "bytes": work["bytes"],
        }
    return {
        "config": cfg.as_dict() | {"T": net.T, "reps": reps},
        "seconds": {"build": build_s, **times},
        "triad": triad,
        "rates": rates,
        "ratios": ratios,
        "frac_on": ref.frac_on.mean(axis=0).tolist(),
        "float32_error": f32_err,
        "dense": dense_info,
        "peak_rss_MiB": {
            "after_build": rss_build,
            "after_numba_engines": rss_numba,
            "after_dense": rss_dense,
        },
    }


@click.command()
@network_options
@click.option("--reps", type=int, default=5, show_default=True, help="timed repetitions (median)")
@click.option(
    "--dense",
    "dense",
    default="auto",
    show_default=True,
    help="run the dense baselines: auto (if the W^l need < 8 GiB) | yes | no",
)
@_guard
def bench(as_json: bool, reps: int, dense: str, **params: Any) -> None:
    """Time the numba engines and the dense oracle on one configuration (same process)."""
    ctx = click.get_current_context()
    for name, flag in (("threshold_fraction", "--threshold"), ("sample_seed", "--sample-seed")):
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None):
            raise click.UsageError(f"{flag} is not used by cis bench (it times the engines); "
                                   "leave it out")
    out = bench_config(reps=reps, dense=dense, **params)
    if as_json:
        click.echo(report.dumps(out))
        return
    secs = out["seconds"]
    tables = [
        report.table(
            f"bench: seconds (median of {out['config']['reps']})",
            ["what", "seconds"],
            [[k, v] for k, v in secs.items()],
        ),
        report.table(
            f"achieved rates (triad bandwidth {out['triad']['GB_per_s']:.1f} GB/s)",
            ["what", "seconds", "GFLOP/s", "GB/s", "of triad"],
            [
                [k, v["seconds"], v["GFLOP_per_s"], v["GB_per_s"], v["fraction_of_triad"]]
                for k, v in out["rates"].items()
            ],
        ),
        report.table(
            "ratios (baseline / ours)",
            ["ratio", "x"],
            [[k, v] for k, v in out["ratios"].items()],
        ),
        report.table(
            "frac_on per layer",
            ["layer", "frac_on"],
            [[i, v] for i, v in enumerate(out["frac_on"])],
        ),
        report.table(
            "memory and float32",
            ["what", "value"],
            [[k, v] for k, v in out["peak_rss_MiB"].items()]
            + [[k, v] for k, v in out["float32_error"].items()]
            + [[k, str(v)] for k, v in out["dense"].items()],
        ),
    ]
    report.print_tables(*tables)
