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
    from kernel.engines import compile_kernels

    compile_kernels()
