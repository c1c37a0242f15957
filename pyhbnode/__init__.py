"""pyhbnode: heavy-ball neural ODEs (Xia et al., NeurIPS 2021).

The public API: the five vector fields, ``odeint`` with its ``Solution`` and statistics,
the layers ``ODEBlock`` and ``ODERNN``, the paper's architectures in ``zoo``, and the
error types.  Importing the package never imports Julia unless ``PYHBNODE_JULIA=1``/``require`` asks
for it; then juliacall is imported first, before torch, as juliacall requires.
"""
from .julia import _preload as _julia_preload

_julia_preload.run()

from . import zoo
from .fields import (
    ANODE, GHBNODE, HBNODE, NODE, SONODE, InitialState, TimeModule, TimeSequential, TPad, VectorField,
)
from .layers import ODEBlock, ODERNN
from .solving import (
    AdjointFailure, Backsolve, Checkpointed, Direct, FixedStep, HairerController, IController, Interpolating,
    JuliaBackendError, JuliaBackendUnavailable, MaxStepsExceeded, NonFiniteState, NotTranslatableError,
    PIController, Solution, SolverError, SolverFailure, SolverOptions, SolverStats, Status, StepSizeUnderflow,
    available_backends, odeint, record, register_backend,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # Training is a floor above the core: load it only when ``pyhbnode.fit`` is asked for.
    if name in ("fit", "History"):
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'pyhbnode' has no attribute {name!r}")

__all__ = [
    "odeint", "Solution", "SolverStats", "SolverOptions", "Status", "available_backends", "register_backend",
    "record", "Checkpointed", "Backsolve", "Interpolating", "Direct",
    "IController", "PIController", "HairerController", "FixedStep",
    "VectorField", "NODE", "ANODE", "SONODE", "HBNODE", "GHBNODE",
    "InitialState", "TimeModule", "TimeSequential", "TPad",
    "ODEBlock", "ODERNN", "zoo", "fit", "History",
    "SolverError", "MaxStepsExceeded", "StepSizeUnderflow", "NonFiniteState", "SolverFailure",
    "AdjointFailure", "JuliaBackendUnavailable", "JuliaBackendError", "NotTranslatableError",
]
