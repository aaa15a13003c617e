"""Fail fast on size: estimate what a request needs and refuse it before it starts.

Every entry point that allocates in proportion to its parameters (``build_network``,
``sample_batch``, ``forward``, ``run``, the capacity and cavity computations) calls one of the
``check_*`` functions here first. Each estimate adds up the arrays the request allocates (their
shapes are known from the parameters) and a rough running time; when the memory exceeds the limit,
or the time exceeds the time limit, a :class:`ResourceError` (a ``ConfigError``) is raised with one
line giving the estimate, the limit and the parameters, so the command line exits 2.

Limits:

- memory: ``CIS_MEMORY_LIMIT_GB`` (GiB) if set, else ``MEMORY_FRACTION`` of the memory available
  now (``MemAvailable`` of /proc/meminfo, or ``os.sysconf`` where that is missing); without the
  variable, requests under ``SMALL_BYTES`` pass without reading the available memory (reading it
  costs more than a single-sample forward pass can afford);
- time: ``CIS_TIME_LIMIT_S`` (seconds) if set, else ``TIME_LIMIT_S``.

The estimates are deliberately simple (the largest arrays, a constant per inner-loop step); they
are meant to tell a request that fits from one that is orders of magnitude too large, not to
predict peak memory to the byte. tests/test_limits.py holds the memory estimate of ``run`` within
a factor 0.5 to 5 of the peak of NumPy's allocations (``tracemalloc``) on a few configurations;
the time estimate is not tested (it depends on the machine and its load).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from kernel import validate

GiB = float(2**30)

#: default memory limit: this fraction of the memory available when the check runs
MEMORY_FRACTION = 0.8
#: requests below this many bytes are not compared with the available memory (only with
#: ``CIS_MEMORY_LIMIT_GB`` when it is set)
SMALL_BYTES = 64 * 2.0**20
#: default time limit in seconds (estimates are rough: only requests far beyond it are meant)
TIME_LIMIT_S = 3600.0
#: rough seconds per inner-loop step of the compiled kernels and per Python-loop step
SECONDS_PER_STEP = 2e-9
#: blocks up to this size get the exact T_max in estimates; above it a lower bound (see _t_max)
N_EXACT = 200_000


class ResourceError(validate.ConfigError):
    """A request needs more memory or time than the limit (the message gives both)."""


@dataclass(frozen=True)
class Estimate:
    """What a request needs: bytes of memory, seconds (rough), and what it is."""

    what: str
    bytes: float
    seconds: float


def _env_positive(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise validate.ConfigError(f"{name}={raw!r} must be a positive number")
    return value


def available_memory() -> float:
    """Bytes of memory available now (MemAvailable, else free physical pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 8 * GiB


def memory_limit() -> tuple[float, str]:
    """The memory limit in bytes and where it comes from (for the message)."""
    env = _env_positive("CIS_MEMORY_LIMIT_GB")
    if env is not None:
        return env * GiB, "CIS_MEMORY_LIMIT_GB"
    return MEMORY_FRACTION * available_memory(), (
        f"{MEMORY_FRACTION:.0%} of available memory; set CIS_MEMORY_LIMIT_GB to change"
    )


def time_limit() -> tuple[float, str]:
    """The time limit in seconds and where it comes from."""
    env = _env_positive("CIS_TIME_LIMIT_S")
    if env is not None:
        return env, "CIS_TIME_LIMIT_S"
    return TIME_LIMIT_S, "set CIS_TIME_LIMIT_S to change"


def _human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 86400 * 3:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:.3g} days"


def check(est: Estimate) -> Estimate:
    """Raise ResourceError when ``est`` exceeds the memory or time limit; else return it."""
    small = est.bytes < SMALL_BYTES and _env_positive("CIS_MEMORY_LIMIT_GB") is None
    mem, mem_src = (math.inf, "") if small else memory_limit()
    if est.bytes > mem:
        raise ResourceError(
            f"{est.what} needs about {est.bytes / GiB:.3g} GiB of memory, more than the limit "
            f"of {mem / GiB:.3g} GiB ({mem_src}); use smaller parameters"
        )
    secs, secs_src = time_limit()
    if est.seconds > secs:
        raise ResourceError(
            f"{est.what} would take about {_human_seconds(est.seconds)}, more than the limit "
            f"of {_human_seconds(secs)} ({secs_src}); use smaller parameters"
        )
    return est


# ----------------------------------------------------------------------------- estimates


def _as_int(value: object) -> int | None:
    """``value`` as int when it is a plain integer (else None: validation reports it later)."""
    try:
        return validate.integer("value", value)
    except validate.ConfigError:
        return None


def _t_max(n: int, S: int) -> float:
    """T_max(n, S) exactly for n <= N_EXACT, else a lower bound that costs as little.

    The lower bound counts only the steps a block of N_EXACT neurons allows (a subset of the
    steps of n, each laying its progressions over all n neurons), so a refusal based on it is
    never a false one.
    """
    from kernel._jit_patterns import _count_progressions
    from kernel.patterns import allowed_steps

    return float(_count_progressions(allowed_steps(min(n, N_EXACT), S), n, S))


def capacity_estimate(n: int, S: int) -> Estimate:
    """T_max(n, S): a vectorised pass over the candidate steps k < n/(S-1) (a few array
    operations each, ``patterns.allowed_steps``), an array of the allowed ones."""
    steps = n / max(S - 1, 1)
    return Estimate(f"capacity n={n}, S={S}", steps * 16.0, steps * 20 * SECONDS_PER_STEP)


def network_estimate(D: int, d: int, S: int, T: int | None, L: int, variant: str) -> Estimate:
    """Memory and time of ``build_network``: patterns and their inverse index (L, T, S) with the
    temporaries of their construction, the circuits' weights (L, T, d, d), and for the
    ``random`` variant the (T, n) keys of the pattern draw."""
    n = max(D // max(d, 1), 1)
    cap = capacity_estimate(n, S) if T is None else Estimate("", 0.0, 0.0)
    t = float(T) if T is not None else (_t_max(n, S) if n >= S >= 2 else 1.0)
    patterns = 16.0 * L * t * S + 16.0 * L * (n + 1)
    weights = 16.0 * L * t * d * d + 16.0 * t * d
    keys = 16.0 * t * n if variant == "random" else 0.0
    nbytes = patterns + weights + keys + cap.bytes
    seconds = cap.seconds + SECONDS_PER_STEP * (L * t * (S + d * d) * 10 + keys)
    bound = ">=" if T is None and n > N_EXACT else "="  # _t_max: a lower bound above N_EXACT
    what = f"a network with D={D}, d={d}, S={S}, T{bound}{int(t)}, L={L}"
    return Estimate(what, nbytes, seconds)


def forward_estimate(
    *, B: int, z: int, d: int, L: int, T: int, S: int, D: int, engine: str,
    readout: int = 0, threads: int = 1,
) -> Estimate:
    """Memory and time of ``forward`` on B samples: the ground truth and active read-outs
    (B, L+1, z, d) with their copies, per-sample statistics, requested read-outs (B, L+1, R, d),
    the engine's working arrays ((D, chunk) per worker; the dense engine forms (D, D) and
    (B, D)), and a time of B L T S d steps (every circuit's read-out at every layer)."""
    active = 8.0 * B * (L + 1) * z * d * 8
    stats = 8.0 * B * (L + 1) * 10 + 8.0 * B * z * (d + 1) * 3
    ro = 16.0 * B * (L + 1) * readout * d
    if engine == "dense":
        work = 8.0 * D * D * 6 + 8.0 * B * D * 3 + 16.0 * T * d * d * S * S + 1.0 * B * T
        steps = B * L * (D * D + T * S * d) + T * d * d * S * S
    else:
        work = 8.0 * threads * D * 32 * 4 + 16.0 * threads * T * d
        steps = B * L * T * S * d
    what = f"a forward pass of batch={B} (z={z}, L={L}, T={T}, D={D}, engine={engine})"
    return Estimate(what, active + stats + ro + work, SECONDS_PER_STEP * steps)


def cavity_estimate(samples: int, d: int, L: int, S: int, runs: int = 1) -> Estimate:
    """The cavity Monte Carlo: about twenty (samples, d) pools and chunks of (8000, S, m, d)
    (m ~ 16 sharing circuits), ``runs`` times for a bisection (time only)."""
    chunk = min(samples, 8000)
    nbytes = 8.0 * samples * d * 20 + 8.0 * chunk * S * 16 * d * 8
    seconds = runs * L * samples * S * 16 * d * 20 * SECONDS_PER_STEP
    return Estimate(f"the cavity Monte Carlo with samples={samples}", nbytes, seconds)


# ----------------------------------------------------------------------------- checks


def check_capacity(n: object, S: object) -> None:
    """Refuse a capacity computation T_max(n, S) too large to finish (time or memory)."""
    n_, S_ = _as_int(n), _as_int(S)
    if n_ is not None and S_ is not None and n_ >= S_ >= 2:
        check(capacity_estimate(n_, S_))


def check_network(D: object, d: object, S: object, T: object, L: object, variant: object) -> None:
    """Refuse a network too large to build; silent for parameters validation will reject."""
    D_, d_, S_, L_ = _as_int(D), _as_int(d), _as_int(S), _as_int(L)
    T_ = None if T is None else _as_int(T)
    if None in (D_, d_, S_, L_) or (T is not None and T_ is None):
        return
    assert D_ is not None and d_ is not None and S_ is not None and L_ is not None
    if min(D_, d_, L_) < 1 or S_ < 2 or (T_ is not None and T_ < 1) or D_ % d_ or S_ > D_ // d_:
        return
    if T_ is None:
        check_capacity(D_ // d_, S_)
    check(network_estimate(D_, d_, S_, T_, L_, str(variant)))


def check_forward(net: object, B: int, z: int, engine: str, readout: int = 0) -> None:
    """Refuse a forward pass of B samples on ``net`` that cannot fit."""
    from kernel._numba import n_threads

    check(forward_estimate(
        B=B, z=z, d=net.d, L=net.L, T=net.T, S=net.S, D=net.D,  # type: ignore[attr-defined]
        engine=engine, readout=readout, threads=n_threads(),
    ))


def check_batch(net: object, batch: object, z: object) -> None:
    """Refuse drawing a batch whose forward pass (default engine) cannot fit."""
    B_, z_ = _as_int(batch), _as_int(z)
    if B_ is not None and z_ is not None and B_ >= 1 and z_ >= 1:
        check_forward(net, B_, z_, "auto")


def check_cavity(samples: object, d: object, L: object, S: object = 6, runs: int = 1) -> None:
    """Refuse a cavity Monte Carlo with too many samples."""
    s_, d_, L_, S_ = (_as_int(v) for v in (samples, d, L, S))
    if s_ is not None and d_ is not None and L_ is not None and S_ is not None:
        if min(s_, d_, L_, S_) >= 1:
            check(cavity_estimate(s_, d_, L_, S_, runs=runs))


def check_run(params: dict[str, object]) -> None:
    """Refuse ``run`` (network and forward pass together) when it cannot fit; silent for
    parameters that validation will reject."""
    check_network(*(params.get(k) for k in ("D", "d", "S", "T", "L", "variant")))
    D, d, S, L, B, z = (_as_int(params.get(k)) for k in ("D", "d", "S", "L", "batch", "z"))
    if D is None or d is None or S is None or L is None or B is None or z is None:
        return
    if min(D, d, S, L, B, z) < 1 or D % d or not D // d >= S >= 2:
        return
    T = _as_int(params.get("T")) if params.get("T") is not None else int(_t_max(D // d, S))
    if T is None or T < 1 or z > T:  # z > T: validation names it (not a memory problem)
        return
    from kernel._numba import n_threads

    net = network_estimate(D, d, S, T, L, str(params.get("variant")))
    fwd = forward_estimate(B=B, z=z, d=d, L=L, T=T, S=S, D=D, engine=str(params.get("engine")),
                           threads=n_threads())
    check(Estimate(f"{fwd.what} on {net.what}", net.bytes + fwd.bytes, net.seconds + fwd.seconds))
