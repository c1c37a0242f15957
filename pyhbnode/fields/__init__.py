"""The vector fields of the momentum family (heavy ball, Nesterov, Adam) and their building blocks."""

from .coefficients import Damping, Restoring
from .dormant import Dormant, dormant_names
from .models import ANODE, GHBNODE, HBNODE, NODE, SONODE, VectorField
from .momentum import AdamNODE, GNesterovNODE, MomentInitialState, NesterovNODE
from .nets import TimeModule, TimeSequential, TPad, activation, call_net, mlp
from .states import InitialState, hidden

__all__ = [
    "VectorField",
    "NODE",
    "ANODE",
    "SONODE",
    "HBNODE",
    "GHBNODE",
    "NesterovNODE",
    "GNesterovNODE",
    "AdamNODE",
    "MomentInitialState",
    "Damping",
    "Restoring",
    "Dormant",
    "dormant_names",
    "InitialState",
    "hidden",
    "TimeModule",
    "TimeSequential",
    "TPad",
    "activation",
    "call_net",
    "mlp",
]
