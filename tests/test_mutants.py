"""The property suite catches planted faults: each mutation of the construction, built through a
test-only hook (``tests/mutants.py``), makes at least one property fail, while the same hooks
without a fault pass.

Network mutations (tampered patterns or configuration) run through the shipped engines. Engine
mutations are planted in ``tests.mutants.numpy_forward``, a NumPy re-implementation of the dense
forward pass, **not** in the numba kernels of ``kernel/_jit.py``; see ``tests/mutants.py`` for
exactly which parts each fault changes.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from properties.suite import PROPERTIES, run_property
from tests.mutants import NETWORK_MUTANTS, mutant_engine

# derandomised, stop at the first failing example (no shrinking): cheap and reproducible
MUTANT_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)

#: (mutation, hook kind, properties each expected to fail on it)
CAUGHT = [
    ("share_two_neurons", "network", ["pairwise_overlap_at_most_one", "layer1_max_sandwich"]),
    ("no_shuffle", "network", ["layer_shuffles_are_independent"]),
    ("off_by_one_S", "network", ["unembed_inverts_embed", "engines_agree",
                                 "layer1_worst_case_sandwich", "layer1_inactive_mse"]),
    ("inv_S_plus_one", "engine", ["single_circuit_exact_at_layer_one", "disjoint_patterns_exact",
                                  "layer1_inactive_mse", "engines_agree"]),
    ("w1_not_identity", "engine", ["single_circuit_exact_at_layer_one",
                                   "layer1_worst_case_sandwich", "layer1_inactive_mse"]),
    ("bias_per_circuit", "engine", ["single_circuit_exact_at_layer_one",
                                    "layer1_worst_case_sandwich", "engines_agree"]),
    ("drop_copy", "engine", ["single_circuit_exact_at_layer_one", "disjoint_patterns_exact",
                             "layer1_inactive_mse"]),
    ("drop_copy_renormalised", "engine", ["layer1_worst_case_sandwich", "layer1_inactive_mse",
                                          "engines_agree"]),
    # beyond the required list: faults that only the metamorphic properties are aimed at, to show
    # that those can fail too
    ("readout_index_shift", "engine", ["relabelling_invariance"]),
    ("relu_threshold", "engine", ["input_scaling"]),
    ("on_indicator_leak", "engine", ["zero_input_circuit_changes_nothing"]),
]

CASES = [(m, kind, p) for m, kind, props in CAUGHT for p in props]


def _hooks(mutation: str | None, kind: str) -> dict:
    if kind == "network":
        return {"mutate": NETWORK_MUTANTS[mutation]} if mutation else {}
    return {"engine": mutant_engine(mutation)}


@pytest.mark.parametrize(("mutation", "kind", "prop"), CASES,
                         ids=[f"{m}-{p}" for m, _, p in CASES])
def test_property_fails_on_mutant(mutation, kind, prop):
    rep = run_property(PROPERTIES[prop], MUTANT_SETTINGS, stop_at_first_failure=True,
                       **_hooks(mutation, kind))
    assert not rep.passed, f"{prop} did not catch {mutation} in {rep.examples} examples"
    caught = ("AssertionError",)  # a failed check, not a crash
    if mutation == "off_by_one_S":
        # a network whose S disagrees with its patterns' shape would make the compiled passes
        # read S + 1 offsets per circuit, past the pattern rows: the engines' boundary
        # (kernel.validate.network_arrays) now refuses it before any array reaches numba, so the
        # properties that run the engines see that refusal
        caught += ("ConfigError: network offsets has shape",)
    assert rep.failure.startswith(caught), rep.failure


ENGINE_PROPS = sorted({p for _, kind, props in CAUGHT if kind == "engine" for p in props})


@pytest.mark.parametrize("prop", ENGINE_PROPS)
def test_unmutated_numpy_engine_passes(prop):
    # control: the hook itself (NumPy dense path, no fault) does not make the property fail
    rep = run_property(PROPERTIES[prop], settings(MUTANT_SETTINGS, max_examples=25),
                       engine=mutant_engine(None))
    assert rep.passed, rep.failure


def test_every_required_mutation_is_covered():
    required = {"share_two_neurons", "off_by_one_S", "inv_S_plus_one", "no_shuffle",
                "w1_not_identity", "bias_per_circuit", "drop_copy"}
    assert required <= {m for m, _, _ in CAUGHT}
