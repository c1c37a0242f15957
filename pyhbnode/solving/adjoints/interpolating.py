"""``Interpolating``: the continuous adjoint with ``y(t)`` read from the forward's interpolant."""

from __future__ import annotations

from .base import Adjoint

__all__ = ["Interpolating"]


class Interpolating(Adjoint):
    """The continuous adjoint of :class:`~.backsolve.Backsolve`, with ``y(t)`` read off the
    forward solve's dense interpolant instead of re-integrated (SciMLSensitivity's
    ``InterpolatingAdjoint`` without checkpointing).

    The native ``torch`` backend does not offer it: its backward steps cannot be longer
    than the forward's (the interpolant has a kink at every forward step boundary), so it
    needs at least the backward evaluations of ``Checkpointed``, which is exact and keeps
    one state per step instead of three (see the README, "Gradient modes").
    """

    name = "interpolating"
