"""``cis bench``: time the numba engines against the dense oracle on one configuration.

Everything runs in one process, one after the other, so the ratios compare like with like on a
noisy machine. Times are medians over ``--reps`` repetitions of the whole forward pass (the JIT
is compiled before the first timed repetition).

Two dense baselines, both with the D x D matrices W^2..W^L formed *before* timing (forming them is
reported separately, never timed in the ratios):
  ``dense-f64`` / ``dense-f32``: A^0 by scatter, then ReLU(A W^T + B) layer by layer (one BLAS GEMM
    or GEMV per layer) — the forward pass alone, no read-outs of inactive circuits;
  ``dense-f64+readout``: the same plus the read-outs U_t^l A^l of all T circuits at every layer
    and their statistics (what the numba engines compute; ``kernel.engines._run_dense``).
Rows ``<engine>-f32``: the engine in float32; ``<engine>-split`` (batches of 1-2 only): each dense
layer split over 4 circuit ranges run on the threads (opt-in, ``kernel.engines.SPLIT_PARTS``).
The numba engines always compute the read-outs of all T circuits at every layer, so the ratios
against ``dense-f64`` / ``dense-f32`` credit the dense side with less work than ours.
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


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_config(reps: int = 5, dense: str = "auto", **params: Any) -> dict[str, Any]:
    """Run the benchmark of ``cis bench``; ``params`` are ``cis run`` parameters."""
    from kernel import engines, validate
    from kernel.engines import _run_dense, dense_forward, forward, sample_batch
    from kernel.measure import RunConfig
    from kernel.network import build_network

    reps = validate.integer("reps", reps, low=1)
    dense = validate.choice("dense", dense, ("auto", "yes", "no"))
    cfg = RunConfig.from_params(**params)
    net_cfg = cfg.network
    engine = validate.choice("engine", cfg.engine, ("auto", "factorised", "sparse"))
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
    if cfg.batch <= engines.SPLIT_MAX_BATCH:
        # opt-in: each dense layer split over 4 circuit ranges on the threads (fast when the
        # cores are idle, stalls when they are shared; see kernel.engines.SPLIT_PARTS)
        saved = engines.SPLIT_PARTS
        engines.SPLIT_PARTS = 4
        try:
            times[f"{engine}-split"], _ = _median_time(
                lambda: forward(net, batch, engine=engine), reps
            )
        finally:
            engines.SPLIT_PARTS = saved
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
    run_dense = dense == "yes" or (dense == "auto" and dense_gib < 8.0)
    if run_dense:
        t0 = time.perf_counter()
        Wt64 = [np.ascontiguousarray(net.dense_layer(layer).T) for layer in range(2, net.L + 1)]
        dense_info.update(formed=True, form_seconds=time.perf_counter() - t0)
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
                lambda: _run_dense(net, batch, thr, ids), reps
            )
        finally:
            object.__delattr__(net, "dense_layer")
        del Wt64, Wt32, cache
    rss_dense = _peak_rss_mib()

    ratios = {}
    for base in ("dense-f64", "dense-f32", "dense-f64+readout"):
        if base in times:
            for name in (engine, f"{engine}-f32", f"{engine}-split", "factorised", "sparse"):
                if name in times:
                    ratios[f"{base} / {name}"] = times[base] / times[name]
    return {
        "config": cfg.as_dict() | {"T": net.T, "reps": reps},
        "seconds": {"build": build_s, **times},
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
    out = bench_config(reps=reps, dense=dense, **params)
    if as_json:
        click.echo(report.dumps(out))
        return
    secs = out["seconds"]
    tables = [
        report.table(
            f"bench: seconds (median of {out['config']['reps']})",
            ["what", "seconds"],
            [[k, f"{v:.5f}"] for k, v in secs.items()],
        ),
        report.table(
            "ratios (baseline / ours)",
            ["ratio", "x"],
            [[k, f"{v:.1f}"] for k, v in out["ratios"].items()],
        ),
        report.table(
            "frac_on per layer",
            ["layer", "frac_on"],
            [[i, f"{v:.4f}"] for i, v in enumerate(out["frac_on"])],
        ),
        report.table(
            "memory and float32",
            ["what", "value"],
            [[k, f"{v:.1f}"] for k, v in out["peak_rss_MiB"].items()]
            + [[k, f"{v:.2e}"] for k, v in out["float32_error"].items()]
            + [[k, str(v)] for k, v in out["dense"].items()],
        ),
    ]
    report.print_tables(*tables)
