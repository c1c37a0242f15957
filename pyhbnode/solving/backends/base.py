"""What every backend provides: its methods and a gradient-mode table."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..adjoints import Adjoint
from ..solution import SolverStats

if TYPE_CHECKING:  # options import the registry, which imports this module
    from ..options import SolverOptions

__all__ = ["Backend", "GradientMode"]

# ``(field, y0, t, options, stats) -> ys``: a solve differentiable the way one gradient mode says.
GradientMode = Callable[[nn.Module, torch.Tensor, torch.Tensor, "SolverOptions", SolverStats], torch.Tensor]


class Backend(abc.ABC):
    """A solver backend.

    A backend's ``modes`` maps each gradient-mode class it offers
    (:class:`~pyhbnode.solving.adjoints.Checkpointed`, ...) to the callable that solves
    with it; :meth:`solve` looks the mode of ``options.adjoint`` up there, so a backend never
    asks which mode it got.  The callable integrates ``field`` from ``y0`` over the grid
    ``t``, returns the states ``(len(t), *y0.shape)``, fills ``stats`` during the forward
    solve and ``stats.nfe_backward`` during backward.
    """

    name: str
    methods: tuple[str, ...]
    # whether ``options.controller`` is honoured (the native backend); the others refuse one
    takes_controllers: bool = False
    # whether ``options.compile=True`` is honoured (the native backend); the others refuse it
    takes_compile: bool = False

    @property
    @abc.abstractmethod
    def modes(self) -> Mapping[type[Adjoint], GradientMode]:
        """Gradient-mode class -> the solve that differentiates that way."""

    def offers(self, adjoint: Adjoint) -> bool:
        """Whether this backend has the gradient mode ``adjoint``."""
        return type(adjoint) in self.modes

    def mode_names(self) -> list[str]:
        return [mode.name for mode in self.modes]

    def check_options(self, options: SolverOptions) -> None:
        mode = options.adjoint
        assert isinstance(mode, Adjoint)  # parsed by SolverOptions; the field's type is what the constructor accepts
        if not self.offers(mode):
            raise ValueError(
                f"backend {self.name!r} has no gradient mode {mode.spec()!r}; choose one of {self.mode_names()}"
            )
        if options.controller is not None and not self.takes_controllers:
            raise ValueError(
                f"backend {self.name!r} takes no step-size controller (got {options.controller!r}); "
                "controllers are for backend='native'"
            )
        if options.compile is True and not self.takes_compile:
            raise ValueError(
                f"backend {self.name!r} has no compiled steps (got compile=True); compile is for backend='native'"
            )
        if options.method not in self.methods:
            raise ValueError(
                f"backend {self.name!r} has no method {options.method!r}; choose one of {list(self.methods)}"
            )

    def solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        mode = options.adjoint
        assert isinstance(mode, Adjoint)  # parsed by SolverOptions; the field's type is what the constructor accepts
        return self.modes[type(mode)](field, y0, t, options, stats)
