"""The ``torchdiffeq`` backend: torchdiffeq's solvers behind ``odeint``, and the field
wrapper that counts their evaluations and enforces ``max_steps``."""

from .backend import TorchDiffEqBackend

__all__ = ["TorchDiffEqBackend"]
