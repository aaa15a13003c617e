"""Exports: a network as plain arrays that any framework can load without cis-toolkit.

Two layouts (docs/io.md has the full key table):

- ``dense``: the network as a feed-forward model. ``net.0.weight`` (D, T*d) embeds the
  concatenated circuit inputs (already multiplied by the first small weights); ``net.{2l-1}``
  (weight (D, D), bias (D,)) is layer l = 1..L, followed by a ReLU at ``net.{2l}`` (W^1 = I);
  ``readout.{l-1}.weight`` (T*d, D) reads every circuit out of layer l. These names are the
  ``state_dict`` keys of an ``nn.ModuleDict(net=nn.Sequential(...), readout=nn.ModuleList(...))``.
  With it, the true parameter components (``kernel.truth``) in the APD/SPD layout:
  ``components.net.{k}.V`` (d_in, T*d) and ``components.net.{k}.U`` (T*d, D) for the decomposed
  modules k = 0 (the embedding) and k = 2l-1, l >= 2, labelled by ``components.labels``.
- ``factorised``: the arrays that define the network (``kernel.io.network_arrays``), O(T) memory.

Both carry the ground truth: the small circuits (``circuits.*``), per layer the S*d neuron indices
of every circuit (``truth.neurons``, (L, T, d, S)), the coefficients of every circuit's write and
read vectors (``truth.coef``, (L, 4)) and the shared part of every layer (``shared.*``), so that
W^l = sum_t W_t^l + W_shared^l can be rebuilt from the file for every construction; and the
configuration as metadata. docs/io.md gives the replays of both layouts, which the tests run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kernel import truth, validate
from kernel.io.netfile import (
    NetworkFileError,
    encode_safetensors,
    load_network,
    network_arrays,
    network_from_arrays,
    package_version,
    read_file,
    safe_write,
    safetensors_numpy,
)
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
    return truth.layer_matrix(net, 1)


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


def decomposed_modules(L: int) -> list[int]:
    """Indices k of the dense layout's ``net.{k}`` whose weights carry components: the embedding
    (k = 0) and the layers l >= 2 (k = 2l - 1); ``net.1`` is the identity W^1 = I."""
    return [0] + [2 * layer - 1 for layer in range(2, L + 1)]


def dense_bytes(net: Network) -> int:
    """Bytes of a dense export: embedding, L layers, L read-outs, the components (two factor
    matrices per decomposed module) and the ground truth arrays."""
    D, Td, L = net.D, net.T * net.d, net.L
    floats = D * Td + L * (D * D + D) + L * Td * D
    floats += Td * Td + Td * D + (L - 1) * 2 * Td * D  # components: V, U of net.0, of l >= 2
    return 8 * floats + 2 * 8 * Td + _truth_bytes(net)


def _truth_bytes(net: Network) -> int:
    return sum(a.nbytes for a in _truth(net).values())


def _truth(net: Network) -> dict[str, np.ndarray]:
    sh = truth.shared_terms(net)
    return {
        "circuits.weights": net.circuits.weights,
        "circuits.bias": net.circuits.bias,
        "circuits.inputs": net.circuits.inputs,
        "truth.neurons": neuron_indices(net),
        "truth.coef": truth.vector_coefficients(net),
        "shared.wbar": sh.wbar,
        "shared.pairs.layer": sh.pair_layer,
        "shared.pairs.write": sh.pair_write,
        "shared.pairs.read": sh.pair_read,
        "shared.pairs.value": sh.pair_value,
        "shared.rank.write": sh.rank_write,
        "shared.rank.read": sh.rank_read,
    }


def component_arrays(net: Network) -> dict[str, np.ndarray]:
    """The true parameter components (``kernel.truth.circuit_factors``) by dense-layout key."""
    out = {"components.labels": truth.component_labels(net)}
    for k in decomposed_modules(net.L):
        V, U = truth.circuit_factors(net, 1 if k == 0 else (k + 1) // 2)
        out[f"components.net.{k}.V"], out[f"components.net.{k}.U"] = V, U
    return out


def model_arrays(net: Network) -> dict[str, np.ndarray]:
    """The feed-forward model of the dense layout: ``net.*`` and ``readout.*``."""
    out = {"net.0.weight": input_embedding(net)}
    bias = np.repeat(net.circuits.bias, net.n, axis=1)  # (L, D): B^l = b^l kron 1_n
    for layer in range(1, net.L + 1):
        out[f"net.{2 * layer - 1}.weight"] = dense_layer_weight(net, layer)
        out[f"net.{2 * layer - 1}.bias"] = bias[layer - 1].copy()
    for layer in range(1, net.L + 1):
        out[f"readout.{layer - 1}.weight"] = readout_matrix(net, layer)
    return out


def dense_arrays(net: Network) -> dict[str, np.ndarray]:
    """The dense layout (see the module docstring), by key."""
    return {**model_arrays(net), **component_arrays(net), **_truth(net)}


def factorised_arrays(net: Network) -> dict[str, np.ndarray]:
    """The factorised layout: ``kernel.io.network_arrays`` plus the ground truth."""
    return {**network_arrays(net), **_truth(net)}


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
    protect: tuple[str | os.PathLike[str], ...] = (),
) -> Path:
    """Write the export of ``net`` to ``out``; returns the path.

    A dense export larger than ``limit`` bytes is refused (ConfigError giving its size) unless
    ``force``. ``out`` is written as ``kernel.io.netfile.safe_write`` writes (never replacing a
    symbolic link, a device or one of the ``protect`` files, e.g. the input).
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
        blob = encode_safetensors(arrays, meta)
        safe_write(out, lambda fh: fh.write(blob), protect=protect)
    else:
        members: dict[str, Any] = {"metadata": np.array(json.dumps(meta)), **arrays}
        safe_write(out, lambda fh: np.savez(fh, **members), protect=protect)
    return out


def to_torch(net: Network, dtype: str = "float64") -> Any:
    """The network as a ``torch.nn.Module`` (the dense layout) in ``dtype`` ("float64" or
    "float32"); needs PyTorch. The module's class is ``kernel.io.for_torch.CiSModel`` (picklable:
    ``torch.save(model, f)`` works).

    ``model(x)`` maps x (B, T*d), the concatenated inputs of all circuits (0 for inactive ones),
    to the read-outs (B, L, T*d) of every circuit at layers 1..L.
    """
    dtype = validate.choice("dtype", validate.dtype_name(dtype), ("float64", "float32"))
    try:
        import torch

        from kernel.io.for_torch import CiSModel
    except ModuleNotFoundError:
        raise validate.ConfigError("to_torch needs PyTorch: pip install torch") from None
    tdtype = getattr(torch, dtype)
    model = CiSModel(net.D, net.T * net.d, net.L).to(tdtype)  # before loading: no float32 trip
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, order="C")).to(tdtype)
                           for k, v in model_arrays(net).items()})
    return model


def read_export(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and metadata of a file of arrays (an export, a candidates file): npz (metadata
    in its ``metadata`` member, if any) or safetensors (header metadata). NetworkFileError (one
    line naming the file) if it cannot be read."""
    path = Path(path)
    raw = read_file(path)
    try:
        if raw[:2] == b"PK":  # a zip archive: npz
            import io

            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("metadata"))) if "metadata" in arrays else {}
            return arrays, {str(k): str(v) for k, v in meta.items()}
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
    except ModuleNotFoundError:
        safetensors_numpy()  # raises the one-line error naming the io extra
        raise
    except Exception as exc:  # any parse failure: not a file of arrays
        raise NetworkFileError(f"{path}: not an npz or safetensors file of arrays ({exc})"
                               ) from None


def network_of_export(path: str | os.PathLike[str]) -> Network:
    """The Network of an export file (either layout), with the loader's checks. A dense export
    holds no pattern design: the layer-1 patterns stand in for it (the design only orders the
    patterns; the forward pass never reads it)."""
    path = Path(path)
    arrays, meta = read_export(path)
    if meta.get("format") != FORMAT:
        raise NetworkFileError(f"{path}: not a cis network file or export (no {FORMAT!r} marker)")
    if meta.get("layout") == "dense" and "truth.neurons" in arrays:
        neurons = np.asarray(arrays["truth.neurons"])
        offsets = neurons[:, :, 0, :].astype(np.int32)  # small neuron 0: flat index = offset
        arrays = {**arrays, "patterns.offsets": offsets, "patterns.design": offsets[0],
                  "readout.c": np.array(float(meta.get("read_c", "nan")))}
    return network_from_arrays(path, meta, arrays)


def load_any_network(path: str | os.PathLike[str]) -> Network:
    """A network from a network file (``save_network``) or an export (``export_network``)."""
    try:
        return load_network(path)
    except NetworkFileError as exc:
        if "not a cis network file" not in str(exc):
            raise
    return network_of_export(path)
