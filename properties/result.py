"""The result object every check returns, usable from scripts and from pytest.

Convention: ``slack >= 0`` exactly when the check passed; it is the margin of the tightest
comparison, normalised so that Hypothesis' ``target`` can search for the smallest one (a slack of 0
means "exactly at the bound"). ``value`` and ``bound`` are the two numbers compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: float64 rounding allowance of exact identities (relative to the scale of the numbers involved)
ROUNDING = 1e-9


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one property check on one example.

    Attributes
    ----------
    name : the check's name (a key of ``properties.checks.CHECKS``).
    passed : whether the property holds on this example.
    value, bound : the measured quantity and what it is compared to (``value <= bound`` style;
        for equalities, ``value`` is the discrepancy and ``bound`` the rounding allowance).
    slack : ``>= 0`` iff passed; the normalised margin (``(bound - value) / scale``).
    message : one line that says what was compared, with the numbers.
    numbers : every other number worth reporting (for ``note``).
    """

    name: str
    passed: bool
    value: float
    bound: float
    slack: float
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def raise_if_failed(self) -> CheckResult:
        """``assert`` for scripts and tests: raise AssertionError with the message if it failed."""
        if not self.passed:
            raise AssertionError(f"{self.name}: {self.message}")
        return self


def compare(name: str, value: float, bound: float, what: str, *, scale: float = 1.0,
            **numbers: Any) -> CheckResult:
    """A ``value <= bound`` comparison; slack is ``(bound - value) / scale``."""
    value, bound = float(value), float(bound)
    scale = float(scale) if scale > 0 else 1.0
    slack = (bound - value) / scale
    passed = bool(value <= bound)
    verdict = "holds" if passed else "FAILS"
    msg = f"{what}: {value:.6g} <= {bound:.6g} {verdict} (gap {bound - value:.3g})"
    return CheckResult(name, passed, value, bound, slack, msg, dict(numbers))


def close(name: str, discrepancy: float, scale: float, what: str, *, rtol: float = ROUNDING,
          **numbers: Any) -> CheckResult:
    """An exact identity up to float64 rounding: ``discrepancy <= rtol * max(scale, 1)``."""
    tol = rtol * max(float(scale), 1.0)
    return compare(name, discrepancy, tol, f"{what} (max discrepancy vs rounding allowance)",
                   scale=tol, scale_of_numbers=float(scale), **numbers)
