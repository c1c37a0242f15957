"""Layers — the ODE block and the ODE-RNN hybrid."""

from .odeblock import ODEBlock
from .odernn import ODERNN, ElapsedTime
from .solver_layers import set_solver_options, solver_layers

__all__ = ["ODEBlock", "ODERNN", "ElapsedTime", "set_solver_options", "solver_layers"]
