"""Step-size controllers of the native backend: ``odeint(..., controller=...)``.

A controller maps ``(h, r)`` — the step just attempted and its error ratio ``r`` (the RMS
norm of the local error estimate divided by ``atol + rtol · |y|``) — to accept/reject and
the next step size.  Everything is plain Python floats: the solver pays one ``.item()``
per step attempt to read ``r`` and nothing else.

A controller given to ``odeint`` is a template: every solve works on its own copy
(:meth:`Controller.start`), so one controller object can serve many solves and layers.
Each controller also names the embedded error estimator it is meant for (``embedded``):
``"shampine"`` (torchdiffeq's and ode45's) or ``"dp"`` (Dormand & Prince's, Hairer's and
scipy's).  Only the native backend takes controllers.

The tolerances are not the controller's (diffrax's ``PIDController(rtol, atol)`` holds them):
here ``rtol``/``atol`` are :class:`~pyhbnode.solving.SolverOptions` fields because every
backend honours them — torchdiffeq and Julia included, which take no controller object — and
the paper states one tolerance per task.  The method owns its tableau and error estimator
(:mod:`pyhbnode.solving.backends.native.tableau`); the controller picks which estimator it
is tuned for (``embedded``).
"""

from __future__ import annotations

import abc
import copy
import math

__all__ = [
    "Controller",
    "IController",
    "PIController",
    "HairerController",
    "FixedStep",
    "CONTROLLERS",
    "parse_controller",
]

_EMBEDDED = ("shampine", "dp")


def _check_factor(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < value < high):
        raise ValueError(f"{name} must be a number in ({low:g}, {high:g}), got {value!r}")
    return float(value)


class Controller(abc.ABC):
    """Interface: ``accepts(r)`` and ``next_step(h, r, accepted)``.

    Attributes:
        name: the string alias (``odeint(controller="i")``).
        adaptive: ``False`` for controllers that ignore the error estimate (the step then
            skips computing it).
        initial: the first step (``None``: Hairer's initial-step selection).
        embedded: the error estimator, ``"shampine"`` or ``"dp"``.
        landing: a step within this fraction of the rest of the interval is stretched to
            land on its end (no sliver steps).
        order: the order of the error estimate's exponent, set by :meth:`start` from the
            method (5 for DP5: the exponent ``-1/5``).
    """

    name = ""
    adaptive = True
    initial: float | None = None
    embedded = "shampine"
    landing = 0.01
    order = 5

    def start(self, order: int) -> Controller:
        """A fresh copy for one solve with a method whose error exponent is ``1/order``."""
        c = copy.copy(self)
        c.order = order
        c.reset()
        return c

    # a hook with a default, not abstract: IController and FixedStep keep no history
    def reset(self) -> None:  # noqa: B027
        """Forget the history."""

    def _set_factors(self, safety: float, ifactor: float, dfactor: float, embedded: str) -> None:
        """The settings every error-based controller has, checked (one place for all three)."""
        self.safety = _check_factor("safety", safety, 0.0, 1.0 + 1e-12)
        self.ifactor = _check_factor("ifactor", ifactor, 1.0, math.inf)
        self.dfactor = _check_factor("dfactor", dfactor, 0.0, 1.0)
        self.embedded = _check_embedded(embedded)

    def accepts(self, r: float) -> bool:
        return r <= 1.0

    @abc.abstractmethod
    def next_step(self, h: float, r: float, accepted: bool) -> float:
        """The next step size after a step of size ``h`` with error ratio ``r``."""

    def __repr__(self) -> str:
        public = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in public.items())})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))


class IController(Controller):
    """Integral controller ``h_new = h · clip(safety · r^(-1/order), dfactor, ifactor)``.

    With the defaults this is torchdiffeq's ``dopri5`` controller (safety 0.9, factors in
    [0.2, 10], never shrinking after an accepted step, Shampine's error estimator), so both
    solvers take the same steps; a non-finite ``r`` shrinks the step by ``dfactor``.
    """

    name = "i"

    def __init__(
        self, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2, embedded: str = "shampine"
    ) -> None:
        self._set_factors(safety, ifactor, dfactor, embedded)

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        if r == 0.0:
            return h * self.ifactor
        if not math.isfinite(r):
            return h * self.dfactor
        factor = self.safety * r ** (-1.0 / self.order)
        low = 1.0 if accepted else self.dfactor
        return h * min(self.ifactor, max(factor, low))


class HairerController(Controller):
    """Hairer's / scipy RK45's step rules with Dormand & Prince's error estimator.

    Accept when ``r < 1``; the next step is ``h · clip(safety · r^(-1/order), dfactor,
    ifactor)`` after an accepted step too (so a step may shrink after an accepted one),
    except that right after a rejection the step does not grow.  With the defaults
    (safety 0.9, factors [0.2, 10], ``embedded="dp"``) the native DP5 takes exactly the steps
    of ``scipy.integrate.solve_ivp(method="RK45")`` from the same first step.
    """

    name = "hairer"
    embedded = "dp"
    landing = 0.0

    def __init__(self, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2, embedded: str = "dp") -> None:
        self._set_factors(safety, ifactor, dfactor, embedded)
        self.reset()

    def reset(self) -> None:
        self._rejected = False

    def accepts(self, r: float) -> bool:
        return r < 1.0

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        if not math.isfinite(r):
            self._rejected = True
            return h * self.dfactor
        if accepted:
            factor = self.ifactor if r == 0.0 else min(self.ifactor, self.safety * r ** (-1.0 / self.order))
            if self._rejected:
                factor = min(1.0, factor)
            self._rejected = False
            return h * factor
        self._rejected = True
        return h * max(self.dfactor, self.safety * r ** (-1.0 / self.order))


class PIController(Controller):
    """Proportional–integral controller (Gustafsson; Hairer's DOPRI5 with ``beta = 0.04``).

    ``h_new = h · clip(safety · r^(-alpha) · r_prev^beta, dfactor, ifactor)`` with
    ``alpha = 1/order - 0.75 beta``; after a rejection the step never grows.
    """

    name = "pi"

    def __init__(
        self,
        beta: float = 0.04,
        safety: float = 0.9,
        ifactor: float = 10.0,
        dfactor: float = 0.2,
        embedded: str = "shampine",
    ) -> None:
        self.beta = _check_factor("beta", beta, -1e-12, 0.2)
        self._set_factors(safety, ifactor, dfactor, embedded)
        self.reset()

    def reset(self) -> None:
        self._r_prev = 1e-4
        self._rejected = False

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        if not math.isfinite(r):
            self._rejected = True
            return h * self.dfactor
        alpha = 1.0 / self.order - 0.75 * self.beta
        factor = self.ifactor if r == 0.0 else self.safety * r ** (-alpha) * self._r_prev**self.beta
        if accepted:
            self._r_prev = max(r, 1e-4)
            high = 1.0 if self._rejected else self.ifactor
            self._rejected = False
            return h * min(high, max(factor, 1.0 if r <= 1.0 else self.dfactor))
        self._rejected = True
        return h * min(1.0, max(factor, self.dfactor))


class FixedStep(Controller):
    """Constant steps of size ``h`` (every step accepted; no error estimate computed).

    A solve over ``[t0, t1]`` takes ``ceil((t1 - t0) / h)`` steps (the last one clipped);
    used for convergence-order tests and exact step counts.
    """

    name = "fixed"
    adaptive = False
    initial: float

    def __init__(self, h: float) -> None:
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not (0 < h < math.inf):
            raise ValueError(f"FixedStep(h): h must be a positive finite step size, got {h!r}")
        self.initial = float(h)

    def next_step(self, h: float, r: float, accepted: bool) -> float:
        return self.initial


def _check_embedded(value) -> str:
    if value not in _EMBEDDED:
        raise ValueError(f"embedded must be one of {list(_EMBEDDED)}, got {value!r}")
    return value


CONTROLLERS: dict[str, type[Controller]] = {"i": IController, "pi": PIController, "hairer": HairerController}


def parse_controller(value) -> Controller | None:
    """A :class:`Controller` from an instance, a string alias (``"i"``, ``"pi"``,
    ``"hairer"``) or ``None`` (the backend's default)."""
    if value is None or isinstance(value, Controller):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        if key in CONTROLLERS:
            return CONTROLLERS[key]()
        raise ValueError(f"unknown controller {value!r}; choose one of {sorted(CONTROLLERS)} or a Controller instance")
    raise TypeError(
        f"controller must be a Controller, one of {sorted(CONTROLLERS)} or None, got {type(value).__name__}"
    )
