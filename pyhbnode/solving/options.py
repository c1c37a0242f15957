"""Solver options as one frozen value: the only place an option is named.

Every entry point — ``odeint``, ``ODEBlock``, ``ODERNN``, ``zoo.build``,
``set_solver_options``, ``fit``, the config files' ``[solver]`` table and the command line's
flags — takes a :class:`SolverOptions` (``solver=``) or keywords that are its field names
(plus ``tol``, which sets ``rtol`` and ``atol`` together).  Their lists are derived from
:func:`dataclasses.fields`; each field's ``metadata`` carries its help text and the parser
that reads it from a string (a flag or a ``--set`` value).  Values are checked once, here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from .adjoints import Adjoint, parse_adjoint
from .backends.registry import canonical_backend
from .controllers import Controller, parse_controller

__all__ = [
    "SolverOptions",
    "DEFAULT_BACKEND",
    "MIN_RTOL",
    "TOL",
    "option_fields",
    "option_names",
    "parse_option",
    "solver_argument",
]

DEFAULT_BACKEND = "native"
# The smallest rtol accepted (scipy's floor, 100 float64 eps): below it the error ratio
# is rounding noise.  In float32 tolerances below ~1e-6 are honoured only as far as the
# arithmetic allows (the steps then shrink until the rounding error is "small enough").
MIN_RTOL = 100 * 2.220446049250313e-16
# ``tol`` is not a field: it is the paper's single tolerance, a shorthand for rtol = atol.
TOL = "tol"


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _parse_float(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number such as 1e-5, got {value!r}") from None
    return value


def _parse_int(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str):
        try:
            return int(value.replace("_", ""))
        except ValueError:
            raise ValueError(f"expected a whole number such as 10000, got {value!r}") from None
    return value


_TRUE, _FALSE, _NONE = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("none", "default", "")


def _parse_flag(value: Any) -> Any:
    """``True``/``False``/``None`` from a bool or a word (``true``, ``off``, ``none`` ...)."""
    value = _text(value)
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        if word in _NONE:
            return None
        raise ValueError(f"expected true, false or none, got {value!r}")
    return value


def _parse_compile(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    return _parse_flag(value)


def _parse_name(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str) and value.lower() in _NONE:
        return None
    return value


def _option(default: Any, help: str, parse: Callable[[Any], Any]) -> Any:
    return field(default=default, metadata={"help": help, "parse": parse})


@dataclass(frozen=True)
class SolverOptions:
    """How to solve and differentiate.

    Attributes:
        backend: a registered backend name: ``"native"`` (our Dormand–Prince, the default;
            ``"torch"`` is an alias), ``"torchdiffeq"``, ``"julia"``, ``"auto"``.
        method: the integrator; ``"dopri5"`` (Dormand–Prince 5(4)) is the paper's.
        rtol, atol: relative and absolute tolerances of the adaptive step control; finite,
            ``atol > 0`` and ``rtol >= MIN_RTOL`` (2.2e-14).
        adjoint: the gradient mode, an :class:`~pyhbnode.solving.adjoints.Adjoint`
            (``Checkpointed()`` — the default on every backend —, ``Backsolve()``,
            ``Interpolating()``, ``Direct()``) or its string alias (``"checkpointed"``,
            ``"checkpointed:8"``, ``"backsolve"``, ...); always an ``Adjoint`` once built.
        seminorm: exclude the parameters' adjoint from the backward step-size control
            (continuous adjoints only); ``None`` takes the backend's default (on for
            ``native``, off for ``torchdiffeq``).
        max_steps: the most step attempts one solve (forward or backward) may take.
        controller: the step-size controller (native backend only): a
            :class:`~pyhbnode.solving.controllers.Controller` or ``"i"`` (torchdiffeq's
            rule, the default), ``"pi"``, ``"hairer"`` (scipy RK45's rules); ``None``
            takes the backend's default.
        compile: run the solver's steps as compiled programs (native backend
            only, :mod:`~pyhbnode.solving.backends.native.compiled`): ``True`` or ``False``
            force it; ``"auto"`` (default) decides from what is known up front
            (:func:`~pyhbnode.solving.backends.native.decide_compile`): a single solve steps
            eagerly, and ``fit`` compiles a whole run from its first step when the run is
            long enough to pay for the compile (CPU, small states).  Never from what the
            process solved before: a seed gives the same numbers whatever ran before it.
            ``None`` is a deprecated synonym of ``"auto"``.
    """

    backend: str = _option(
        DEFAULT_BACKEND, "solver backend: native (alias torch), torchdiffeq, julia, auto", _parse_name
    )
    method: str = _option("dopri5", "integration method (dopri5)", _parse_name)
    rtol: float = _option(1e-7, "relative tolerance of the adaptive steps", _parse_float)
    atol: float = _option(1e-9, "absolute tolerance of the adaptive steps", _parse_float)
    adjoint: Adjoint | str | None = _option(
        None, "gradient mode: checkpointed (default), checkpointed:N, backsolve, interpolating, direct", _parse_name
    )
    seminorm: bool | None = _option(
        None, "seminorm in the backward step control: true, false or none (the backend's default)", _parse_flag
    )
    max_steps: int = _option(10_000, "most step attempts one solve may take", _parse_int)
    controller: Controller | str | None = _option(
        None, "step-size controller (native backend): i, pi, hairer, fixed or none", _parse_name
    )
    compile: bool | str = _option(
        "auto", "compiled steps (native backend): true, false or auto (decided up front)", _parse_compile
    )

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.rtol < MIN_RTOL:
            raise ValueError(
                f"rtol must be >= {MIN_RTOL:.3g} (100 float64 eps; below that the error "
                f"estimate is rounding noise), got {self.rtol!r}"
            )
        if isinstance(self.max_steps, bool) or not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a string naming the method, got {type(self.method).__name__}")
        if self.seminorm is not None and not isinstance(self.seminorm, bool):
            raise TypeError(f"seminorm must be True, False or None, got {self.seminorm!r}")
        if self.compile is None:
            warnings.warn(
                "compile=None is deprecated; use compile='auto' (the default)", DeprecationWarning, stacklevel=3
            )
            object.__setattr__(self, "compile", "auto")
        if not (isinstance(self.compile, bool) or (isinstance(self.compile, str) and self.compile == "auto")):
            raise TypeError(f"compile must be True, False or 'auto', got {self.compile!r}")
        object.__setattr__(self, "backend", canonical_backend(self.backend))
        object.__setattr__(self, "adjoint", parse_adjoint(self.adjoint))
        object.__setattr__(self, "controller", parse_controller(self.controller))

    @classmethod
    def from_kwargs(cls, base: SolverOptions | None = None, **kwargs: Any) -> SolverOptions:
        """``base`` (default ``SolverOptions()``) with the options in ``kwargs`` replaced.

        Keys are the field names and ``tol`` (rtol = atol = tol unless they are given); a
        ``None`` value leaves that option as it is; an unknown key is a ``TypeError`` that
        lists the valid ones."""
        if base is not None and not isinstance(base, SolverOptions):
            hint = (
                f"; pass SolverOptions(**{base!r}) or the values as keywords"
                if isinstance(base, Mapping)
                else "; pass solver settings as keywords instead, e.g. rtol=1e-3"
            )
            raise TypeError(f"solver must be a SolverOptions or None, got {type(base).__name__}{hint}")
        names = option_names()
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"unknown solver option(s) {unknown}; valid: {list(names)}")
        tol = kwargs.pop(TOL, None)
        if tol is not None:
            for name in ("rtol", "atol"):
                if kwargs.get(name) is None:
                    kwargs[name] = tol
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return replace(base or cls(), **kwargs)

    @classmethod
    def from_strings(cls, values: Mapping[str, Any], base: SolverOptions | None = None) -> SolverOptions:
        """Like :meth:`from_kwargs`, each value first read by its field's parser (so ``"1e-5"``,
        ``"true"`` and ``"none"`` work as they do on the command line); a value that does not
        parse is a ``ValueError`` naming the option."""
        parsed = {}
        for key, value in values.items():
            try:
                parsed[key] = parse_option(key, value)
            except ValueError as err:
                raise ValueError(f"solver option {key}: {err}") from None
        return cls.from_kwargs(base, **parsed)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready): the adjoint as its alias (``"checkpointed:8"``), the
        controller as its repr or ``None``."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        assert isinstance(
            self.adjoint, Adjoint
        )  # parsed by __post_init__; the field's type is what the constructor accepts
        d["adjoint"] = self.adjoint.spec()
        d["controller"] = None if self.controller is None else repr(self.controller)
        return d


def option_fields() -> tuple[Field, ...]:
    """The dataclass fields of :class:`SolverOptions`: name, default, ``metadata["help"]``
    and ``metadata["parse"]`` (string → value)."""
    return fields(SolverOptions)


def option_names() -> tuple[str, ...]:
    """Every solver keyword: the field names and ``tol``."""
    return (*(f.name for f in option_fields()), TOL)


def parse_option(name: str, value: Any) -> Any:
    """``value`` of the option ``name`` read from a string (or passed through when typed)."""
    if name == TOL:
        return _parse_float(value)
    for f in option_fields():
        if f.name == name:
            return f.metadata["parse"](value)
    raise TypeError(f"unknown solver option {name!r}; valid: {list(option_names())}")


def solver_argument(
    solver: SolverOptions | None, keywords: dict[str, Any], *, where: str, default: SolverOptions | None = None
) -> SolverOptions:
    """The options an entry point was given: ``solver`` (or ``default``) with ``keywords``
    (option names) on top, checked once.  ``options=``, the name before ``solver=``, is
    still read for one release, with a ``DeprecationWarning``."""
    legacy = keywords.pop("options", None)
    if legacy is not None:
        warnings.warn(f"{where}(options=...) is deprecated; pass solver=...", DeprecationWarning, stacklevel=3)
        if solver is not None:
            raise TypeError(f"{where}: give solver= or options=, not both")
        solver = legacy
    try:
        return SolverOptions.from_kwargs(solver if solver is not None else default, **keywords)
    except TypeError as err:
        raise TypeError(f"{where}: {err}") from None
