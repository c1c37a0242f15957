"""pyhbnode: heavy-ball neural ODEs (Xia et al., NeurIPS 2021).

The public API: the vector fields (the heavy-ball five, NesterovNODE, GNesterovNODE, AdamNODE), ``odeint`` with its
``Solution`` and statistics, the layers ``ODEBlock`` and ``ODERNN``, the paper's architectures in ``zoo``, and the
error types.  Importing the package never imports juliacall and never downloads anything:
Julia starts on the first ``backend="julia"`` solve (put ``import juliacall`` before
``import torch`` in such scripts, as juliacall advises).
"""

from importlib import metadata as _metadata

from . import zoo
from .fields import (
    ANODE,
    GHBNODE,
    HBNODE,
    NODE,
    SONODE,
    AdamNODE,
    GNesterovNODE,
    InitialState,
    MomentInitialState,
    NesterovNODE,
    TimeModule,
    TimeSequential,
    TPad,
    VectorField,
)
from .layers import ODERNN, ODEBlock
from .solving import (
    AdjointFailure,
    Backsolve,
    Checkpointed,
    Direct,
    FixedStep,
    HairerController,
    IController,
    Interpolating,
    MaxStepsExceeded,
    NonFiniteState,
    PIController,
    Solution,
    SolverError,
    SolverFailure,
    SolverOptions,
    SolverStats,
    Status,
    StepSizeUnderflow,
    available_backends,
    odeint,
    record,
    register_backend,
)

try:
    __version__ = _metadata.version("pyhbnode")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


_JULIA_ERRORS = ("JuliaBackendUnavailable", "JuliaBackendError", "NotTranslatableError")


def __getattr__(name: str):
    # Training is a floor above the core: load it only when ``pyhbnode.fit`` is asked for.
    if name in ("fit", "History"):
        from . import training

        return getattr(training, name)
    # The julia backend's errors live beside it; importing pyhbnode loads none of it.
    if name in _JULIA_ERRORS:
        from .solving.backends.julia import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'pyhbnode' has no attribute {name!r}")


__all__ = [
    "odeint",
    "Solution",
    "SolverStats",
    "SolverOptions",
    "Status",
    "available_backends",
    "register_backend",
    "record",
    "Checkpointed",
    "Backsolve",
    "Interpolating",
    "Direct",
    "IController",
    "PIController",
    "HairerController",
    "FixedStep",
    "VectorField",
    "NODE",
    "ANODE",
    "SONODE",
    "HBNODE",
    "GHBNODE",
    "NesterovNODE",
    "GNesterovNODE",
    "AdamNODE",
    "InitialState",
    "MomentInitialState",
    "TimeModule",
    "TimeSequential",
    "TPad",
    "ODEBlock",
    "ODERNN",
    "zoo",
    "fit",
    "History",
    "SolverError",
    "MaxStepsExceeded",
    "StepSizeUnderflow",
    "NonFiniteState",
    "SolverFailure",
    "AdjointFailure",
    "JuliaBackendUnavailable",
    "JuliaBackendError",
    "NotTranslatableError",
]
