"""``Backsolve``: the continuous adjoint with the state re-integrated backward."""

from __future__ import annotations

from .base import Adjoint

__all__ = ["Backsolve"]


class Backsolve(Adjoint):
    """The continuous adjoint ``da/dt = -a ∂f/∂y``, ``dL/dθ = ∫ a ∂f/∂θ dt`` (Chen et al. 2018),
    solved backward together with the state ``y`` (torchdiffeq's ``odeint_adjoint``).

    Memory is O(1) in the number of steps; the gradient approximates that of the exact
    flow to the solver's tolerance, and for a damped field (HBNODE/GHBNODE) the state run
    backward is anti-damped, so the recovered ``y(t)`` drifts and the gradient carries it.
    """

    name = "backsolve"
