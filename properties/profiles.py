"""Hypothesis settings profiles of the property suite.

The same three as ``tests/conftest.py`` (which pytest loads by ``HYPOTHESIS_PROFILE``); registered
here too so that ``cis verify`` has them without the test tree.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROFILES = {
    "dev": {"max_examples": 20, "deadline": None},
    "ci": {"max_examples": 100, "deadline": None, "derandomize": True, "print_blob": True,
           "suppress_health_check": [HealthCheck.too_slow]},
    "thorough": {"max_examples": 5000, "deadline": None,
                 "suppress_health_check": [HealthCheck.too_slow]},
}


def profile(name: str, max_examples: int | None = None) -> settings:
    """The settings of profile ``name``, optionally with another ``max_examples``."""
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is not one of {', '.join(map(repr, PROFILES))}")
    s = settings(**PROFILES[name])  # type: ignore[arg-type]
    return settings(s, max_examples=max_examples) if max_examples else s
