"""``Checkpointed``: the exact gradient of the discrete forward solve, by replaying steps."""

from __future__ import annotations

from .base import Adjoint

__all__ = ["Checkpointed"]


class Checkpointed(Adjoint):
    """The discrete adjoint (the default on every backend).

    The forward solve runs without an autograd graph and keeps states at the start of its
    steps; backward recomputes the steps from them under autograd, last first, and
    backpropagates through them.  The gradient is the exact gradient of the discrete
    forward solution (the same as :class:`~.direct.Direct`), with no backward step
    control, while only one step's graph is alive at a time.

    Args:
        max_checkpoints: ``None`` (default) keeps one state per accepted step (fastest);
            an int keeps at most that many, and backward replays the steps between them
            (the native backend: by recursive bisection, memory flat in the step count).
            A backend may keep fewer (torchdiffeq keeps one: ``y0``).
    """

    name = "checkpointed"

    def __init__(self, max_checkpoints: int | None = None) -> None:
        if max_checkpoints is not None and (
            isinstance(max_checkpoints, bool) or not isinstance(max_checkpoints, int) or max_checkpoints < 1
        ):
            raise ValueError(f"Checkpointed(max_checkpoints): expected a positive int or None, got {max_checkpoints!r}")
        self.max_checkpoints = max_checkpoints

    def _params(self) -> tuple:
        return (self.max_checkpoints,)
