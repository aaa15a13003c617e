"""Hypothesis profiles and a session fixture that compiles the kernels once.

Without the JIT (``NUMBA_DISABLE_JIT=1``, the coverage run of ``.ci/run``) the kernels are plain
Python loops, so that run selects the tests marked ``nojit`` (tiny networks) and uses the
``nojit`` profile: fewer, derandomized examples.
"""

from __future__ import annotations

import os

import numba
import pytest
from hypothesis import HealthCheck, settings

from properties.profiles import PROFILES

#: whether numba compiles (False under NUMBA_DISABLE_JIT=1)
JIT_ENABLED = not numba.config.DISABLE_JIT

for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)  # type: ignore[arg-type]
settings.register_profile("nojit", max_examples=10, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev" if JIT_ENABLED else "nojit"))


@pytest.fixture(scope="session", autouse=True)
def warm_jit() -> None:
    """Compile (or load from cache) every numba kernel before any test is timed."""
    from kernel.engines import compile_kernels

    compile_kernels()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Docstring examples (``--doctest-modules``) are on tiny inputs: marked ``nojit`` too."""
    for item in items:
        if type(item).__name__ == "DoctestItem":
            item.add_marker(pytest.mark.nojit)
