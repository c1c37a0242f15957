"""pyhbnode: heavy-ball neural ODEs (Xia et al., NeurIPS 2021) with adjoint training and NFE statistics."""
from .fields import ANODE, GHBNODE, HBNODE, NODE, SONODE, InitialState, TimeSequential, TPad, VectorField
from .solving import (
    AdjointFailure, JuliaBackendError, JuliaBackendUnavailable, MaxStepsExceeded, NonFiniteState,
    NotTranslatableError, Solution, SolverError, SolverFailure, SolverOptions, SolverStats, Status,
    StepSizeUnderflow, odeint,
)

__version__ = "0.1.0"
