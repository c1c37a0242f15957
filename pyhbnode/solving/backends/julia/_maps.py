"""Tables of the Julia bridge: the gradient modes it offers, Julia return codes and Julia
exception types, each mapped onto pyhbnode's names.  Torch-free."""

from __future__ import annotations

__all__ = ["ADJOINTS", "adjoint_name", "retcode_error", "exception_error"]

# pyhbnode gradient mode -> SciMLSensitivity algorithm (PyHBNODEBridge/src/solve.jl,
# `make_sensealg`): "backsolve" = BacksolveAdjoint(checkpointing=true) on a forward solve
# saved at the output times (y reset to the forward state there, as torchdiffeq does);
# "interpolating" = InterpolatingAdjoint(checkpointing=false) on a dense forward solve
# (y(t) read from the forward interpolant, never re-integrated). Both with ZygoteVJP().
ADJOINTS: dict[str, str] = {
    "backsolve": "BacksolveAdjoint",
    "interpolating": "InterpolatingAdjoint",
}


def adjoint_name(adjoint: object) -> str:
    """The gradient mode's name: an ``Adjoint`` object's ``name`` or the string itself.

    Raises ``ValueError`` naming the julia backend's modes for any mode it lacks
    (``checkpointed`` and ``direct`` differentiate the discrete solver's operations, which
    SciMLSensitivity's continuous adjoints do not)."""
    name = getattr(adjoint, "name", adjoint)
    if not isinstance(name, str) or name not in ADJOINTS:
        raise ValueError(
            f"backend 'julia' has no gradient mode {name!r}; it has {list(ADJOINTS)} "
            "(pass e.g. adjoint='backsolve', or use backend='torch' for 'checkpointed'/'direct')"
        )
    return name


# SciMLBase ReturnCode names of failures. Success is decided in Julia by
# `SciMLBase.successful_retcode` (the bridge sends that flag); this table only names errors.
_RETCODE_ERRORS = {
    "MaxIters": "MaxStepsExceeded",
    "MaxTime": "MaxStepsExceeded",
    "DtLessThanMin": "StepSizeUnderflow",
    "Unstable": "NonFiniteState",
    "DtNaN": "NonFiniteState",
}


def retcode_error(retcode: str) -> str:
    """The name of the :class:`~pyhbnode.SolverError` subclass for a failed Julia retcode
    (``"SolverFailure"`` for any code not listed)."""
    return _RETCODE_ERRORS.get(retcode, "SolverFailure")


_EXCEPTION_ERRORS = {
    "MethodError": "TypeError",
    "DimensionMismatch": "ValueError",
    "ArgumentError": "ValueError",
    "DomainError": "ValueError",
    "BoundsError": "IndexError",
    "OutOfMemoryError": "MemoryError",
    "InterruptException": "KeyboardInterrupt",
}

_EXCEPTION_ADVICE = {
    "TypeError": (
        " A MethodError here usually means mixed dtypes: y0, t and every parameter must "
        "share one dtype (float32 or float64) on the CPU."
    ),
    "MemoryError": " Lower the batch size, or use adjoint='backsolve' (it keeps no dense forward solution).",
}


def exception_error(julia_type: str) -> tuple[str, str]:
    """``(python exception name, advice)`` for a Julia exception type name; anything not
    listed becomes ``JuliaBackendError``."""
    name = _EXCEPTION_ERRORS.get(julia_type, "JuliaBackendError")
    return name, _EXCEPTION_ADVICE.get(name, "")
