"""``Direct``: backpropagation through the solver's operations."""

from __future__ import annotations

from .base import Adjoint

__all__ = ["Direct"]


class Direct(Adjoint):
    """Backpropagation through every operation of the forward solve: the exact gradient of
    the discrete solution, with memory growing with the steps and the field's activations.
    Backward NFE counts one per forward evaluation (the package's convention)."""

    name = "direct"
    by_autograd = True
