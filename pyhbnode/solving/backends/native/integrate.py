"""The adaptive integrate loop around a step method.

:func:`integrate` steps ``dz/ds = rhs(s, z)`` from ``s`` to ``s_end > s`` and yields every
accepted step as an :class:`Accepted` record; the caller reads outputs, keeps checkpoints
or stops listening.  Failures raise :class:`StepFailure` (what, where), which the caller
turns into a public :class:`~pyhbnode.solving.errors.SolverError` with its phase and NFE.
A backward (adjoint) solve integrates in ``s = -t``, so one loop serves both directions.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import torch

from ...controllers import Controller
from ...errors import MaxStepsExceeded, NonFiniteState, SolverError, StepSizeUnderflow
from .dopri5 import RHS, Dopri5, StepResult

__all__ = ["Counter", "Accepted", "StepFailure", "integrate", "run_to", "floor_step"]


@dataclass(slots=True)
class Counter:
    """Counters of one solve (forward or backward): step attempts, accepted, rejected and
    field evaluations."""

    attempts: int = 0
    accepted: int = 0
    rejected: int = 0
    nfe: int = 0


@dataclass(slots=True)
class Accepted:
    """One accepted step: from ``(s, z0)`` with derivative ``k0`` (quadrature integrand
    ``q0``) over ``h``; ``step`` holds the new state, its derivative and the stages."""

    s: float
    h: float
    z0: torch.Tensor
    k0: torch.Tensor
    q0: tuple | None
    step: StepResult


class StepFailure(Exception):
    """The loop could not go on: ``kind`` (a SolverError subclass) at ``s`` with step ``h``."""

    def __init__(self, kind: type[SolverError], what: str, s: float, h: float | None) -> None:
        super().__init__(what)
        self.kind, self.what, self.s, self.h = kind, what, s, h


def floor_step(s: float, s_end: float, dtype: torch.dtype) -> float:
    """The smallest step the loop takes inside an interval: ``4 eps · max(|s|, |s_end|)``
    (a smaller one would not change ``s`` reliably)."""
    return 4.0 * torch.finfo(dtype).eps * max(abs(s), abs(s_end))


def integrate(
    method: Dopri5,
    rhs: RHS,
    s: float,
    s_end: float,
    z: torch.Tensor,
    k: torch.Tensor,
    h: float,
    *,
    controller: Controller,
    counter: Counter,
    max_steps: int,
    q: tuple | None = None,
    Q: list | None = None,
    quad_norm: bool = False,
) -> Generator[Accepted, None, tuple[torch.Tensor, torch.Tensor, tuple | None, float]]:
    """Step from ``(s, z)`` (derivative ``k``, FSAL) to ``s_end``, first trying ``h``.

    Args:
        q, Q: the quadrature integrand at ``s`` and the accumulated quadrature ``∫ q ds``
            (a list of tensors, updated in place after each accepted step); ``None``: none.
        quad_norm: include the quadrature's error in the step control (``False``: the
            seminorm of Kidger et al.).
        max_steps: the most step attempts ``counter`` may reach (over a whole solve).

    Yields:
        :class:`Accepted` for every accepted step, in order; the last one ends at ``s_end``.
        Its ``step.z``/``step.k`` are the state and derivative there.  The generator's
        return value (``StopIteration.value``, see :func:`run_to`) is ``(z, k, q, h_next)``:
        the end state, its derivative and integrand, and the step size proposed next.
    """
    floor = floor_step(s, s_end, z.dtype)
    landing = 1.0 + controller.landing
    next_step, accepts = controller.next_step, controller.accepts
    adaptive = controller.adaptive and method.estimate_error
    b, e = method.tableau.b, method.tableau.e
    has_q = Q is not None and q is not None
    check_q = quad_norm and has_q
    nonfinite: bool | str = False  # "overflow": the error estimate overflowed, the state did not
    while s < s_end:
        remaining = s_end - s
        # Land on s_end: the rest is taken in one step when the proposal reaches (almost)
        # that far, or when what would be left is below the step floor.
        last = h * landing >= remaining or remaining - h <= floor
        ht = remaining if last else h
        if counter.attempts >= max_steps:
            raise StepFailure(MaxStepsExceeded, f"more than {max_steps} step attempts (max_steps)", s, ht)
        if not ht > floor and not (last and ht > 0.0):
            # a landing step shorter than the floor is fine (an interval of a few ulp);
            # any other step that small means the controller gave up
            if nonfinite == "overflow":
                raise StepFailure(
                    StepSizeUnderflow,
                    f"step size underflow: the error estimate overflows "
                    f"{z.dtype} although the state is finite (the vector field's values, "
                    f"|f| up to {float(k.abs().max()):.3g}, are too large for this dtype and "
                    "tolerance)",
                    s,
                    ht,
                )
            if nonfinite or ht != ht:
                raise StepFailure(
                    NonFiniteState,
                    "non-finite values in the vector field or the state "
                    "(the step size shrank to nothing trying to avoid them)",
                    s,
                    ht,
                )
            raise StepFailure(StepSizeUnderflow, "step size underflow", s, ht)
        counter.attempts += 1
        res = method.step(rhs, s, ht, z, k)
        assert res.k is not None  # a full step (last_stage) always has its end derivative
        counter.nfe += 6
        r = res.ratio.item() if res.ratio is not None and adaptive else 0.0
        if r != r or r == math.inf:  # the fast ratio overflows near the dtype's largest value
            r = method.safe_ratio(ht, z, res).item()
        Q1 = None
        if check_q and Q is not None:
            rq, Q1 = _quad_error(Q, (q, *res.qs), b, e, ht, method.rtol, method.atol)
            r = max(r, rq)
        if not adaptive or accepts(r):
            h_next = next_step(ht, r, True)
            if last and h_next < h:
                h_next = h  # a step clipped to land on s_end says little about the next one
            if has_q and Q is not None:
                if Q1 is not None:
                    torch._foreach_copy_(Q, Q1)
                else:
                    _foreach_combo(Q, (q, *res.qs[:5]), b, ht)
            counter.accepted += 1
            yield Accepted(s, ht, z, k, q, res)
            s = s_end if last else s + ht
            z, k, q = res.z, res.k, res.qs[5]
            nonfinite = False
        else:
            counter.rejected += 1
            if not math.isfinite(r):
                if not bool(torch.isfinite(z).all()):
                    raise StepFailure(NonFiniteState, "non-finite values in the state", s, ht)
                finite_step = bool(torch.isfinite(res.z).all()) and bool(torch.isfinite(res.k).all())
                nonfinite = "overflow" if finite_step and bool(torch.isfinite(k).all()) else True
            h_next = next_step(ht, r, False)
        h = h_next
        del res  # the stages are not kept alive through the next step
    return z, k, q, h


def run_to(steps: Iterator[Accepted]) -> tuple:
    """Drain :func:`integrate` without keeping its records: ``(z, k, q, h_next)`` at the end."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _foreach_combo(Q: list, qs, coeffs, h: float) -> None:
    """``Q += h Σ c_i q_i`` for lists of tensors (one fused call per stage)."""
    for c, q in zip(coeffs, qs, strict=False):
        if c != 0.0:
            torch._foreach_add_(Q, q, alpha=h * c)


def _quad_error(Q: list, qs, b, e, h: float, rtol: float, atol: float) -> tuple[float, list]:
    """RMS error ratio of the quadrature over a step and its value at the step's end."""
    Q1 = [x.clone() for x in Q]
    _foreach_combo(Q1, qs, b, h)
    err = [torch.zeros_like(x) for x in Q]
    _foreach_combo(err, qs, e, h)
    flat_err = torch.cat([x.reshape(-1) for x in err])
    flat_q0 = torch.cat([x.reshape(-1) for x in Q])
    flat_q1 = torch.cat([x.reshape(-1) for x in Q1])
    tol = torch.maximum(flat_q0.abs(), flat_q1.abs()).mul_(rtol).add_(atol)
    r = torch.linalg.vector_norm(flat_err.div_(tol)).item() / math.sqrt(max(1, flat_err.numel()))
    return r, Q1
