"""Tables of the Julia bridge: gradient modes (sensitivity algorithms and VJP choices),
Julia return codes and Julia exception types, each mapped onto pyhbnode's names.

Torch-free: used by the backend and by the tests without Julia.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SENSEALGS", "VJPS", "DEFAULT_SENSEALG", "DEFAULT_VJP", "Adjoint", "parse_adjoint",
    "SUCCESS_RETCODES", "retcode_error", "exception_error", "DENSE_SENSEALGS",
]

# pyhbnode name -> (SciMLSensitivity algorithm, checkpointing)
SENSEALGS: dict[str, tuple[str, bool]] = {
    "interpolating": ("InterpolatingAdjoint", False),
    "interpolating+checkpointing": ("InterpolatingAdjoint", True),
    "backsolve": ("BacksolveAdjoint", True),
    "quadrature": ("QuadratureAdjoint", False),
    "gauss": ("GaussAdjoint", False),
    "gauss+checkpointing": ("GaussAdjoint", True),
}
DEFAULT_SENSEALG = "interpolating"

# pyhbnode name -> SciMLSensitivity `autojacvec` (always explicit: never the silent
# finite-difference fallback that `autojacvec=nothing` degrades to on failure).
VJPS: dict[str, str] = {
    "zygote": "ZygoteVJP()",
    "enzyme": "EnzymeVJP()",
    "reversediff": "ReverseDiffVJP(false)",
    "reversediff-compiled": "ReverseDiffVJP(true)",
    "tracker": "TrackerVJP()",
    "forwarddiff": "true (ForwardDiff Jacobian)",
    "finitediff": "false (FiniteDiff Jacobian, explicit opt-in)",
}
DEFAULT_VJP = "zygote"

# Forward solves these sensitivity algorithms differentiate must be dense (no saveat):
# "do not use solve(prob, alg, saveat=ts) unless checkpointing" (SciMLSensitivity).
DENSE_SENSEALGS = frozenset({"interpolating", "quadrature", "gauss"})


@dataclass(frozen=True)
class Adjoint:
    """A parsed ``adjoint=`` value of the julia backend: ``"<sensealg>[:<vjp>]"``."""

    sensealg: str
    vjp: str

    @property
    def checkpointing(self) -> bool:
        return SENSEALGS[self.sensealg][1]

    @property
    def dense_forward(self) -> bool:
        return self.sensealg in DENSE_SENSEALGS

    def __str__(self) -> str:
        return f"{self.sensealg}:{self.vjp}"


def parse_adjoint(value: str) -> Adjoint:
    """Parse ``"interpolating"``, ``"backsolve:enzyme"``, ``"gauss+checkpointing:zygote"``...

    Raises ``ValueError`` naming the choices for anything else (including ``"direct"``,
    which the julia backend does not offer)."""
    if not isinstance(value, str):
        raise TypeError(f"adjoint must be a string, got {type(value).__name__}")
    name, _, vjp = value.strip().lower().partition(":")
    vjp = vjp or DEFAULT_VJP
    if name not in SENSEALGS:
        raise ValueError(
            f"the julia backend has no adjoint {value!r}; choose one of {sorted(SENSEALGS)}, "
            f"optionally with ':<vjp>' for the vector-Jacobian product ({sorted(VJPS)}; "
            f"default {DEFAULT_VJP!r}), e.g. 'interpolating:zygote'"
        )
    if vjp not in VJPS:
        raise ValueError(
            f"unknown vector-Jacobian product {vjp!r} in adjoint {value!r}; choose one of {sorted(VJPS)}"
        )
    return Adjoint(name, vjp)


# SciMLBase ReturnCode names. `successful_retcode` is true for Success, Terminated,
# ExactSolution, Default and the steady-state/stalled-success variants; the bridge sends
# that flag, the table below only names failures.
SUCCESS_RETCODES = frozenset({
    "Success", "Default", "Terminated", "ExactSolution", "Stalled", "StalledSuccess",
})

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
    "OutOfGPUMemoryError": "MemoryError",
    "InterruptException": "KeyboardInterrupt",
}

_EXCEPTION_ADVICE = {
    "TypeError": (
        " A MethodError here usually means mixed dtypes or devices: y0, t and every "
        "parameter must share one dtype (float32 or float64) and one device."
    ),
    "MemoryError": " Lower the batch size, use adjoint='interpolating+checkpointing' or 'backsolve'.",
}


def exception_error(julia_type: str) -> tuple[str, str]:
    """``(python exception name, advice)`` for a Julia exception type name; anything not
    listed becomes ``JuliaBackendError``."""
    name = _EXCEPTION_ERRORS.get(julia_type, "JuliaBackendError")
    return name, _EXCEPTION_ADVICE.get(name, "")
