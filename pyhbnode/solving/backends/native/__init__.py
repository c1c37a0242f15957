"""The native PyTorch solver backend (``backend="torch"``).

Pieces, each usable alone: :mod:`.tableau` (Dormand–Prince 5(4) coefficients and dense
output), :mod:`.controller` (step-size controllers, initial step), :mod:`.dopri5` (the
stepping loop and forward solve), :mod:`.adjoint` (the gradient strategies as one
``torch.autograd.Function``) and :mod:`.backend` (the :class:`TorchBackend`).
"""
from .backend import TorchBackend
from .controller import Controller, FixedStep, IController, PIController, initial_step
from .tableau import DOPRI5, DOPRI5_SHAMPINE, Tableau

__all__ = [
    "TorchBackend", "Controller", "IController", "PIController", "FixedStep", "initial_step",
    "DOPRI5", "DOPRI5_SHAMPINE", "Tableau",
]
