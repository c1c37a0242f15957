"""Floor 3: layers — the ODE block and the ODE-RNN hybrid."""
from .odeblock import ODEBlock
from .odernn import ODERNN, ElapsedTime
from .solver_layers import collect_stats, set_solver_options, solver_layers

__all__ = ["ODEBlock", "ODERNN", "ElapsedTime", "collect_stats", "set_solver_options", "solver_layers"]
