"""The one input-validation layer of pyhbnode.

Every entry point (``odeint``, the layers, ``zoo.build``, ``fit``, the command line) refuses a
bad argument here, before any solving, with a message that names the argument, what was given
and what is allowed.  Three groups:

* scalar checks (:func:`check_real`, :func:`check_int`, :func:`check_bool`, :func:`check_choice`,
  :func:`check_callable`, :func:`regular_file`) used by every floor;
* the problem and the options of a solve (:func:`check_problem`,
  :func:`check_options_argument`, :func:`check_solver_kwargs`);
* the field's output (:func:`check_field_output` on the first evaluation;
  :func:`explain_field_failure` / :func:`reraise_field_failure` when a later evaluation made
  the stepper fail — called only on the failure path, so the hot path pays nothing).
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any, Iterable, NoReturn, Sequence

import torch
from torch import nn

__all__ = [
    "describe", "check_real", "check_int", "check_bool", "check_choice", "check_callable", "regular_file",
    "check_device", "check_problem", "check_options_argument", "check_solver_kwargs", "SOLVER_KEYWORDS",
    "check_field_output", "field_output_error", "explain_field_failure", "reraise_field_failure",
]

# The keywords every solving entry point takes (``tol`` sets rtol and atol together).
SOLVER_KEYWORDS = ("backend", "method", "rtol", "atol", "tol", "adjoint", "seminorm", "max_steps", "controller")


# ---------------------------------------------------------------------------------------------
# scalars
# ---------------------------------------------------------------------------------------------
def describe(value: Any) -> str:
    """A short description of ``value`` for an error message: its type and a clipped repr."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}, on {value.device}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_real(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, open_low: bool = False,
    allow_none: bool = False, finite: bool = True,
) -> float | None:
    """``value`` as a float, or ``ValueError``/``TypeError`` naming ``name``.

    Refuses bools, strings, NaN, ±Inf (unless ``finite=False``) and values outside
    ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number{' or None' if allow_none else ''}, got {describe(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value <= low if open_low else value < low):
        raise ValueError(f"{name} must be {'>' if open_low else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value:g}")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """``value`` as an int (no bools, no floats), at least ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer{' or None' if allow_none else ''}, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_device(name: str, value: Any) -> torch.device:
    """``value`` (a string or ``torch.device``) as a device this machine has, or ``ValueError``."""
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown {name} {value!r}; use 'cpu', 'cuda' or 'cuda:<index>'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {value!r} was asked for, but CUDA is not available here")
    return dev


def check_bool(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False{' or None' if allow_none else ''}, got {describe(value)}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str], *, allow_none: bool = False) -> str | None:
    choices = list(choices)
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {choices}")
    return value


def check_callable(name: str, value: Any, *, allow_none: bool = False, what: str = "a callable") -> Any:
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"{name} must be {what}{' or None' if allow_none else ''}, got {describe(value)}")
    return value


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it names an existing regular file; ``ValueError`` otherwise.

    A FIFO, device or directory is refused *without opening it* (opening a FIFO for reading
    blocks until somebody writes to it)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {str(path)!r} not found") from None
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} cannot be examined ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise ValueError(f"{what} {str(path)!r} is {kind}, not a regular file; it was not opened")
    return path


# ---------------------------------------------------------------------------------------------
# the problem and the options of a solve
# ---------------------------------------------------------------------------------------------
def _as_time_grid(t: Any, y0: torch.Tensor) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        return t
    if isinstance(t, (str, bytes)) or not isinstance(t, (Sequence, range)) and not hasattr(t, "__array__"):
        raise TypeError(f"t must be a 1-D tensor or a sequence of numbers (the output times), got {describe(t)}")
    try:
        return torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"t must be a 1-D tensor or a sequence of numbers, got {describe(t)} ({err})") from None


def _field_name(field: Any) -> str:
    return type(field).__name__ if isinstance(field, nn.Module) else getattr(field, "__name__", type(field).__name__)


def check_problem(
    field: nn.Module, y0: torch.Tensor, t: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Validate ``field``, ``y0`` and ``t``; return ``t`` as a tensor on ``y0``'s device.

    Raises ``TypeError``/``ValueError`` naming the argument.  A second-order field (``order ==
    2``: SONODE, HBNODE, GHBNODE) needs ``y0`` of shape ``(batch, 2, *features)``."""
    if not callable(field):
        raise TypeError(f"field must be callable as field(t, y) (an nn.Module), got {describe(field)}")
    if not isinstance(y0, torch.Tensor):
        raise TypeError(f"y0 must be a torch.Tensor, got {describe(y0)}")
    if not y0.is_floating_point():
        raise TypeError(f"y0 must be a real floating-point tensor (float16/32/64), got dtype {y0.dtype}")
    if y0.numel() == 0:
        raise ValueError(f"y0 is empty (shape {tuple(y0.shape)}); it needs at least one element")
    if not bool(torch.isfinite(y0).all()):
        raise ValueError("y0 contains NaN or Inf; check the input data and the initial-state network")
    order = getattr(field, "order", 1)
    if order == 2 and (y0.dim() < 3 or y0.shape[1] != 2):
        raise ValueError(
            f"y0 has shape {tuple(y0.shape)}, but the field {_field_name(field)} is second order: its state "
            "stacks position and velocity/momentum as (batch, 2, *features) (e.g. InitialState builds it)"
        )
    if order > 2 and (y0.dim() < 3 or y0.shape[1] != order):
        raise ValueError(
            f"y0 has shape {tuple(y0.shape)}, but the field {_field_name(field)} stacks {order} parts as "
            f"(batch, {order}, *features) (AdamNODE: h, m, v; e.g. MomentInitialState builds it)"
        )

    t = _as_time_grid(t, y0)
    if not t.is_floating_point():
        raise TypeError(f"t must be a floating-point tensor, got dtype {t.dtype}")
    if t.dtype != y0.dtype:
        raise TypeError(f"t has dtype {t.dtype} but y0 has {y0.dtype}; use the same dtype for both")
    if t.device != y0.device:
        raise ValueError(f"t is on {t.device} but y0 is on {y0.device}; move both to one device")
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"t must be a 1-D time grid with at least 2 points, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("t contains NaN or Inf; the output times must be finite")
    if not (bool((t[1:] > t[:-1]).all()) or bool((t[1:] < t[:-1]).all())):
        raise ValueError(f"t must be strictly increasing or strictly decreasing, got "
                         f"{t.tolist()[:8]}{'...' if t.numel() > 8 else ''}")

    if isinstance(field, nn.Module):
        for name, p in field.named_parameters():
            if p.is_floating_point() and p.dtype != y0.dtype:
                raise TypeError(
                    f"field parameter {name!r} has dtype {p.dtype} but y0 has {y0.dtype}; "
                    f"convert the model with .to({y0.dtype})"
                )
            if p.device != y0.device:
                raise ValueError(
                    f"field parameter {name!r} is on {p.device} but y0 is on {y0.device}; "
                    "move the model and the data to one device"
                )
    return t


def _check_option(name: str, value: Any) -> None:
    """One solver option's value (``None`` means "the default" for every option)."""
    if value is None:
        return
    if name in ("rtol", "atol", "tol"):
        check_real(name, value, low=0.0, open_low=True)
    elif name == "max_steps":
        check_int(name, value, minimum=1)
    elif name == "seminorm":
        check_bool(name, value)
    elif name in ("backend", "method"):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string naming the {name}, got {describe(value)}")
        if name == "backend":
            from .backends import available_backends  # names only: no backend is loaded

            check_choice("backend", value, available_backends())
    elif name == "adjoint":
        # a name, or (once gradient modes are objects) an object with a ``name``
        if not isinstance(value, str) and not isinstance(getattr(value, "name", None), str):
            raise TypeError(f"adjoint must be a gradient-mode name (e.g. 'backsolve') or an Adjoint object, "
                            f"got {describe(value)}")


def check_solver_kwargs(kwargs: dict[str, Any], *, where: str = "solver options") -> None:
    """Refuse unknown solver keywords and bad values (``tol``, ``rtol``, ``backend`` ...).

    ``where`` names the caller in the message, e.g. ``"ODEBlock"``."""
    unknown = sorted(set(kwargs) - set(SOLVER_KEYWORDS))
    if unknown:
        raise TypeError(f"{where}: unknown solver option(s) {unknown}; allowed: {list(SOLVER_KEYWORDS)}")
    for name, value in kwargs.items():
        _check_option(name, value)


def check_options_argument(options: Any) -> None:
    """``options`` must be ``None`` or a :class:`~pyhbnode.solving.SolverOptions`."""
    from .options import SolverOptions

    if options is not None and not isinstance(options, SolverOptions):
        hint = (f"; pass the values as keywords (e.g. rtol=...) or SolverOptions(**{options!r})"
                if isinstance(options, dict) else "")
        raise TypeError(f"options must be a SolverOptions or None, got {describe(options)}{hint}")


# ---------------------------------------------------------------------------------------------
# the field's output
# ---------------------------------------------------------------------------------------------
def _where(t: Any) -> str:
    if t is None:
        return ""
    try:
        return f" at t = {float(t):.6g}"
    except (TypeError, ValueError, RuntimeError):
        return ""


def field_output_error(dy: Any, shape: torch.Size, dtype: torch.dtype, device: torch.device,
                       at: str = "") -> Exception | None:
    """The error for a field output that cannot be ``dy/dt`` of a state of this shape, dtype
    and device (``None`` if it can).  The one check every backend's field wrapper uses; ``at``
    says where (e.g. ``" at t = 0.5"``), placed after what the field returned."""
    expected = f"a tensor of the state's shape {tuple(shape)}, dtype {dtype}, on {device}"
    if not isinstance(dy, torch.Tensor):
        return TypeError(f"the vector field returned {describe(dy)}{at}; forward(t, y) must return dy/dt, {expected}")
    if dy.shape != shape:
        return ValueError(f"the vector field returned shape {tuple(dy.shape)}{at} for a state of shape "
                          f"{tuple(shape)}; forward(t, y) must return dy/dt with the shape of y")
    if dy.dtype != dtype:
        kind = ("a complex" if dy.is_complex() else "an integer" if not dy.is_floating_point() else "another")
        return TypeError(f"the vector field returned {kind} dtype {dy.dtype}{at} for a state of dtype {dtype}; "
                         f"forward(t, y) must return dy/dt in the state's dtype (cast inside the field, or "
                         f"convert the model with .to({dtype}))")
    if dy.device != device:
        return ValueError(f"the vector field returned a tensor on {dy.device}{at} for a state on {device}; "
                          "keep the field and the state on one device")
    return None


def check_field_output(dy: Any, y: torch.Tensor, t: Any = None) -> None:
    """Refuse a field output that cannot be ``dy/dt`` for the state ``y``.

    Checks (in this order): a tensor, the shape, the dtype (a complex, integer or other
    floating dtype is refused: the solver would silently cast or fail deep inside), the device
    (:func:`field_output_error`), finite values (:class:`~pyhbnode.solving.errors.NonFiniteState`)."""
    err = field_output_error(dy, y.shape, y.dtype, y.device, _where(t))
    if err is not None:
        raise err
    if not bool(torch.isfinite(dy).all()):
        from .errors import NonFiniteState

        raise NonFiniteState("non-finite values (NaN/Inf) in the vector field's output",
                             t=float(t) if isinstance(t, (int, float, torch.Tensor)) else None)


# Exceptions a stepper raises when the field's output is malformed (a wrong shape in a ``cat``,
# ``None.reshape``, a dtype clash in ``addmm`` ...); anything else is passed through untouched.
_STEPPER_ERRORS = (TypeError, ValueError, RuntimeError, AttributeError, IndexError)
# Words of torch's own shape/dtype messages ("mat1 and mat2 shapes cannot be multiplied", "expected
# input[1, 2, 28, 28] to have 1 channels" ...): only those are re-worded, a user's RuntimeError is not.
_SHAPE_WORDS = ("shape", "size", "dimension", "mat1", "mat2", "dtype", "channels", "out of range", "index")


def explain_field_failure(field: Any, t: Any, y: torch.Tensor, error: BaseException) -> BaseException | None:
    """A clearer exception for ``error`` if the field is at fault, else ``None``.

    Call it from an ``except`` around a solve, with the time and state of the evaluation in
    progress (or the problem's ``t[0]`` and ``y0``).  It evaluates ``field(t, y)`` once more,
    without gradient, and checks the output with :func:`check_field_output`:

    * the output does not fit the state -> that error (naming shape/dtype/device/None);
    * the field itself raises a shape/dtype error on ``y`` -> a ``ValueError`` naming the
      state's shape and the field, with the torch message;
    * otherwise (the field is fine, the error is the user's own exception, or a solver
      error) -> ``None``: the caller re-raises ``error`` unchanged.

    Costs one field evaluation, on the failure path only."""
    from .errors import SolverError

    if isinstance(error, SolverError) or not isinstance(error, _STEPPER_ERRORS):
        return None
    if not isinstance(y, torch.Tensor):
        return None
    if not isinstance(t, torch.Tensor):
        try:
            t = torch.scalar_tensor(float(t), dtype=y.dtype, device=y.device)
        except (TypeError, ValueError):
            return None
    try:
        with torch.no_grad():
            dy = field(t, y.detach())
    except _STEPPER_ERRORS as err:
        if type(err) is not type(error) or str(err) != str(error):
            return None  # a different failure: not this evaluation's
        if isinstance(err, (RuntimeError, IndexError)) and any(w in str(err).lower() for w in _SHAPE_WORDS):
            return ValueError(
                f"the vector field {_field_name(field)} cannot be evaluated on a state of shape {tuple(y.shape)} "
                f"(dtype {y.dtype}){_where(t)}: {type(err).__name__}: {' '.join(str(err).split())}. Check that "
                "y0's shape matches the field (its feature width; (batch, 2, *features) for second-order fields)")
        return None
    except Exception:  # the user's own exception: theirs to see, unchanged
        return None
    try:
        check_field_output(dy, y, t)
    except (TypeError, ValueError) as better:
        return better
    except SolverError:
        return None
    return None


def reraise_field_failure(field: Any, t: Any, y: torch.Tensor, error: BaseException) -> NoReturn:
    """``raise explain_field_failure(...) from error`` when the field is at fault, else re-raise
    ``error``.  For backends, in one line: ``except Exception as e: reraise_field_failure(f, t0, y0, e)``."""
    better = explain_field_failure(field, t, y, error)
    if better is None:
        raise error
    raise better from error
