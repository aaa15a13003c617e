"""The property suite: each property = a strategy of examples + how to check one example.

One registry serves both ``tests/test_properties.py`` (pytest, ``@given``) and ``cis verify``
(``run_property``). Every property accepts two test hooks:

- ``mutate``: ``Network -> Network``, applied to every network built (tampered patterns, ...);
- ``engine``: an Engine (``properties.engines``) used in place of the kernel's engine; for
  ``engines_agree`` it replaces the ``dense`` oracle and is compared with factorised and sparse.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, assume, given, note, settings, target
from hypothesis import strategies as st

from kernel import circuits, constructions
from kernel.network import Network, build_network
from properties import checks as C
from properties import strategies as cst
from properties.engines import Engine
from properties.result import CheckResult

Mutate = Callable[[Network], Network]

# Sizes of the suite's examples: small enough for thousands of examples, large enough to share
# neurons (T up to T_max(n, S) for n <= 30, capped at 200 circuits).
N = st.integers(4, 30) | st.sampled_from([16, 24, 30])  # integer draws alone favour tiny n
T_CAP = 200


def _configs(**kw: Any) -> st.SearchStrategy:
    return cst.network_configs(n=kw.pop("n", N), T_max=kw.pop("T_max", T_CAP), **kw)


def _scenarios(**kw: Any) -> st.SearchStrategy:
    z = kw.pop("z", st.integers(1, 4))
    batch = kw.pop("batch", st.integers(1, 6))
    return cst.scenarios(_configs(**kw), z=z, batch=batch)


def _net(cfg: Any, mutate: Mutate | None) -> Network:
    net = build_network(cfg)
    return mutate(net) if mutate else net


@dataclass(frozen=True)
class Property:
    """A named property: ``strategy`` draws examples, ``check(example, mutate, engine)`` checks."""

    name: str
    kind: str
    strategy: st.SearchStrategy
    check: Callable[[Any, Mutate | None, Engine | None], CheckResult]
    doc: str = ""


def _structural(name: str, **kw: Any) -> Property:
    f = C.CHECKS[name]
    return Property(name, "structural", _configs(**kw),
                    lambda cfg, mutate, engine: f(_net(cfg, mutate)), f.__doc__ or "")


def _engines_agree(sc: cst.Scenario, mutate: Mutate | None, engine: Engine | None) -> CheckResult:
    net = _net(sc.config, mutate)
    engines: dict[str, Any] = {"dense": engine or "dense", "factorised": "factorised",
                               "sparse": "sparse"}
    return C.engines_agree(net, sc.sample(net), engines)


def _z1(cfg: Any, mutate: Mutate | None, engine: Engine | None) -> CheckResult:
    return C.single_circuit_exact_at_layer_one(_net(cfg, mutate), engine)


def _disjoint(sc: cst.Scenario, mutate: Mutate | None, engine: Engine | None) -> CheckResult:
    net = _net(sc.config, mutate)
    return C.disjoint_patterns_exact(net, sc.sample(net), engine)


def _relabel(ex: tuple[cst.Scenario, int], mutate: Mutate | None,
             engine: Engine | None) -> CheckResult:
    sc, seed = ex
    net = _net(sc.config, mutate)
    perm = np.random.default_rng(seed).permutation(net.T)
    return C.relabelling_invariance(net, sc.sample(net), perm, engine)


def _scaling(ex: tuple[cst.Scenario, float], mutate: Mutate | None,
             engine: Engine | None) -> CheckResult:
    sc, c = ex
    net = _net(sc.config, mutate)
    return C.input_scaling(net, sc.sample(net), c, engine)


def _zero_input(ex: tuple[cst.Scenario, int], mutate: Mutate | None,
                engine: Engine | None) -> CheckResult:
    sc, seed = ex
    assume(sc.z < int(sc.config.T))  # type: ignore[arg-type]
    net = _net(sc.config, mutate)
    batch = sc.sample(net)
    rng = np.random.default_rng(seed)
    extra = []
    for row in batch.active:
        free = np.setdiff1d(np.arange(net.T), row)
        extra.append(int(rng.choice(free)))
    return C.zero_input_circuit_changes_nothing(net, batch, np.array(extra), engine)


def _sandwich(name: str) -> Callable[..., CheckResult]:
    f = C.CHECKS[name]

    def check(sc: cst.Scenario, mutate: Mutate | None, engine: Engine | None) -> CheckResult:
        net = _net(sc.config, mutate)
        return f(net, sc.sample(net), engine)

    return check


def _statistical(sc: cst.Scenario, mutate: Mutate | None, engine: Engine | None) -> CheckResult:
    assume(sc.z < int(sc.config.T))  # type: ignore[arg-type]
    net = _net(sc.config, mutate)
    return C.layer1_inactive_mse(net, sc.sample(net), engine)


ZERO = st.just(0.0)
PRIME_STEP = ("plain", "corrected")
CONSTRUCTIONS = tuple(constructions.CONSTRUCTIONS)
#: families without a bias of their own (input scaling needs a homogeneous network)
UNBIASED = tuple(f for f, fam in circuits.FAMILIES.items() if fam.own_bias is None)

PROPERTIES: dict[str, Property] = {p.name: p for p in [
    _structural("touches_exactly_S_d_neurons"),
    _structural("unembed_inverts_embed", constructions=CONSTRUCTIONS),
    _structural("pairwise_overlap_at_most_one", variants=PRIME_STEP),
    _structural("load_balance", variants=PRIME_STEP),
    _structural("layer_permutations_are_permutations"),
    # T >= 13 and L >= 2, else the check is vacuous; prime-step rows are distinct
    _structural("layer_shuffles_are_independent", variants=PRIME_STEP, T_min=13,
                L=st.integers(2, 3)),
    _structural("inverse_index_matches"),
    _structural("capped_offsets_well_formed", constructions=CONSTRUCTIONS, L=st.integers(2, 3)),
    Property("engines_agree", "exactness", _scenarios(constructions=CONSTRUCTIONS), _engines_agree,
             C.engines_agree.__doc__ or ""),
    Property("single_circuit_exact_at_layer_one", "exactness", _configs(), _z1,
             C.single_circuit_exact_at_layer_one.__doc__ or ""),
    Property("disjoint_patterns_exact", "exactness",
             cst.scenarios(cst.disjoint_configs(n=N)), _disjoint,
             C.disjoint_patterns_exact.__doc__ or ""),
    Property("relabelling_invariance", "metamorphic", st.tuples(_scenarios(), cst.SEEDS),
             _relabel, C.relabelling_invariance.__doc__ or ""),
    Property("input_scaling", "metamorphic",
             st.tuples(_scenarios(bias=ZERO, families=UNBIASED), st.floats(0.01, 100.0)),
             _scaling,
             C.input_scaling.__doc__ or ""),
    Property("zero_input_circuit_changes_nothing", "metamorphic",
             st.tuples(_scenarios(), cst.SEEDS), _zero_input,
             C.zero_input_circuit_changes_nothing.__doc__ or ""),
    Property("layer1_worst_case_sandwich", "sandwich", _scenarios(),
             _sandwich("layer1_worst_case_sandwich"), C.layer1_worst_case_sandwich.__doc__ or ""),
    Property("layer1_max_sandwich", "sandwich", _scenarios(variants=PRIME_STEP),
             _sandwich("layer1_max_sandwich"), C.layer1_max_sandwich.__doc__ or ""),
    # the regime of the estimate: b = 0 and h^1 >= 0 (permutation circuits); T >= 3
    Property("layer1_inactive_mse", "statistical",
             _scenarios(families=("permutation",), bias=ZERO, T_min=3,
                        batch=st.integers(200, 400)),
             _statistical, C.layer1_inactive_mse.__doc__ or ""),
]}


# ----------------------------------------------------------------------------- running


@dataclass
class PropertyReport:
    """Outcome of running one property under a Hypothesis settings object."""

    name: str
    kind: str
    examples: int = 0
    passed: bool = True
    worst_slack: float = math.inf
    worst_message: str = ""
    failure: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"property": self.name, "kind": self.kind, "examples": self.examples,
                "passed": self.passed, "worst_slack": self.worst_slack,
                "worst_message": self.worst_message, "failure": self.failure,
                "seconds": self.seconds}


def check_example(prop: Property, example: Any, mutate: Mutate | None = None,
                  engine: Engine | None = None) -> CheckResult:
    """Check one example inside a Hypothesis test: ``note`` value, bound, gap; ``target`` the
    slack (as -slack, since Hypothesis maximises targets: the search is driven towards the bound).
    """
    r = prop.check(example, mutate, engine)
    note(f"{r.name}: value={r.value:.6g} bound={r.bound:.6g} gap={r.bound - r.value:.3g} "
         f"slack={r.slack:.3g} {r.numbers}")
    if math.isfinite(r.slack):
        # Hypothesis maximises a target: maximise -slack to search towards the bound
        target(-float(r.slack), label=f"minus slack of {r.name}")
    return r


def run_property(prop: Property, config: settings, *, mutate: Mutate | None = None,
                 engine: Engine | None = None, stop_at_first_failure: bool = False
                 ) -> PropertyReport:
    """Run ``prop`` under Hypothesis ``config`` and summarise (examples, worst slack, failure)."""
    rep = PropertyReport(prop.name, prop.kind)
    # quiet: Hypothesis would print to stdout (e.g. "You can reproduce this failure by adding
    # @seed(...)" when Ctrl-C ends a test), which holds only the table or the JSON; a failure
    # is reported through the exception instead (``failure``)
    kw: dict[str, Any] = {"parent": config, "database": None, "verbosity": Verbosity.quiet}
    if stop_at_first_failure:
        kw["phases"] = [Phase.explicit, Phase.generate]
    kw["suppress_health_check"] = [*config.suppress_health_check, HealthCheck.too_slow,
                                   HealthCheck.filter_too_much]

    @settings(**kw)
    @given(prop.strategy)
    def inner(example: Any) -> None:
        r = check_example(prop, example, mutate, engine)
        rep.examples += 1
        if r.slack < rep.worst_slack:
            rep.worst_slack, rep.worst_message = r.slack, r.message
        assert r.passed, r.message

    t0 = time.perf_counter()
    try:
        inner()
    except Exception as exc:  # a failing example (AssertionError) or an error in the check
        rep.passed = False
        rep.failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
    rep.seconds = time.perf_counter() - t0
    return rep
