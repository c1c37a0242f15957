"""The gradient-mode interface: what every ``adjoint=`` value is after option parsing."""

from __future__ import annotations

__all__ = ["Adjoint"]


class Adjoint:
    """A gradient mode: how ``odeint`` differentiates a solve.

    Subclasses are small values, compared and hashed by their type and parameters, with a
    class attribute ``name``: the alias they are spelled as in options, configs and the
    command line, parsed into objects once (:func:`~pyhbnode.solving.adjoints.parse_adjoint`).
    A mode never equals a string (compare ``mode.spec()`` with one instead).  A backend
    maps the mode classes it offers to their implementations (``Backend.modes``).
    """

    name: str = ""
    # Whether the gradient comes from autograd replaying the forward's operations rather than
    # from a backward pass the backend runs (and checks for non-finite values) itself; odeint
    # then checks the gradients once per backward.
    by_autograd: bool = False

    def _params(self) -> tuple:
        return ()

    def spec(self) -> str:
        """The string that parses back to this value (``"checkpointed:8"``)."""
        return ":".join([self.name, *(str(p) for p in self._params() if p is not None)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(p) for p in self._params() if p is not None)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Adjoint):
            return NotImplemented
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash((type(self), self._params()))
