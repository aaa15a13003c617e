"""The compiled triad of ``cis bench`` (``kernel.bench.triad``) against its NumPy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from kernel.bench import triad

pytestmark = pytest.mark.nojit  # a tiny array: also run without the JIT


def test_triad_equals_numpy_b_plus_s_c():
    rng = np.random.default_rng(3)
    b, c = rng.standard_normal(1001), rng.standard_normal(1001)
    a = np.full(1001, np.nan)
    triad(a, b, c, -2.5)
    np.testing.assert_array_equal(a, b + -2.5 * c)  # one multiply-add per element, no fastmath
