"""Parameter checks at the boundary: each error names the parameter, its value and what is allowed.

Everything public in ``kernel`` calls these before any array reaches numba, so a user never sees a
numba typing error.
"""

from __future__ import annotations

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


def array(
    name: str, value: Any, shape: tuple[int | None, ...], *, dtype: type = np.float64
) -> np.ndarray:
    """Return ``value`` as a C-contiguous array of ``dtype`` and the given shape (None = any).

    Rejects wrong rank or shape and, for float arrays, non-finite entries.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy's own message is appended
        raise ConfigError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.ndim != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)
    ):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ConfigError(f"{name} has shape {arr.shape}, expected {want}")
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
