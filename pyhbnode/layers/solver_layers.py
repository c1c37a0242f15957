"""Find the solving layers inside any model, to change their options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..solving import SolverOptions
from .odeblock import ODEBlock
from .odernn import ODERNN

__all__ = ["solver_layers", "set_solver_options"]


def solver_layers(model: nn.Module) -> list[ODEBlock | ODERNN]:
    """Every ``ODEBlock``/``ODERNN`` inside ``model`` (itself included), in module order."""
    return [m for m in model.modules() if isinstance(m, (ODEBlock, ODERNN))]


def set_solver_options(
    model: nn.Module,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    **changes: Any,
) -> list[SolverOptions]:
    """Change the solver options of every solving layer in ``model``.

    ``solver`` is a :class:`SolverOptions` (it replaces each layer's options) or a mapping of
    option names; ``changes`` are option keywords (``rtol``, ``tol``, ``adjoint``,
    ``compile``, ... — :class:`SolverOptions`' fields) applied on top; ``None`` values are
    left as they are.  Returns the new options.  Raises ``TypeError`` on an unknown option
    and ``ValueError`` if ``model`` has no solving layer but changes were asked for."""
    base = solver if isinstance(solver, SolverOptions) else None
    if solver is not None and base is None:
        if not isinstance(solver, Mapping):
            raise TypeError(
                f"solver must be a SolverOptions, a mapping of solver options or None, got {type(solver).__name__}"
            )
        changes = {**solver, **changes}
    SolverOptions.from_kwargs(base, **changes)  # refuse bad options even for a model without layers
    layers = solver_layers(model)
    if not layers and (base is not None or any(v is not None for v in changes.values())):
        raise ValueError("the model has no ODEBlock/ODERNN layer whose solver options could be set")
    for layer in layers:
        layer.options = SolverOptions.from_kwargs(base or layer.options, **changes)
    return [layer.options for layer in layers]
