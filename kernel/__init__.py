"""kernel: the construction (docs/construction.md) and its exact, fast forward pass.

Public API::

    from kernel import NetworkConfig, build_network, sample_batch, forward, run
"""

from kernel.circuits import (
    FAMILIES,
    Circuits,
    circuits_from_arrays,
    make_circuits,
    run_small,
    with_on_indicator,
)
from kernel.constructions import CONSTRUCTIONS, Construction
from kernel.engines import ENGINES, Batch, ForwardResult, forward, make_batch, sample_batch
from kernel.io import load_network, save_network
from kernel.measure import RunConfig, RunResult, layer_stats, run
from kernel.network import Network, NetworkConfig, build_network, user_network
from kernel.patterns import capacity, packing_bound, smallest_block
from kernel.validate import ConfigError

__all__ = [
    "CONSTRUCTIONS", "ENGINES", "FAMILIES", "Batch", "Circuits", "ConfigError", "Construction",
    "ForwardResult", "Network", "NetworkConfig",
    "RunConfig", "RunResult", "build_network", "capacity", "circuits_from_arrays", "forward",
    "layer_stats", "load_network", "make_batch", "make_circuits", "packing_bound", "run",
    "run_small", "sample_batch", "save_network", "smallest_block", "user_network",
    "with_on_indicator",
]
