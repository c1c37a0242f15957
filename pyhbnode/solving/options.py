"""Solver options as one frozen value, shared by ``odeint``, the layers and the zoo."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields, replace

from .adjoints import Adjoint, parse_adjoint
from .controllers import Controller, parse_controller

__all__ = ["SolverOptions", "DEFAULT_BACKEND", "MIN_RTOL"]

DEFAULT_BACKEND = "torch"
# The smallest rtol accepted (scipy's floor, 100 float64 eps): below it the error ratio
# is rounding noise.  In float32 tolerances below ~1e-6 are honoured only as far as the
# arithmetic allows (the steps then shrink until the rounding error is "small enough").
MIN_RTOL = 100 * 2.220446049250313e-16


@dataclass(frozen=True)
class SolverOptions:
    """How to solve and differentiate.

    Attributes:
        backend: a registered backend name: ``"torch"`` (the native solver, default),
            ``"torchdiffeq"``, ``"julia"``, ``"auto"``.
        method: the integrator; ``"dopri5"`` (Dormand–Prince 5(4)) is the paper's.
        rtol, atol: relative and absolute tolerances of the adaptive step control; finite,
            ``atol > 0`` and ``rtol >= MIN_RTOL`` (2.2e-14).
        adjoint: the gradient mode, an :class:`~pyhbnode.solving.adjoints.Adjoint`
            (``Checkpointed()`` — the default on every backend —, ``Backsolve()``,
            ``Interpolating()``, ``Direct()``) or its string alias (``"checkpointed"``,
            ``"checkpointed:8"``, ``"backsolve"``, ...); always an ``Adjoint`` once built.
        seminorm: exclude the parameters' adjoint from the backward step-size control
            (continuous adjoints only); ``None`` takes the backend's default (on for
            ``torch``, off for ``torchdiffeq``).
        max_steps: the most step attempts one solve (forward or backward) may take.
        controller: the step-size controller (native ``torch`` backend only): a
            :class:`~pyhbnode.solving.controllers.Controller` or ``"i"`` (torchdiffeq's
            rule, the default), ``"pi"``, ``"hairer"`` (scipy RK45's rules); ``None``
            takes the backend's default.
        compile: run the solver's steps as compiled programs (native ``torch`` backend
            only, :mod:`~pyhbnode.solving.backends.native.compiled`): ``True`` or ``False``
            force it; ``"auto"`` (default) decides from what is known up front
            (:func:`~pyhbnode.solving.backends.native.decide_compile`): a single solve steps
            eagerly, and ``fit`` compiles a whole run from its first step when the run is
            long enough to pay for the compile (CPU, small states).  Never from what the
            process solved before: a seed gives the same numbers whatever ran before it.
            ``None`` is a deprecated synonym of ``"auto"``.
    """

    backend: str = DEFAULT_BACKEND
    method: str = "dopri5"
    rtol: float = 1e-7
    atol: float = 1e-9
    adjoint: Adjoint | str | None = None
    seminorm: bool | None = None
    max_steps: int = 10_000
    controller: Controller | str | None = None
    compile: bool | str = "auto"

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        if self.rtol < MIN_RTOL:
            raise ValueError(f"rtol must be >= {MIN_RTOL:.3g} (100 float64 eps; below that the error "
                             f"estimate is rounding noise), got {self.rtol!r}")
        if isinstance(self.max_steps, bool) or not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if not isinstance(self.backend, str):
            raise TypeError(f"backend must be a string, got {type(self.backend).__name__}")
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a string, got {type(self.method).__name__}")
        if self.seminorm is not None and not isinstance(self.seminorm, bool):
            raise TypeError(f"seminorm must be True, False or None, got {self.seminorm!r}")
        if self.compile is None:
            warnings.warn("compile=None is deprecated; use compile='auto' (the default)", DeprecationWarning,
                          stacklevel=3)
            object.__setattr__(self, "compile", "auto")
        if not (isinstance(self.compile, bool) or (isinstance(self.compile, str) and self.compile == "auto")):
            raise TypeError(f"compile must be True, False or 'auto', got {self.compile!r}")
        object.__setattr__(self, "adjoint", parse_adjoint(self.adjoint))
        object.__setattr__(self, "controller", parse_controller(self.controller))

    @classmethod
    def from_kwargs(cls, base: "SolverOptions | None" = None, **kwargs) -> "SolverOptions":
        """Options from keywords, raising ``TypeError`` on an unknown one.

        ``tol`` sets ``rtol`` and ``atol`` together (the paper's single tolerance)."""
        if base is not None and not isinstance(base, SolverOptions):
            raise TypeError(f"options must be a SolverOptions (or None), got {type(base).__name__}; "
                            "pass solver settings as keywords instead, e.g. rtol=1e-3")
        known = {f.name for f in fields(cls)}
        tol = kwargs.pop("tol", None)
        if tol is not None:
            for name in ("rtol", "atol"):
                if kwargs.get(name) is None:
                    kwargs[name] = tol
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown solver option(s) {unknown}; expected some of {sorted(known)} or tol")
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return replace(base or cls(), **kwargs)

    def as_dict(self) -> dict:
        """Plain values (JSON-ready): the adjoint as its alias (``"checkpointed:8"``), the
        controller as its repr or ``None``."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["adjoint"] = self.adjoint.spec()
        d["controller"] = None if self.controller is None else repr(self.controller)
        return d
