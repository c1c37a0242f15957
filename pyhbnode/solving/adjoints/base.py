"""The gradient-mode interface: what every ``adjoint=`` value is after option parsing."""
from __future__ import annotations

__all__ = ["Adjoint"]


class Adjoint:
    """A gradient mode: how ``odeint`` differentiates a solve.

    Subclasses are small values (compared and hashed by their parameters) with a class
    attribute ``name``, the string alias they are spelled as in options, configs and the
    CLI.  A backend lists the names it supports in ``Backend.adjoints``.  A mode also equals
    its alias (``Checkpointed(8) == "checkpointed:8"``, ``Direct() == "direct"``), so code
    written against the strings keeps working.
    """

    name: str = ""

    def _params(self) -> tuple:
        return ()

    def spec(self) -> str:
        """The string that parses back to this value (``"checkpointed:8"``)."""
        return ":".join([self.name, *(str(p) for p in self._params() if p is not None)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(p) for p in self._params() if p is not None)})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other.strip().lower() == self.spec()
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash(self.spec())
