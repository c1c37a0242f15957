"""Gradient modes as objects: ``odeint(..., adjoint=Checkpointed(8))``; the strings
``"checkpointed"``, ``"checkpointed:8"``, ``"backsolve"``, ``"interpolating"`` and
``"direct"`` are aliases (:func:`parse_adjoint`)."""

from __future__ import annotations

from .backsolve import Backsolve
from .base import Adjoint
from .checkpointed import Checkpointed
from .direct import Direct
from .interpolating import Interpolating

__all__ = ["Adjoint", "Checkpointed", "Backsolve", "Interpolating", "Direct", "ADJOINTS", "parse_adjoint"]

ADJOINTS: dict[str, type[Adjoint]] = {cls.name: cls for cls in (Checkpointed, Backsolve, Interpolating, Direct)}


def parse_adjoint(value) -> Adjoint:
    """An :class:`Adjoint` from an instance, a name, or ``"checkpointed:<max_checkpoints>"``;
    ``None`` gives the default, ``Checkpointed()``; any other string raises ``ValueError``
    naming the modes there are (which of them a backend offers, it checks itself)."""
    if value is None:
        return Checkpointed()
    if isinstance(value, Adjoint):
        return value
    if isinstance(value, type) and issubclass(value, Adjoint):
        raise TypeError(f"adjoint must be an instance, e.g. {value.__name__}(), not the class")
    if not isinstance(value, str):
        raise TypeError(f"adjoint must be an Adjoint or one of {sorted(ADJOINTS)}, got {type(value).__name__}")
    name, sep, arg = value.strip().lower().partition(":")
    if not name:
        raise ValueError(f"adjoint {value!r} is empty; choose one of {sorted(ADJOINTS)}")
    if name not in ADJOINTS or (sep and name != "checkpointed"):
        raise ValueError(
            f"adjoint: unknown gradient mode {value!r}; choose one of {sorted(ADJOINTS)} "
            "or 'checkpointed:<max_checkpoints>'"
        )
    if not sep:
        return ADJOINTS[name]()
    try:
        n = int(arg)
    except ValueError:
        raise ValueError(f"adjoint {value!r}: max_checkpoints must be an int, got {arg!r}") from None
    return Checkpointed(n)
