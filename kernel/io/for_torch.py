"""PyTorch helpers (imported only when PyTorch is installed): the dense network as a module and
a dataset's shards as a ``torch.utils.data.Dataset``.

The classes live at module level so that ``torch.save`` / ``pickle`` can store them by name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class CiSModel(nn.Module):
    """The dense layout of an export as a module (``kernel.io.export.to_torch`` fills it).

    ``forward(x)``: x (B, T*d) concatenated circuit inputs (0 for inactive circuits) ->
    (B, L, T*d) read-outs of every circuit at layers 1..L. ``state_dict`` keys are those of the
    dense export (``net.*``, ``readout.*``).
    """

    def __init__(self, D: int, Td: int, L: int) -> None:
        super().__init__()
        self.L = L
        layers: list[nn.Module] = [nn.Linear(Td, D, bias=False)]
        for _ in range(L):
            layers += [nn.Linear(D, D), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.readout = nn.ModuleList(nn.Linear(D, Td, bias=False) for _ in range(L))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        A = self.net[0](x)
        outs = []
        for layer in range(self.L):
            A = self.net[2 * layer + 2](self.net[2 * layer + 1](A))
            outs.append(self.readout[layer](A))
        return torch.stack(outs, dim=1)


class ShardDataset(torch.utils.data.Dataset):  # type: ignore[misc]
    """The rows of a dataset directory (``kernel.io.dataset.write_dataset``) as tensors.

    ``ds[i]`` is a dict column -> tensor (per-sample shape of the manifest) of sample i;
    ``columns`` picks columns (default all). The shards are read once, into memory.
    """

    def __init__(self, directory: Any, columns: list[str] | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        from kernel.io.dataset import read_dataset

        arrays, self.manifest = read_dataset(directory, columns)
        self._data = {k: torch.from_numpy(v) for k, v in arrays.items()}
        self._data = {k: v.to(dtype) if v.is_floating_point() else v
                      for k, v in self._data.items()}
        self._len = int(self.manifest["samples"])

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self._data.items()}
