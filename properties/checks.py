"""Every property check, as plain functions returning a ``CheckResult``.

Split by kind into ``structural``, ``exactness``, ``metamorphic``, ``sandwich`` and
``statistical``; this module gathers them. Each takes the network (and, where it runs the network,
a batch and an optional ``engine``), so it can be pointed at a user's network or engine, or at a
test-only mutant.

>>> from kernel import build_network
>>> from properties.checks import pairwise_overlap_at_most_one
>>> r = pairwise_overlap_at_most_one(build_network(D=400, S=5, T=100, L=2))
>>> r.passed, r.value, r.bound
(True, 1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from properties.exactness import (
    EXACTNESS,
    disjoint_patterns_exact,
    engines_agree,
    single_circuit_exact_at_layer_one,
)
from properties.metamorphic import (
    METAMORPHIC,
    input_scaling,
    relabel,
    relabelling_invariance,
    zero_input_circuit_changes_nothing,
)
from properties.result import CheckResult
from properties.sandwich import (
    SANDWICH,
    layer1_max_sandwich,
    layer1_overlap_bound,
    layer1_worst_case_sandwich,
)
from properties.statistical import (
    STATISTICAL,
    layer1_inactive_mse,
    layer1_inactive_prediction,
)
from properties.structural import (
    STRUCTURAL,
    capped_offsets_well_formed,
    inverse_index_matches,
    layer_permutations_are_permutations,
    layer_shuffles_are_independent,
    load_balance,
    pairwise_overlap_at_most_one,
    touches_exactly_S_d_neurons,
    unembed_inverts_embed,
)

#: check name -> function, grouped by kind
KINDS: dict[str, Mapping[str, Callable[..., CheckResult]]] = {
    "structural": STRUCTURAL, "exactness": EXACTNESS, "metamorphic": METAMORPHIC,
    "sandwich": SANDWICH, "statistical": STATISTICAL,
}
CHECKS = {name: f for group in KINDS.values() for name, f in group.items()}

__all__ = [
    "CHECKS", "KINDS", "CheckResult", "capped_offsets_well_formed", "disjoint_patterns_exact",
    "engines_agree", "input_scaling",
    "inverse_index_matches", "layer1_inactive_mse", "layer1_inactive_prediction",
    "layer1_max_sandwich", "layer1_overlap_bound", "layer1_worst_case_sandwich",
    "layer_permutations_are_permutations", "layer_shuffles_are_independent", "load_balance",
    "pairwise_overlap_at_most_one", "relabel", "relabelling_invariance",
    "single_circuit_exact_at_layer_one", "touches_exactly_S_d_neurons", "unembed_inverts_embed",
    "zero_input_circuit_changes_nothing",
]
