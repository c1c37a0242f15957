"""Floor 2: solving — ``odeint``, ``Solution``, statistics, errors and the backend registry."""
from .backends import Backend, available_backends, get_backend, register_backend
from .errors import (
    AdjointFailure, MaxStepsExceeded, NonFiniteState, SolverError, SolverFailure, StepSizeUnderflow,
)
from .odeint import odeint
from .options import SolverOptions
from .solution import Solution, SolverStats, Status

__all__ = [
    "odeint", "Solution", "SolverStats", "Status", "SolverOptions",
    "Backend", "register_backend", "get_backend", "available_backends",
    "SolverError", "MaxStepsExceeded", "StepSizeUnderflow", "NonFiniteState", "SolverFailure",
    "AdjointFailure",
]
