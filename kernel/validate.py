"""Parameter checks at the boundary: each error names the parameter, its value and what is allowed.

Everything public in ``kernel`` calls these before any array reaches numba, so a user never sees a
numba typing error.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A parameter is outside what the construction allows (message names it and its value)."""


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``; else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name}={value!r} must be an integer")
    value = int(value)
    if low is not None and value < low:
        raise ConfigError(f"{name}={value} must be >= {low}")
    if high is not None and value > high:
        raise ConfigError(f"{name}={value} must be <= {high}")
    return value


def real(name: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a finite ``float`` in ``[low, high]``, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name}={value!r} must be a real number")
    value = float(value)
    if not np.isfinite(value):
        raise ConfigError(f"{name}={value} must be finite")
    if low is not None and value < low:
        raise ConfigError(f"{name}={value} must be >= {low}")
    if high is not None and value > high:
        raise ConfigError(f"{name}={value} must be <= {high}")
    return value


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ConfigError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")
    return str(value)


def as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, with ragged or unconvertible input as a ConfigError naming it."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists, unconvertible objects
        raise ConfigError(
            f"{name} could not be converted to an array (ragged or not numeric): {exc}"
        ) from None


def array(
    name: str, value: Any, shape: tuple[int | None, ...], *, dtype: type = np.float64
) -> np.ndarray:
    """Return ``value`` as a C-contiguous array of ``dtype`` and the given shape (None = any).

    Rejects wrong rank or shape and, for float arrays, non-finite entries.
    """
    arr = as_array(name, value)
    if arr.ndim != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)
    ):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ConfigError(f"{name} has shape {arr.shape}, expected {want}")
    if arr.dtype == object or np.issubdtype(arr.dtype, np.complexfloating):
        kind = "objects" if arr.dtype == object else "complex numbers"
        raise ConfigError(f"{name} has dtype {arr.dtype} ({kind}), expected real numbers")
    if np.issubdtype(dtype, np.floating):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ConfigError(f"{name} has dtype {arr.dtype}, expected real numbers")
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"{name} contains non-finite values (NaN or inf)")
    elif np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{name} has dtype {arr.dtype}, expected integers")
    return np.ascontiguousarray(arr, dtype=dtype)


def seed(value: Any) -> int:
    """A reproducibility seed: a non-negative integer."""
    return integer("seed", value, low=0)


def known_keywords(where: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise ConfigError naming the unknown keyword arguments of ``where``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}() got unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def dtype_name(value: Any) -> Any:
    """A numpy dtype or type (``np.float32``) as its name (``"float32"``); others unchanged,
    so that ``choice`` reports them."""
    if isinstance(value, str):
        return value
    try:
        return np.dtype(value).name
    except TypeError:
        return value


def batch_arrays(T: int, d: int, active: Any, inputs: Any) -> None:
    """Check a batch against a network of T circuits of width d before it reaches numba.

    ``active`` must be a (B, z) integer array, B >= 1, 1 <= z <= T, of distinct indices in
    [0, T) per row; ``inputs`` a (B, z, d) finite real array >= 0. Guards hand-built ``Batch``
    objects, which skip ``make_batch``: numba would wrap negative indices around, read past the
    end, or count a repeated circuit twice.
    """
    act = np.asarray(active)
    if act.ndim != 2 or not np.issubdtype(act.dtype, np.integer):
        raise ConfigError(
            f"batch.active has shape {act.shape} and dtype {act.dtype}, expected (B, z) integers"
        )
    B, z = act.shape
    if B < 1:
        raise ConfigError("batch.active has B=0 samples, need at least 1")
    if not 1 <= z <= T:
        raise ConfigError(f"batch.active has z={z} circuits per sample, allowed 1..T={T}")
    if act.min() < 0 or act.max() >= T:
        raise ConfigError(
            f"batch.active has indices in [{act.min()}, {act.max()}], allowed [0, T-1={T - 1}]"
        )
    if z > 1 and (np.diff(np.sort(act, axis=1), axis=1) == 0).any():
        raise ConfigError("batch.active has a repeated circuit within a sample; need distinct")
    x = array("batch.inputs", inputs, (B, z, d))
    if np.any(x < 0):
        raise ConfigError("batch.inputs has negative entries; a^0 is a ReLU state (>= 0)")
    if not isinstance(inputs, np.ndarray) or inputs.dtype != np.float64:
        raise ConfigError(f"batch.inputs has dtype {np.asarray(inputs).dtype}, expected float64 "
                          "(build batches with make_batch)")


def layer_gains(weights: np.ndarray, max_load: int, spread: float) -> np.ndarray:
    """Per layer, the largest entry of weights (L, T, d, d) and the log of a rigorous bound on
    how much a layer can grow the largest activation: a large neuron sums at most ``max_load``
    circuits' pushed read-outs, each at most d max|w^l| times the largest entry of the previous
    layer times ``spread`` (the read-out's row sum). Returns (L, 2): max|w^l|, log growth."""
    L, _, d, _ = weights.shape
    wmax = np.abs(weights.reshape(L, -1)).max(axis=1, initial=0.0)
    with np.errstate(divide="ignore"):
        growth = np.log(np.maximum(d * wmax * max(max_load, 1) * max(spread, 1.0), 1e-300))
    return np.stack([wmax, growth], axis=1)


def no_overflow(gains: np.ndarray, inputs: np.ndarray, dtype: Any,
                advice: str = "scale the weights or inputs down") -> None:
    """Refuse weights so large that the forward pass could overflow ``dtype``: the bound of
    ``layer_gains`` from max|inputs|, compared in logarithms so it cannot itself overflow;
    ``advice`` ends the message (what the caller can change)."""
    log_big = math.log(float(np.finfo(dtype).max)) - 2  # e^2 of headroom for the sums' rounding
    log_bound = math.log(max(float(np.abs(inputs).max(initial=0.0)), 1e-300))
    for layer, (wmax, growth) in enumerate(gains, start=1):
        log_bound += float(growth)
        if log_bound > log_big:
            raise ConfigError(
                f"weights up to {wmax:.3g} at layer {layer} could overflow {np.dtype(dtype)} "
                f"in the forward pass (activations bounded by about e^{log_bound:.0f}); "
                f"{advice}"
            )


def read_only(*arrays: np.ndarray) -> None:
    """Mark arrays a network owns as read-only (writing into them raises instead of corrupting
    the network or the compiled kernels' assumptions)."""
    for arr in arrays:
        arr.setflags(write=False)


def network_arrays(net: Any) -> None:
    """Refuse a network whose index arrays would send the compiled kernels out of bounds (e.g.
    ``dataclasses.replace(net, offsets=...)`` with offsets >= n): shapes, dtypes and ranges of
    the patterns, the inverse index and the circuits, once per Network object."""

    def check() -> bool:
        L, T, S, n, d = net.L, net.T, net.S, net.n, net.d
        expect = {"offsets": (net.offsets, (L, T, S), n), "design": (net.design, (T, S), n),
                  "inv_circuits": (net.inv_circuits, (L, T * S), T),
                  "inv_indptr": (net.inv_indptr, (L, n + 1), T * S + 1)}
        for name, (arr, shape, high) in expect.items():
            arr = np.asarray(arr)
            if arr.shape != shape or arr.dtype.kind not in "iu":
                raise ConfigError(f"network {name} has shape {arr.shape} and dtype {arr.dtype}, "
                                  f"expected integers of shape {shape}")
            lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
            if lo < 0 or hi >= high:
                raise ConfigError(f"network {name} has entries in [{lo}, {hi}], allowed "
                                  f"[0, {high - 1}]")
        ptr = np.asarray(net.inv_indptr)
        if (ptr[:, 0] != 0).any() or (ptr[:, -1] != T * S).any() or (np.diff(ptr) < 0).any():
            raise ConfigError("network inv_indptr is not an index of T*S entries per layer")
        w = net.circuits.weights
        if w.shape != (L, T, d, d):
            raise ConfigError(f"network circuits have weights of shape {w.shape}, expected "
                              f"{(L, T, d, d)}")
        return True

    net.memo("arrays_checked", check)


def overflow_advice(cfg: Any) -> str:
    """What a user can change when the forward pass could overflow: the weights of their own
    circuits, or the depth (and kappa_scale) of a built-in family."""
    if cfg.family == "user":
        return "scale the weights or inputs down"
    extra = " or a smaller kappa_scale" if cfg.construction == "ris-capped" else ""
    return f"use fewer layers (L={cfg.L}){extra}"


def forward_args(net: Any, batch: Any, dtype: Any) -> Any:
    """Check what ``forward`` is given before any array reaches numba; return ``dtype`` by name.

    The batch must belong to ``net`` (``batch_arrays``) and the network's weights must not be able
    to overflow ``dtype`` (``no_overflow``).
    """
    if not (hasattr(batch, "active") and hasattr(batch, "inputs")):
        raise ConfigError(f"batch={type(batch).__name__} must be a Batch (sample_batch/make_batch)")
    network_arrays(net)
    batch_arrays(net.T, net.d, batch.active, batch.inputs)
    name = dtype_name(dtype)
    if name in ("float64", "float32"):
        no_overflow(net.overflow_gains(), batch.inputs, name, overflow_advice(net.config))
    return name
