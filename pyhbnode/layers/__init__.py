"""Floor 3: layers — the ODE block and the ODE-RNN hybrid."""
from .odeblock import ODEBlock
from .odernn import ODERNN, ElapsedTime

__all__ = ["ODEBlock", "ODERNN", "ElapsedTime"]
