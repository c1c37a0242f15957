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
    methods: tuple[str, ...]
    # whether ``options.controller`` is honoured (the native backend); the others refuse one
    takes_controllers: bool = False
    # whether ``options.compile`` is honoured (the native backend); the others refuse True
    takes_compile: bool = False

    def check_options(self, options: SolverOptions) -> None:
        adjoint = getattr(options.adjoint, "name", options.adjoint)
        if adjoint not in self.adjoints:
            raise ValueError(
                f"backend {self.name!r} has no adjoint {adjoint!r}; choose one of {list(self.adjoints)}"
            )
        if options.controller is not None and not self.takes_controllers:
            raise ValueError(
                f"backend {self.name!r} takes no step-size controller (got {options.controller!r}); "
                "controllers are for backend='torch'"
            )
        if options.compile is True and not self.takes_compile:
            raise ValueError(f"backend {self.name!r} has no compiled steps (got compile=True); "
                             "compile is for backend='torch'")
        if options.method not in self.methods:
            raise ValueError(
                f"backend {self.name!r} has no method {options.method!r}; choose one of {list(self.methods)}"
            )

    @abc.abstractmethod
    def solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        ...
