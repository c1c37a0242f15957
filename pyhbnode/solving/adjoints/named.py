"""``Named``: a backend's own gradient mode, spelled by its alias."""
from __future__ import annotations

from .base import Adjoint

__all__ = ["Named"]


class Named(Adjoint):
    """A gradient mode only some backend knows, kept as the string it was given
    (e.g. the julia backend's ``"gauss:enzyme"``: SciMLSensitivity's ``GaussAdjoint`` with an
    Enzyme VJP).  ``name`` is the part before ``:``; a backend that does not list it refuses
    it with a ``ValueError`` naming the modes it has."""

    def __init__(self, spec: str) -> None:
        self._spec = spec.strip().lower()
        self.name = self._spec.partition(":")[0]

    def _params(self) -> tuple:
        return (self._spec,)

    def spec(self) -> str:
        return self._spec

    def __repr__(self) -> str:
        return f"Named({self._spec!r})"
