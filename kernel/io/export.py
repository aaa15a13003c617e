"""Exports: a network as plain arrays that any framework can load without cis-toolkit.

Two layouts (docs/io.md has the full key table):

- ``dense``: the network as a feed-forward model. ``net.0.weight`` (D, T*d) embeds the
  concatenated circuit inputs (already multiplied by the first small weights); ``net.{2l-1}``
  (weight (D, D), bias (D,)) is layer l = 1..L, followed by a ReLU at ``net.{2l}`` (W^1 = I);
  ``readout.{l-1}.weight`` (T*d, D) reads every circuit out of layer l. These names are the
  ``state_dict`` keys of an ``nn.ModuleDict(net=nn.Sequential(...), readout=nn.ModuleList(...))``.
- ``factorised``: the arrays that define the network (``kernel.io.network_arrays``), O(T) memory.

Both carry the ground truth: the small circuits (``circuits.*``) and, per layer, the S*d neuron
indices of every circuit (``truth.neurons``, (L, T, d, S)), and the configuration as metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kernel import validate
from kernel.io.netfile import network_arrays, package_version, safetensors_numpy, write_atomic
from kernel.network import Network

#: default size limit of a dense export (bytes); larger ones need ``force``
DENSE_LIMIT = 4 * 2**30
#: marker and version of an export file's metadata
FORMAT = "cis-export"
FORMAT_VERSION = "1"
LAYOUTS = ("dense", "factorised")
FORMATS = ("safetensors", "npz")


def neuron_indices(net: Network) -> np.ndarray:
    """(L, T, d, S) int64: ``[l-1, t, i, s]`` is the flat index i*n + k of the s-th large neuron
    that carries small neuron i of circuit t at layer l (its pattern's s-th offset k)."""
    return np.arange(net.d)[None, None, :, None] * net.n + net.offsets[:, :, None, :].astype(
        np.int64
    )


def input_embedding(net: Network) -> np.ndarray:
    """(D, T*d): column t*d + j maps input j of circuit t to A^0, i.e. the blocks E_t^1 w_t^1."""
    E = net.dense_input_embedding(1).reshape(net.D, net.T, net.d)  # [E_1^1 ... E_T^1]
    return np.einsum("Dti,tij->Dtj", E, net.circuits.weights[0]).reshape(net.D, net.T * net.d)


def readout_matrix(net: Network, layer: int) -> np.ndarray:
    """(T*d, D): rows t*d .. t*d + d-1 are U_t^l, so ``readout_matrix(net, l) @ A^l`` stacks the
    read-outs of all circuits."""
    U = (1.0 / net.S + net.read_c) * net.dense_input_embedding(layer).T
    if net.read_c:  # u = (1/S + c) e - c 1 in each block
        blocks = np.kron(np.eye(net.d), np.ones((1, net.n)))  # (d, D)
        U -= net.read_c * np.tile(blocks, (net.T, 1))
    return U


def dense_layer_weight(net: Network, layer: int) -> np.ndarray:
    """W^l (D, D); W^1 = I because the embedding already applies the first small weights."""
    return np.eye(net.D) if layer == 1 else net.dense_layer(layer)


def dense_bytes(net: Network) -> int:
    """Bytes of a dense export: embedding, L layers, L read-outs (float64) and the labels."""
    D, Td, L = net.D, net.T * net.d, net.L
    floats = D * Td + L * (D * D + D) + L * Td * D + net.circuits.weights.size + L * net.d + Td
    return 8 * floats + 8 * L * net.T * net.d * net.S


def _truth(net: Network) -> dict[str, np.ndarray]:
    return {
        "circuits.weights": net.circuits.weights,
        "circuits.bias": net.circuits.bias,
        "circuits.inputs": net.circuits.inputs,
        "truth.neurons": neuron_indices(net),
    }


def dense_arrays(net: Network) -> dict[str, np.ndarray]:
    """The dense layout (see the module docstring), by key."""
    out = {"net.0.weight": input_embedding(net)}
    bias = np.repeat(net.circuits.bias, net.n, axis=1)  # (L, D): B^l = b^l kron 1_n
    for layer in range(1, net.L + 1):
        out[f"net.{2 * layer - 1}.weight"] = dense_layer_weight(net, layer)
        out[f"net.{2 * layer - 1}.bias"] = bias[layer - 1].copy()
    for layer in range(1, net.L + 1):
        out[f"readout.{layer - 1}.weight"] = readout_matrix(net, layer)
    return {**out, **_truth(net)}


def factorised_arrays(net: Network) -> dict[str, np.ndarray]:
    """The factorised layout: ``kernel.io.network_arrays`` plus ``truth.neurons``."""
    return {**network_arrays(net), "truth.neurons": neuron_indices(net)}


def metadata(net: Network, layout: str) -> dict[str, str]:
    """String metadata of an export (safetensors header; the ``metadata`` entry of an npz)."""
    cfg = net.config
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layout": layout,
        "package_version": package_version(),
        "config": json.dumps(cfg.as_dict(), sort_keys=True),
        "family": net.circuits.family,
        "D": str(net.D), "d": str(net.d), "n": str(net.n), "S": str(net.S),
        "T": str(net.T), "L": str(net.L), "read_c": repr(net.read_c),
    }


def export_network(
    net: Network,
    out: str | os.PathLike[str],
    *,
    fmt: str = "safetensors",
    dense: bool = False,
    limit: int = DENSE_LIMIT,
    force: bool = False,
) -> Path:
    """Write the export of ``net`` to ``out``; returns the path.

    A dense export larger than ``limit`` bytes is refused (ConfigError giving its size) unless
    ``force``.
    """
    fmt = validate.choice("format", fmt, FORMATS)
    out = Path(out)
    if dense:
        size = dense_bytes(net)
        if size > limit and not force:
            raise validate.ConfigError(
                f"dense export of D={net.D}, T={net.T}, L={net.L} needs {size / 2**30:.2f} GiB, "
                f"over the limit of {limit / 2**30:.2f} GiB (use --force, or export without "
                "--dense for the factorised form)"
            )
    layout = "dense" if dense else "factorised"
    arrays = dense_arrays(net) if dense else factorised_arrays(net)
    meta = metadata(net, layout)
    if fmt == "safetensors":
        contiguous = {k: np.asarray(v, order="C") for k, v in arrays.items()}
        blob = safetensors_numpy().save(contiguous, metadata=meta)
        write_atomic(out, lambda fh: fh.write(blob))
    else:
        members: dict[str, Any] = {"metadata": np.array(json.dumps(meta)), **arrays}
        write_atomic(out, lambda fh: np.savez(fh, **members))
    return out


def _torch_model(nn: Any, D: int, Td: int, L: int) -> Any:
    """An untrained module with the dense layout's state_dict keys."""

    class CiSModel(nn.Module):  # type: ignore[misc, name-defined]
        """``forward(x)``: x (B, T*d) concatenated circuit inputs (0 for inactive circuits) ->
        (B, L, T*d) read-outs of every circuit at layers 1..L."""

        def __init__(self) -> None:
            super().__init__()
            layers = [nn.Linear(Td, D, bias=False)]
            for _ in range(L):
                layers += [nn.Linear(D, D), nn.ReLU()]
            self.net = nn.Sequential(*layers)
            self.readout = nn.ModuleList(nn.Linear(D, Td, bias=False) for _ in range(L))

        def forward(self, x: Any) -> Any:
            A = self.net[0](x)
            outs = []
            for layer in range(L):
                A = self.net[2 * layer + 2](self.net[2 * layer + 1](A))
                outs.append(self.readout[layer](A))
            import torch

            return torch.stack(outs, dim=1)

    return CiSModel()


def to_torch(net: Network) -> Any:
    """The network as a float64 ``torch.nn.Module`` (the dense layout); needs PyTorch.

    ``model(x)`` maps x (B, T*d), the concatenated inputs of all circuits (0 for inactive ones),
    to the read-outs (B, L, T*d) of every circuit at layers 1..L.
    """
    try:
        import torch
        from torch import nn
    except ModuleNotFoundError:
        raise validate.ConfigError("to_torch needs PyTorch: pip install torch") from None
    model = _torch_model(nn, net.D, net.T * net.d, net.L).double()
    arrays = dense_arrays(net)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, order="C")) for k, v in arrays.items()
                           if k.startswith(("net.", "readout."))})
    return model
