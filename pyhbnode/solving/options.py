"""Solver options as one frozen value, shared by ``odeint``, the layers and the zoo."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

__all__ = ["SolverOptions", "DEFAULT_BACKEND"]

DEFAULT_BACKEND = "torch"


@dataclass(frozen=True)
class SolverOptions:
    """How to solve and differentiate.

    Attributes:
        backend: a registered backend name: ``"torch"`` (the native solver, default),
            ``"torchdiffeq"``, ``"julia"``, ``"auto"``.
        method: the integrator; ``"dopri5"`` (Dormand–Prince 5(4)) is the paper's.
        rtol, atol: relative and absolute tolerances of the adaptive step control.
        adjoint: gradient mode: ``"backsolve"`` (continuous adjoint, the state re-integrated
            backward), ``"direct"`` (backprop through the solver's operations), or a
            backend-specific adjoint (see the backend's ``adjoints``); ``None`` takes the
            backend's ``default_adjoint``.
        seminorm: exclude the parameters' adjoint from the backward step-size control;
            ``None`` takes the backend's default (on for ``torch``, off for ``torchdiffeq``).
        max_steps: the most step attempts one solve (forward or backward) may take.
    """

    backend: str = DEFAULT_BACKEND
    method: str = "dopri5"
    rtol: float = 1e-7
    atol: float = 1e-9
    adjoint: str | None = None
    seminorm: bool | None = None
    max_steps: int = 10_000

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if not isinstance(self.backend, str) or not isinstance(self.adjoint, (str, type(None))):
            raise TypeError("backend and adjoint must be strings")

    @classmethod
    def from_kwargs(cls, base: "SolverOptions | None" = None, **kwargs) -> "SolverOptions":
        """Options from keywords, raising ``TypeError`` on an unknown one.

        ``tol`` sets ``rtol`` and ``atol`` together (the paper's single tolerance)."""
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
        return asdict(self)
