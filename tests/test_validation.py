"""Bad input: one table, each row an error that names the parameter and its value."""

from __future__ import annotations

import numpy as np
import pytest

from kernel import (
    ConfigError,
    build_network,
    circuits_from_arrays,
    forward,
    make_batch,
    make_circuits,
    run,
    sample_batch,
    user_network,
)
from kernel.patterns import capacity, prime_step_patterns

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

NET = dict(D=200, d=4, S=5, T=20, L=2)
BAD = [
    ("D not divisible", lambda: build_network(D=1001, d=4), r"D=1001 must be divisible by d=4"),
    ("S below 2", lambda: build_network(D=100, S=1), r"S=1 must be >= 2"),
    ("S above n", lambda: build_network(D=20, d=4, S=6), r"S=6 must be <= n=D/d=5"),
    ("T above T_max", lambda: build_network(D=1000, S=6, T=900), r"T=900 exceeds .*T_max=557"),
    ("T zero", lambda: build_network(D=1000, T=0), r"T=0 must be >= 1"),
    ("T float", lambda: build_network(D=1000, T=2.5), r"T=2.5 must be an integer"),
    ("L zero", lambda: build_network(D=1000, L=0), r"L=0 must be >= 1"),
    ("positive bias", lambda: build_network(D=1000, bias=0.1), r"bias=0.1 must be <= 0"),
    ("nan bias", lambda: build_network(D=1000, bias=float("nan")), r"bias=nan must be finite"),
    ("family", lambda: build_network(D=1000, family="relu"), r"family='relu' is not one of"),
    ("variant", lambda: build_network(D=1000, variant="x"), r"variant='x' is not one of"),
    ("signed odd d", lambda: build_network(D=999, d=3, S=5), r"d=3 must be even"),
    ("random needs T", lambda: build_network(D=100, variant="random"), r"T must be given"),
    ("negative seed", lambda: build_network(D=1000, seed=-1), r"seed=-1 must be >= 0"),
    ("capacity n < S", lambda: capacity(3, 6), r"n=3 must be >= 6"),
    ("patterns", lambda: prime_step_patterns(250, 6, 558), r"T=558 exceeds .*T_max=557"),
    ("z above T", lambda: sample_batch(build_network(**NET), 3, 21), r"z=21 must be <= 20"),
    ("z zero", lambda: run(**NET, z=0), r"z=0 must be >= 1"),
    ("batch zero", lambda: sample_batch(build_network(**NET), 0, 2), r"batch=0 must be >= 1"),
    ("engine", lambda: run(**NET, engine="gpu"), r"engine='gpu' is not one of"),
    ("unknown run field", lambda: run(**NET, depth=3), r"unknown parameter"),
    (
        "weights rank",
        lambda: circuits_from_arrays(np.zeros((2, 3, 4)), 0.0, np.zeros((2, 4))),
        r"weights has shape \(2, 3, 4\), expected \(T, L, d, d\)",
    ),
    (
        "weights nan",
        lambda: circuits_from_arrays(np.full((2, 1, 2, 2), np.nan), 0.0, np.zeros((2, 2))),
        r"weights contains non-finite",
    ),
    (
        "inputs shape",
        lambda: circuits_from_arrays(np.zeros((2, 1, 2, 2)), 0.0, np.zeros((3, 2))),
        r"inputs has shape \(3, 2\), expected \(2, 2\)",
    ),
    (
        "inputs negative",
        lambda: circuits_from_arrays(np.zeros((2, 1, 2, 2)), 0.0, -np.ones((2, 2))),
        r"inputs has negative entries",
    ),
    (
        "bias array positive",
        lambda: circuits_from_arrays(np.zeros((2, 1, 2, 2)), np.ones((1, 2)), np.zeros((2, 2))),
        r"bias has positive entries",
    ),
    (
        "bias array shape",
        lambda: make_circuits("gaussian", 2, 2, 3, bias=np.zeros((3, 3))),
        r"bias has shape \(3, 3\), expected \(2, 3\)",
    ),
    (
        "user D",
        lambda: user_network(np.zeros((2, 1, 2, 2)), 0.0, np.zeros((2, 2)), D=7, S=2),
        r"D=7 must be divisible by d=2",
    ),
    (
        "active out of range",
        lambda: make_batch(build_network(**NET), [[0, 20]]),
        r"active has indices in \[0, 20\], allowed \[0, T-1=19\]",
    ),
    ("active repeated", lambda: make_batch(build_network(**NET), [[3, 3]]), r"repeated circuit"),
    (
        "active float",
        lambda: make_batch(build_network(**NET), [[0.5, 1.0]]),
        r"active has dtype float64",
    ),
    (
        "readout ids",
        lambda: forward(
            build_network(**NET), sample_batch(build_network(**NET), 1, 1), readout=[25]
        ),
        r"readout has ids in \[25, 25\]",
    ),
    (
        "readout word",
        lambda: forward(
            build_network(**NET), sample_batch(build_network(**NET), 1, 1), readout="some"
        ),
        r"readout='some' is not one of 'all'",
    ),
    (
        "dense too large",
        lambda: build_network(D=40000, d=4, S=5, T=10).dense_layer(2),
        r"D=40000 is too large",
    ),
]


@pytest.mark.parametrize(("make", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_rejected_with_a_message_naming_it(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
