"""Registered scalars a model never reads.

The authors' code registers parameters its forward never uses (a frozen correction, an unused
γ), and the paper's parameter counts include them.  :class:`Dormant` holds such scalars so a
model can carry them for fidelity; training leaves them out of the optimiser, of DDP's
gradient reduction, and of the keys an older checkpoint must have."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["Dormant", "dormant_names"]


class Dormant(nn.ParameterDict):
    """``name -> scalar`` parameters (``requires_grad=True``, as the authors' were) that no
    forward reads."""

    def __init__(self, values: Iterable[tuple[str, float]]) -> None:
        super().__init__({name: nn.Parameter(torch.tensor([float(value)])) for name, value in values})


def dormant_names(model: nn.Module) -> set[str]:
    """The fully qualified names of the parameters inside ``model``'s :class:`Dormant` modules."""
    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        if isinstance(module, Dormant)
        for name, _ in module.named_parameters(recurse=False)
    }
