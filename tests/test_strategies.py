"""properties.strategies: valid draws build, A1–A5 hold, invalid draws raise the right message."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel import build_network, capacity, smallest_block, user_network
from kernel.validate import ConfigError
from properties import strategies as cst
from properties.strategies import _INVALID_CONFIGS

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT


@given(cst.scenarios())
def test_scenarios_are_valid_and_build(sc):
    cfg = sc.config
    n = cfg.D // cfg.d
    assert cfg.D == cfg.d * n and 2 <= cfg.S <= n
    assert 1 <= cfg.T <= capacity(n, cfg.S) and 1 <= sc.z <= cfg.T
    net = sc.network()
    batch = sc.sample(net)
    assert batch.active.shape == (sc.batch, sc.z)


@given(cst.disjoint_configs())
def test_disjoint_configs_share_no_neuron(cfg):
    net = build_network(cfg)
    for layer in range(net.L):
        assert np.bincount(net.offsets[layer].ravel()).max() == 1


@given(cst.user_circuits(), st.integers(2, 4))
def test_user_circuits_satisfy_a1_to_a5(uc, S):
    circ = uc.circuits()
    n = max(S * S + 1, smallest_block(circ.T, S))  # A1 with z = 1: S^2 / n < 1
    report = cst.assumption_report(circ, z=1, n=n, S=S)
    assert all(report.values()), report
    net = uc.network(D=circ.d * n, S=S)
    assert net.T == circ.T


def test_assumption_report_flags_violations():
    rng = np.random.default_rng(0)
    w = np.abs(rng.standard_normal((5, 2, 3, 3))) * 3  # one sign, gain > 1
    net = user_network(w, 0.0, np.ones((5, 3)), D=30, S=3)
    rep = cst.assumption_report(net.circuits, z=8, n=10, S=3)  # A1: 8 * 9 / 10 >= 1
    assert rep == {"A1": False, "A2": False, "A3": True, "A4": False, "A5": False}
    # A1 needs z, n and S; without them it is vacuous
    assert cst.assumption_report(net.circuits, z=8, n=10)["A1"] is True


@pytest.mark.parametrize(("case", "broken", "message"), _INVALID_CONFIGS,
                         ids=[c[0] for c in _INVALID_CONFIGS])
def test_invalid_config_table(case, broken, message):
    base = {"D": 4 * 30, "d": 4, "S": 3, "T": 10, "L": 2, "family": "gaussian", "seed": 0}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_network(**{**base, **broken})


@given(cst.invalid_configs())
def test_invalid_configs_raise_their_message(case_kwargs_message):
    case, kwargs, message = case_kwargs_message
    with pytest.raises(ConfigError) as exc:
        build_network(**kwargs)
    assert message in str(exc.value), (case, str(exc.value))


@given(cst.invalid_circuits())
def test_invalid_circuits_raise_their_message(case_kwargs_message):
    case, kwargs, message = case_kwargs_message
    with pytest.raises(ConfigError) as exc:
        user_network(**kwargs)
    assert message in str(exc.value), (case, str(exc.value))
