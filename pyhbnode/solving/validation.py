"""The checks of a solve: its problem and its field's output.

Each refuses a bad argument before any solving, with a message that names the argument, what
was given and what is allowed (the generic checks are :mod:`pyhbnode.checks`; the options
check themselves, :class:`~pyhbnode.solving.SolverOptions`):

* the problem (:func:`check_problem`);
* the field's output (:func:`check_field_output` on the first evaluation;
  :func:`explain_field_failure` / :func:`reraise_field_failure` when a later evaluation made
  the stepper fail — called only on the failure path, so the hot path pays nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import torch
from torch import nn

from ..checks import describe

__all__ = [
    "check_problem",
    "check_field_output",
    "field_output_error",
    "explain_field_failure",
    "reraise_field_failure",
]


# ---------------------------------------------------------------------------------------------
# the problem
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


def check_problem(field: nn.Module, y0: torch.Tensor, t: torch.Tensor | Sequence[float]) -> torch.Tensor:
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
        raise ValueError(
            f"t must be strictly increasing or strictly decreasing, got "
            f"{t.tolist()[:8]}{'...' if t.numel() > 8 else ''}"
        )

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


def field_output_error(
    dy: Any, shape: torch.Size, dtype: torch.dtype, device: torch.device, at: str = ""
) -> Exception | None:
    """The error for a field output that cannot be ``dy/dt`` of a state of this shape, dtype
    and device (``None`` if it can).  The one check every backend's field wrapper uses; ``at``
    says where (e.g. ``" at t = 0.5"``), placed after what the field returned."""
    expected = f"a tensor of the state's shape {tuple(shape)}, dtype {dtype}, on {device}"
    if not isinstance(dy, torch.Tensor):
        return TypeError(f"the vector field returned {describe(dy)}{at}; forward(t, y) must return dy/dt, {expected}")
    if dy.shape != shape:
        return ValueError(
            f"the vector field returned shape {tuple(dy.shape)}{at} for a state of shape "
            f"{tuple(shape)}; forward(t, y) must return dy/dt with the shape of y"
        )
    if dy.dtype != dtype:
        kind = "a complex" if dy.is_complex() else "an integer" if not dy.is_floating_point() else "another"
        return TypeError(
            f"the vector field returned {kind} dtype {dy.dtype}{at} for a state of dtype {dtype}; "
            f"forward(t, y) must return dy/dt in the state's dtype (cast inside the field, or "
            f"convert the model with .to({dtype}))"
        )
    if dy.device != device:
        return ValueError(
            f"the vector field returned a tensor on {dy.device}{at} for a state on {device}; "
            "keep the field and the state on one device"
        )
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

        raise NonFiniteState(
            "non-finite values (NaN/Inf) in the vector field's output",
            t=float(t) if isinstance(t, (int, float, torch.Tensor)) else None,
        )


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
                "y0's shape matches the field (its feature width; (batch, 2, *features) for second-order fields)"
            )
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
