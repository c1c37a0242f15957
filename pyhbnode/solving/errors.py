"""Error types of the solving floor.

Every solver failure is a :class:`SolverError` that says what happened, where (time
reached, step size, NFE so far, forward or backward pass) and what to try.
"""

from __future__ import annotations

from .solution import Status

__all__ = [
    "SolverError",
    "MaxStepsExceeded",
    "StepSizeUnderflow",
    "NonFiniteState",
    "SolverFailure",
    "AdjointFailure",
]


class SolverError(RuntimeError):
    """A solve did not finish.

    Attributes:
        phase: ``"forward"`` or ``"backward"`` (the adjoint solve).
        t: the time reached, if known.
        dt: the last step size, if known.
        nfe_forward, nfe_backward: function evaluations so far.
    """

    advice = ""
    status = Status.FAILED

    def __init__(
        self,
        what: str,
        *,
        phase: str = "forward",
        t: float | None = None,
        dt: float | None = None,
        nfe_forward: int = 0,
        nfe_backward: int = 0,
    ) -> None:
        self.what, self.phase, self.t, self.dt = what, phase, t, dt
        self.nfe_forward, self.nfe_backward = nfe_forward, nfe_backward
        where = f"t = {t:.6g}" if t is not None else "unknown time"
        if dt is not None:
            where += f", dt = {dt:.3g}"
        msg = f"{what} in the {phase} solve at {where} (NFE so far: forward {nfe_forward}, backward {nfe_backward})."
        if self.advice:
            msg += " " + self.advice
        super().__init__(msg)


class MaxStepsExceeded(SolverError):
    status = Status.MAX_STEPS
    advice = "Increase max_steps, loosen rtol/atol, or check the field for stiffness."


class StepSizeUnderflow(SolverError):
    status = Status.DT_UNDERFLOW
    advice = (
        "The adaptive step size fell below what the dtype can resolve: the solution is "
        "probably blowing up or the problem is stiff. Loosen rtol/atol, use float64, or "
        "regularise the field."
    )


class NonFiniteState(SolverError):
    status = Status.NONFINITE
    advice = (
        "The state or its derivative became NaN/Inf: the dynamics blow up. Lower the "
        "learning rate, clip gradients, bound the field (e.g. GHBNODE with tanh), or shorten "
        "the time span."
    )


class SolverFailure(SolverError):
    advice = "The backend reported a failure it does not classify further."


class AdjointFailure(SolverError):
    advice = "The adjoint (backward) solve failed; try a tighter tolerance or adjoint='direct'."
