"""The Dormand–Prince 5(4) stepper: FSAL, adaptive steps, 4th-order dense output.

Everything is written for speed on small states, where a solver's cost is the number of
tensor operations it dispatches rather than the arithmetic:

* stage inputs are built with ``torch.add(z, k, alpha=h*a)`` plus in-place ``add_`` — one
  operation per Butcher coefficient, no coefficient tensors, no ``torch.stack``;
* times and step sizes are Python floats; the only host sync is one ``.item()`` per step
  attempt (the error ratio), and none at all with a fixed step;
* the loop integrates in a variable ``s`` with positive steps; a backward (adjoint) solve
  uses ``s = -t`` so that one loop serves both directions.

The same loop runs with autograd recording (``adjoint="direct"``: every operation is
out-of-place or in-place on a fresh tensor, so it differentiates) or without it (the
adjoint modes).  Statistics and failures are reported through :class:`Tally` and a
``fail`` callback, so that this module knows nothing of phases or ``SolverStats``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ...errors import MaxStepsExceeded, NonFiniteState, StepSizeUnderflow
from .controller import Controller, initial_step
from .tableau import DOPRI5, Tableau

__all__ = ["Tally", "march", "solve_forward", "dense_r5", "dense_eval", "dense_weights"]

# rhs(s, z) -> (k, q): the derivative dz/ds and an optional quadrature integrand q (a flat
# tensor integrated alongside, never fed back into the stages; ``None`` when absent).
RHS = Callable[[float, torch.Tensor], "tuple[torch.Tensor, torch.Tensor | None]"]

_C = DOPRI5.c
_A = DOPRI5.a
_B = DOPRI5.b
_D = DOPRI5.d


class Tally:
    """Counters of one solve: step attempts, accepted, rejected, field evaluations."""

    __slots__ = ("attempts", "accepted", "rejected", "nfe")

    def __init__(self) -> None:
        self.attempts = self.accepted = self.rejected = self.nfe = 0


def _combo(z: torch.Tensor, ks, coeffs, h: float) -> torch.Tensor:
    """``z + h * sum(c_i k_i)`` over the nonzero ``coeffs`` (a fresh tensor)."""
    out = None
    for c, k in zip(coeffs, ks):
        if c == 0.0:
            continue
        out = torch.add(z, k, alpha=h * c) if out is None else out.add_(k, alpha=h * c)
    return out


def dense_r5(h: float, ks) -> torch.Tensor:
    """Hairer's dense-output correction ``r5 = h * sum(d_i k_i)`` of one step."""
    out = None
    for c, k in zip(_D, ks):
        if c != 0.0:
            out = torch.mul(k, h * c) if out is None else out.add_(k, alpha=h * c)
    return out


def dense_weights(theta: float) -> tuple[float, float, float, float, float]:
    """Weights ``(w_y0, w_y1, w_hf0, w_hf1, w_r5)`` of the interpolant at ``theta in [0, 1]``.

    Hairer's DOPRI5 dense output ``y0 + θ r2 + θ(1-θ) r3 + θ²(1-θ) r4 + θ²(1-θ)² r5`` with
    ``r2 = y1 - y0``, ``r3 = h f0 - r2``, ``r4 = r2 - h f1 - r3`` rewritten in the five
    stored vectors; 4th-order accurate, and matching ``y0, y1, f0, f1`` at the ends.
    """
    t1 = 1.0 - theta
    a = theta * t1            # θ(1-θ)
    b = theta * a             # θ²(1-θ)
    return (1.0 - theta + a - 2.0 * b, theta - a + 2.0 * b, a - b, -b, b * t1)


def dense_eval(theta: float, h: float, y0, y1, f0, f1, r5) -> torch.Tensor:
    """The dense output of one step at ``theta`` (a fresh tensor, differentiable)."""
    w0, w1, w2, w3, w4 = dense_weights(theta)
    out = torch.mul(y0, w0)
    out.add_(y1, alpha=w1).add_(f0, alpha=w2 * h).add_(f1, alpha=w3 * h).add_(r5, alpha=w4)
    return out


def march(
    rhs: RHS,
    s: float,
    s_end: float,
    z: torch.Tensor,
    k: torch.Tensor,
    q: torch.Tensor | None,
    Q: torch.Tensor | None,
    h: float,
    *,
    ctrl: Controller,
    rtol: float,
    atol: float,
    groups: int,
    quad_norm: bool,
    max_steps: int,
    tally: Tally,
    fail: Callable,
    on_accept: Callable | None = None,
    tableau: Tableau = DOPRI5,
):
    """Integrate ``dz/ds = rhs(s, z)`` from ``s`` to ``s_end`` (``s_end > s``) with DP5.

    Args:
        z, k: the state and its derivative at ``s`` (FSAL: ``k`` is reused, not recomputed).
        q, Q: the quadrature integrand at ``s`` and the accumulated quadrature ``∫ q ds``
            (both ``None`` when there is none); ``Q`` is updated in place.
        h: the first step to try (clipped so that the last step lands on ``s_end``).
        groups: the error norm is the largest RMS over ``groups`` equal slices of ``z``
            (torchdiffeq's mixed norm over the parts of an augmented state).
        quad_norm: include the quadrature's error in the norm (``False`` = seminorm).
        max_steps: the most step attempts ``tally`` may reach (counted over a whole solve).
        fail: ``fail(error_class, what, s, h)`` raises the typed error.
        on_accept: ``on_accept(s, h, z0, z1, ks)`` after each accepted step.
        tableau: the DP5 pair's error weights to use (:data:`DOPRI5` or
            :data:`DOPRI5_SHAMPINE`); the propagated solution is the same.

    Returns:
        ``(z, k, q, h_next)`` at ``s_end``.
    """
    c2, c3, c4, c5, c6 = _C[1:6]
    a21, = _A[1]
    a31, a32 = _A[2]
    a41, a42, a43 = _A[3]
    a51, a52, a53, a54 = _A[4]
    a61, a62, a63, a64, a65 = _A[5]
    b1, _, b3, b4, b5, b6, _ = _B
    e1, _, e3, e4, e5, e6, e7 = tableau.e
    add = torch.add
    adaptive = ctrl.adaptive
    next_step = ctrl.next_step
    eps = 4.0 * torch.finfo(z.dtype).eps
    n_group = z.numel() // groups
    inv_sqrt = 1.0 / math.sqrt(n_group)
    inv_sqrt_q = 1.0 / math.sqrt(Q.numel()) if (quad_norm and Q is not None and Q.numel()) else 0.0
    abs_z = None
    nonfinite = False
    while s < s_end:
        remaining = s_end - s
        last = h >= remaining
        ht = remaining if last else h
        if tally.attempts >= max_steps:
            fail(MaxStepsExceeded, f"more than {max_steps} step attempts (max_steps)", s, ht)
        if not ht > eps * max(abs(s), abs(s_end)):
            if nonfinite or ht != ht:
                fail(NonFiniteState, "non-finite values in the vector field or the state "
                     "(the step size shrank to nothing trying to avoid them)", s, ht)
            fail(StepSizeUnderflow, "step size underflow", s, ht)
        tally.attempts += 1

        k2, q2 = rhs(s + c2 * ht, add(z, k, alpha=ht * a21))
        z3 = add(z, k, alpha=ht * a31)
        z3.add_(k2, alpha=ht * a32)
        k3, q3 = rhs(s + c3 * ht, z3)
        z4 = add(z, k, alpha=ht * a41)
        z4.add_(k2, alpha=ht * a42).add_(k3, alpha=ht * a43)
        k4, q4 = rhs(s + c4 * ht, z4)
        z5 = add(z, k, alpha=ht * a51)
        z5.add_(k2, alpha=ht * a52).add_(k3, alpha=ht * a53).add_(k4, alpha=ht * a54)
        k5, q5 = rhs(s + c5 * ht, z5)
        z6 = add(z, k, alpha=ht * a61)
        z6.add_(k2, alpha=ht * a62).add_(k3, alpha=ht * a63).add_(k4, alpha=ht * a64).add_(k5, alpha=ht * a65)
        k6, q6 = rhs(s + c6 * ht, z6)
        z7 = add(z, k, alpha=ht * b1)
        z7.add_(k3, alpha=ht * b3).add_(k4, alpha=ht * b4).add_(k5, alpha=ht * b5).add_(k6, alpha=ht * b6)
        s_new = s_end if last else s + ht
        k7, q7 = rhs(s_new, z7)
        tally.nfe += 6

        Q1 = None
        if adaptive:
            with torch.no_grad():
                err = torch.mul(k, ht * e1)
                err.add_(k3, alpha=ht * e3).add_(k4, alpha=ht * e4).add_(k5, alpha=ht * e5)
                err.add_(k6, alpha=ht * e6).add_(k7, alpha=ht * e7)
                if abs_z is None:
                    abs_z = z.abs()
                abs_z7 = z7.abs()
                err.div_(torch.maximum(abs_z, abs_z7).mul_(rtol).add_(atol))
                if groups == 1:
                    r = torch.linalg.vector_norm(err).item() * inv_sqrt
                else:
                    r = torch.linalg.vector_norm(err.view(groups, n_group), dim=1).max().item() * inv_sqrt
                if inv_sqrt_q and q is not None:
                    Q1 = add(Q, q, alpha=ht * b1)
                    Q1.add_(q3, alpha=ht * b3).add_(q4, alpha=ht * b4).add_(q5, alpha=ht * b5).add_(q6, alpha=ht * b6)
                    qerr = torch.mul(q, ht * e1)
                    qerr.add_(q3, alpha=ht * e3).add_(q4, alpha=ht * e4).add_(q5, alpha=ht * e5)
                    qerr.add_(q6, alpha=ht * e6).add_(q7, alpha=ht * e7)
                    qerr.div_(torch.maximum(Q.abs(), Q1.abs()).mul_(rtol).add_(atol))
                    r = max(r, torch.linalg.vector_norm(qerr).item() * inv_sqrt_q)
            accepted = r <= 1.0
        else:
            r = 0.0
            accepted = True

        if accepted:
            h_next = next_step(ht, r, True)
            if last and h_next < h:
                h_next = h  # a step clipped to land on s_end says little about the next one
            if Q is not None and q is not None:
                if Q1 is not None:
                    Q.copy_(Q1)
                else:
                    Q.add_(q, alpha=ht * b1).add_(q3, alpha=ht * b3).add_(q4, alpha=ht * b4)
                    Q.add_(q5, alpha=ht * b5).add_(q6, alpha=ht * b6)
            if on_accept is not None:
                on_accept(s, ht, z, z7, (k, k2, k3, k4, k5, k6, k7))
            tally.accepted += 1
            s, z, k, q = s_new, z7, k7, q7
            if adaptive:
                abs_z = abs_z7
            nonfinite = False
        else:
            tally.rejected += 1
            if not math.isfinite(r):
                if not bool(torch.isfinite(z).all()):
                    fail(NonFiniteState, "non-finite values in the state", s, ht)
                nonfinite = True
            h_next = next_step(ht, r, False)
        h = h_next
    return z, k, q, h


def solve_forward(
    rhs: RHS,
    y0: torch.Tensor,
    times: list[float],
    *,
    ctrl: Controller,
    rtol: float,
    atol: float,
    max_steps: int,
    tally: Tally,
    fail: Callable,
    record: bool = False,
    tableau: Tableau = DOPRI5,
):
    """Solve ``dy/dt = rhs(t, y)[0]`` from ``y0`` at ``times[0]`` and return the states at ``times``.

    Steps are not forced onto interior output times: those are read off the dense output
    (like torchdiffeq); the last step is clipped to land on ``times[-1]``.

    Returns:
        ``(ys, h_next, dense, last_k_used)``: the list of states at ``times``, the step the
        controller proposes after the last one, the dense-output record
        ``(starts, steps, states, derivatives, r5s)`` when ``record`` (``states`` and
        ``derivatives`` have one more entry: the end point), and whether the final FSAL
        derivative feeds an output (only when an interior output lies in the last step).
    """
    t0, t_end = times[0], times[-1]
    k0, _ = rhs(t0, y0)
    tally.nfe += 1
    if not isinstance(k0, torch.Tensor) or k0.shape != y0.shape:
        got = tuple(k0.shape) if isinstance(k0, torch.Tensor) else type(k0).__name__
        raise ValueError(
            f"the vector field returned {got} for a state of shape {tuple(y0.shape)}; "
            "forward(t, y) must return dy/dt with the shape of y"
        )
    if not bool(torch.isfinite(k0).all()):
        fail(NonFiniteState, "non-finite values in the vector field at the initial state", t0, None)
    if ctrl.initial is not None:
        h = ctrl.initial
    else:
        h = initial_step(rhs, t0, y0, k0, order=5, rtol=rtol, atol=atol)
        tally.nfe += 1
    ctrl.reset()

    n_out = len(times)
    ys: list = [None] * n_out
    ys[0] = y0
    dense = ([], [], [], [], []) if record else None
    state = {"j": 1, "used_in": -1}

    on_accept = None
    if n_out > 2 or record:
        def on_accept(s, ht, z0, z1, ks):
            j = state["j"]
            s1 = s + ht
            r5 = None
            if record:
                r5 = dense_r5(ht, ks)
                starts, steps, zs, fs, r5s = dense
                starts.append(s)
                steps.append(ht)
                zs.append(z0)
                fs.append(ks[0])
                r5s.append(r5)
            while j < n_out - 1 and times[j] <= s1:
                if times[j] == s1:
                    ys[j] = z1
                else:
                    if r5 is None:
                        r5 = dense_r5(ht, ks)
                    ys[j] = dense_eval((times[j] - s) / ht, ht, z0, z1, ks[0], ks[6], r5)
                    state["used_in"] = tally.accepted
                j += 1
            state["j"] = j

    z, k, _, h = march(
        rhs, t0, t_end, y0, k0, None, None, h, ctrl=ctrl, rtol=rtol, atol=atol, groups=1,
        quad_norm=False, max_steps=max_steps, tally=tally, fail=fail, on_accept=on_accept,
        tableau=tableau,
    )
    ys[-1] = z
    if record:
        dense[2].append(z)
        dense[3].append(k)
    return ys, h, dense, state["used_in"] == tally.accepted - 1
