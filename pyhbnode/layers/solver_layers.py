"""Find the solving layers inside any model, to change their options."""
from __future__ import annotations


from torch import nn

from ..solving import SolverOptions
from .odeblock import ODEBlock
from .odernn import ODERNN

__all__ = ["solver_layers", "set_solver_options"]


def solver_layers(model: nn.Module) -> list[ODEBlock | ODERNN]:
    """Every ``ODEBlock``/``ODERNN`` inside ``model`` (itself included), in module order."""
    return [m for m in model.modules() if isinstance(m, (ODEBlock, ODERNN))]


def set_solver_options(model: nn.Module, **changes) -> list[SolverOptions]:
    """Change solver options (``backend``, ``rtol``, ``atol``, ``tol``, ``adjoint``, ``controller``, ...) of
    every solving layer in ``model``; ``None`` values are left as they are.  Returns the new
    options.  Raises ``TypeError`` on an unknown option and ``ValueError`` if ``model`` has
    no solving layer but changes were asked for."""
    layers = solver_layers(model)
    if not layers and any(v is not None for v in changes.values()):
        raise ValueError("the model has no ODEBlock/ODERNN layer whose solver options could be set")
    for layer in layers:
        layer.options = SolverOptions.from_kwargs(layer.options, **changes)
    return [layer.options for layer in layers]
