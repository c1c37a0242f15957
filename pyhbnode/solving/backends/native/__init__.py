"""The native PyTorch solver backend (``backend="torch"``).

Pieces, each usable alone: :mod:`.tableau` (Dormand–Prince 5(4) coefficients),
:mod:`.dopri5` (the step method ``Dopri5(tableau).step(rhs, s, h, z, k) -> StepResult`` and
its dense output), :mod:`.integrate` (the adaptive loop), :mod:`.initial_step`,
:mod:`.forward` (the solve over an output grid and its typed step record),
:mod:`.checkpointed` and :mod:`.backsolve` (the gradient modes' backward passes),
:mod:`.backend` (the :class:`NativeBackend`), :mod:`.decide` (``compile="auto"``) and
:mod:`.compiled` (the compiled programs, imported only once a compile is decided).  The
controllers live in :mod:`pyhbnode.solving.controllers`.
"""

from ...controllers import Controller, FixedStep, HairerController, IController, PIController
from .backend import NativeBackend
from .decide import COMPILE_PAYS_AFTER, decide_compile
from .dopri5 import Dopri5, StepResult
from .initial_step import initial_step
from .tableau import DOPRI5, DOPRI5_SHAMPINE, Tableau

__all__ = [
    "NativeBackend",
    "Dopri5",
    "StepResult",
    "Controller",
    "IController",
    "PIController",
    "HairerController",
    "FixedStep",
    "initial_step",
    "DOPRI5",
    "DOPRI5_SHAMPINE",
    "Tableau",
    "decide_compile",
    "COMPILE_PAYS_AFTER",
]
