"""Files of candidate explanations for ``kernel.score`` (docs/scoring.md).

An npz or safetensors file with, per layer l (module k = 0 for l = 1, k = 2l - 1 for l >= 2, as
in the dense export):

- ``components.net.{k}.V`` (d_in, C') and ``components.net.{k}.U`` (C', D): rank-one parameter
  subcomponents in the APD/SPD layout; optional ``components.net.{k}.labels`` (C',) int, the
  circuit each claims (-1: none). Without it, ``components.labels`` (C', 2) (the export's
  (circuit, small neuron) table) is used when its length matches; otherwise unlabelled;
- ``dictionary.l{l}`` (K, D): feature directions for A^l (decoder rows).

So a dense export is itself a candidates file: the oracle.
"""

from __future__ import annotations

import os
import re

import numpy as np

from kernel import validate
from kernel.io.export import read_export
from kernel.network import Network
from kernel.score import Components


def module_layer(k: int) -> int:
    """Layer of the dense layout's module ``net.{k}``: 1 for k = 0, (k + 1) / 2 otherwise."""
    return 1 if k == 0 else (k + 1) // 2


def layer_module(layer: int) -> int:
    return 0 if layer == 1 else 2 * layer - 1


def read_candidates(path: str | os.PathLike[str], net: Network
                    ) -> tuple[dict[int, Components], dict[int, np.ndarray]]:
    """(components by layer, dictionaries by layer) of a candidates file; ConfigError (one line
    naming the key) for keys of layers the network does not have or of the wrong shape."""
    arrays, _ = read_export(path)
    comps: dict[int, Components] = {}
    dicts: dict[int, np.ndarray] = {}
    shared_labels = arrays.get("components.labels")
    for key in sorted(arrays):
        m = re.fullmatch(r"components\.net\.(\d+)\.V", key)
        if m:
            k = int(m.group(1))
            if k != 0 and (k % 2 == 0 or module_layer(k) < 2):
                raise validate.ConfigError(f"{path}: {key}: net.{k} is not a decomposed module "
                                           "(net.0 and net.{2l-1}, l >= 2)")
            layer = validate.integer(f"{path}: layer of {key}", module_layer(k), high=net.L)
            U = arrays.get(f"components.net.{k}.U")
            if U is None:
                raise validate.ConfigError(f"{path}: {key} has no matching components.net.{k}.U")
            labels = arrays.get(f"components.net.{k}.labels")
            if labels is None and shared_labels is not None and len(shared_labels) == len(U):
                labels = np.asarray(shared_labels)[:, 0]
            comps[layer] = Components(arrays[key], U, labels)
        m = re.fullmatch(r"dictionary\.l(\d+)", key)
        if m:
            layer = validate.integer(f"{path}: {key} layer", int(m.group(1)), low=1, high=net.L)
            dicts[layer] = arrays[key]
    if not comps and not dicts:
        raise validate.ConfigError(
            f"{path}: no candidates (keys components.net.{{k}}.V/U or dictionary.l{{l}})")
    return comps, dicts
