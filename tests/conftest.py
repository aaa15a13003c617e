"""Hypothesis profiles (STYLE item 10) and a session fixture that compiles the kernels once."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from properties.profiles import PROFILES

for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def warm_jit() -> None:
    """Compile (or load from cache) every numba kernel before any test is timed."""
    from kernel import build_network, forward, sample_batch

    net = build_network(D=60, d=4, S=3, T=10, L=2)
    batch = sample_batch(net, 2, 2)
    for engine in ("factorised", "sparse"):
        forward(net, batch, engine=engine)
