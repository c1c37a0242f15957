"""What every backend provides."""
from __future__ import annotations

import abc

import torch
from torch import nn

from ..options import SolverOptions
from ..solution import SolverStats

__all__ = ["Backend"]


class Backend(abc.ABC):
    """A solver backend.

    ``solve`` integrates ``field`` from ``y0`` over the grid ``t`` and returns the states
    ``(len(t), *y0.shape)``, differentiable by the gradient mode ``options.adjoint``.  It
    fills ``stats`` during the forward solve, and ``stats.nfe_backward`` during backward.
    """

    name: str
    adjoints: tuple[str, ...]
    default_adjoint: str = "backsolve"
    methods: tuple[str, ...]

    def check_options(self, options: SolverOptions) -> None:
        if options.adjoint not in self.adjoints:
            raise ValueError(
                f"backend {self.name!r} has no adjoint {options.adjoint!r}; choose one of {list(self.adjoints)}"
            )
        if options.method not in self.methods:
            raise ValueError(
                f"backend {self.name!r} has no method {options.method!r}; choose one of {list(self.methods)}"
            )

    @abc.abstractmethod
    def solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        ...
