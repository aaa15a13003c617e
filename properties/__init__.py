"""properties: Hypothesis strategies and property checks of the construction.

- ``properties.strategies``: named, composable strategies of valid configurations (structural
  parameters + seed), circuits satisfying A1–A5, and deliberately invalid inputs;
- ``properties.checks``: every check as a plain function returning a ``CheckResult`` (passed,
  value, bound, slack, message, numbers), grouped in ``structural``, ``exactness``,
  ``metamorphic``, ``sandwich`` and ``statistical``;
- ``properties.suite``: the registry ``PROPERTIES`` (strategy + check) that ``tests/`` and
  ``cis verify`` run, with test hooks ``mutate`` (network) and ``engine`` (forward pass).
"""
