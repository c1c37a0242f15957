"""Solving — ``odeint``, ``Solution``, statistics and their recorder, gradient
modes, step controllers, errors and the backend registry."""

from .adjoints import Adjoint, Backsolve, Checkpointed, Direct, Interpolating
from .backends import Backend, available_backends, get_backend, register_backend
from .controllers import Controller, FixedStep, HairerController, IController, PIController
from .errors import (
    AdjointFailure,
    MaxStepsExceeded,
    NonFiniteState,
    SolverError,
    SolverFailure,
    StepSizeUnderflow,
)
from .odeint import odeint
from .options import SolverOptions
from .recording import Recorder, record
from .solution import Solution, SolverStats, Status

__all__ = [
    "odeint",
    "Solution",
    "SolverStats",
    "Status",
    "SolverOptions",
    "record",
    "Recorder",
    "Adjoint",
    "Checkpointed",
    "Backsolve",
    "Interpolating",
    "Direct",
    "Controller",
    "IController",
    "PIController",
    "HairerController",
    "FixedStep",
    "Backend",
    "register_backend",
    "get_backend",
    "available_backends",
    "SolverError",
    "MaxStepsExceeded",
    "StepSizeUnderflow",
    "NonFiniteState",
    "SolverFailure",
    "AdjointFailure",
]
