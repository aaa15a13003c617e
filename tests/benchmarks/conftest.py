"""Benchmark grid: the full grid when benchmarks are timed, the smallest size when
they are smoke-run by plain ``pytest`` (``--benchmark-disable`` in addopts).

Timed run, saved and compared with the last saved run (see docs/performance.md)::

    pytest tests/benchmarks --benchmark-enable --benchmark-autosave \
        --benchmark-compare --benchmark-compare-fail=median:25% --benchmark-group-by=group
"""

from __future__ import annotations

import functools

import numpy as np


def timed(config) -> bool:
    return not (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


def pytest_generate_tests(metafunc) -> None:
    if "D" in metafunc.fixturenames:
        sizes = [1000, 4000, 8000] if timed(metafunc.config) else [1000]
        metafunc.parametrize("D", sizes, ids=[f"D{D}" for D in sizes])


@functools.lru_cache(maxsize=4)
def network(D: int, bias: float, L: int):
    """signed circuits, d = 4, S = 6, T = min(D, T_max) (D = 8000: the working regime of
    docs/performance.md; D = 1000: T = T_max = 557)."""
    from kernel import build_network, capacity

    return build_network(D=D, S=6, T=min(D, capacity(D // 4, 6)), L=L, family="signed",
                         bias=bias, seed=0)


@functools.lru_cache(maxsize=2)
def dense_matrices(D: int, bias: float, L: int, dtype: str) -> list[np.ndarray]:
    """W^l transposed (l = 2..L), formed once per network outside every timer."""
    net = network(D, bias, L)
    return [np.ascontiguousarray(net.dense_layer(layer).T, dtype=dtype)
            for layer in range(2, L + 1)]
