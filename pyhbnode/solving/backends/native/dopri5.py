"""The Dormand–Prince 5(4) stepper: FSAL, adaptive steps, 4th-order dense output.

Written for speed on small states, where a solver's cost is the number of tensor
operations it dispatches (about 1–2 µs each on a CPU core) rather than their arithmetic:

* inside the loop a state is one row ``(1, N)``; the field sees it viewed to its shape;
* a stage input ``z + h Σ a_ij k_j`` is one ``torch.addmm`` of the coefficient row with the
  concatenated earlier stages (two plain ``add``s for the first stages); the new state and
  the error estimate share one concatenation, so a step costs ~13 operations of solver
  arithmetic instead of ~30 for one ``add`` per coefficient;
* times and step sizes are Python floats; the only host sync is one ``.item()`` per step
  attempt (the error ratio), none with a fixed step;
* the loop integrates in a variable ``s`` with positive steps; a backward (adjoint) solve
  uses ``s = -t``, so one loop serves both directions.

The same loop runs with autograd recording (``adjoint="direct"``: all operations are
out-of-place or in place on fresh tensors) or without it (the adjoint modes).  Statistics
and failures go through :class:`Tally` and a ``fail`` callback, so this module knows
nothing of phases or ``SolverStats``.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch

from ...errors import MaxStepsExceeded, NonFiniteState, StepSizeUnderflow
from .controller import Controller, initial_step
from .tableau import DOPRI5, Tableau

__all__ = ["Tally", "march", "solve_forward", "step_again", "dense_weights", "dense_eval", "coefficients"]

# rhs(s, z) -> (k, q): the derivative dz/ds as a row (1, N) and an optional quadrature
# integrand q (a tuple of tensors integrated alongside, never fed back into the stages;
# ``None`` when absent).
RHS = Callable[[float, torch.Tensor], "tuple[torch.Tensor, tuple | None]"]

_C = DOPRI5.c
_A = DOPRI5.a
_B = DOPRI5.b
_D = DOPRI5.d


class Tally:
    """Counters of one solve: step attempts, accepted, rejected, field evaluations."""

    __slots__ = ("attempts", "accepted", "rejected", "nfe")

    def __init__(self) -> None:
        self.attempts = self.accepted = self.rejected = self.nfe = 0


_COEFF_CACHE: dict = {}
_SMALL = 8192  # states up to this many elements combine stages with addmm (see march)


def coefficients(tableau: Tableau, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Coefficient rows as tensors: ``A4 (1,3), A5 (1,4), A6 (1,5), B6 (1,6), E6 (1,6), D6 (1,6)``."""
    key = (tableau.e, dtype, device)
    got = _COEFF_CACHE.get(key)
    if got is None:
        a = tableau.a
        rows = (a[3], a[4], a[5], tableau.b[:6], tableau.e[:6], tableau.d[:6])
        got = tuple(torch.tensor([list(r)], dtype=dtype, device=device) for r in rows)
        _COEFF_CACHE[key] = got
    return got


def dense_weights(theta: float) -> tuple[float, float, float, float, float]:
    """Weights ``(w_y0, w_y1, w_hf0, w_hf1, w_r5)`` of the interpolant at ``theta in [0, 1]``.

    Hairer's DOPRI5 dense output ``y0 + θ r2 + θ(1-θ) r3 + θ²(1-θ) r4 + θ²(1-θ)² r5`` with
    ``r2 = y1 - y0``, ``r3 = h f0 - r2``, ``r4 = r2 - h f1 - r3`` and
    ``r5 = h Σ d_i k_i``, rewritten in the five vectors ``y0, y1, h f0, h f1, r5``;
    4th-order accurate and matching ``y0, y1, f0, f1`` at the ends.
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


def _foreach_combo(Q: list, qs, coeffs, h: float) -> None:
    """``Q += h Σ c_i q_i`` for lists of tensors (one fused call per stage)."""
    for c, q in zip(coeffs, qs):
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


def march(
    rhs: RHS,
    s: float,
    s_end: float,
    z: torch.Tensor,
    k: torch.Tensor,
    q,
    Q,
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
    prepare: Callable | None = None,
    tableau: Tableau = DOPRI5,
    compiled: Callable | None = None,
):
    """Integrate ``dz/ds = rhs(s, z)`` from ``s`` to ``s_end`` (``s_end > s``) with DP5.

    Args:
        z, k: the state and its derivative at ``s`` as rows ``(1, N)`` (FSAL: ``k`` is
            reused, not recomputed).
        q, Q: the quadrature integrand at ``s`` and the accumulated quadrature ``∫ q ds``
            (tuple / list of tensors, updated in place; ``None`` when there is none).
        h: the first step to try (the last step is clipped to land on ``s_end``).
        groups: the error norm is the largest RMS over ``groups`` equal slices of ``z``
            (torchdiffeq's mixed norm over the parts of an augmented state).
        quad_norm: include the quadrature's error in the norm (``False`` = seminorm).
        max_steps: the most step attempts ``tally`` may reach (counted over a whole solve).
        fail: ``fail(error_class, what, s, h)`` raises the typed error.
        on_accept: ``on_accept(s, h, z0, z1, ks, K6)`` after each accepted step (``ks``
            the seven stages, ``K6`` the first six concatenated or ``None``).
        prepare: ``prepare(s, h, s_new)`` before each attempt (e.g. to precompute what the
            stages at ``s + c_i h`` will need).
        tableau: the DP5 pair's error weights (:data:`DOPRI5` or :data:`DOPRI5_SHAMPINE`);
            the propagated solution is the same.
        compiled: ``compiled(s, h, z, k) -> (z1, k7, r, K6) or None``, a compiled attempt
            (:mod:`.compiled`) used instead of the eager one when there is no quadrature;
            ``None`` from it means it failed, and the loop goes on eagerly.

    Returns:
        ``(z, k, q, h_next)`` at ``s_end``.
    """
    b = tableau.b
    e = tableau.e
    e7 = e[6]
    A4, A5, A6, B6, E6, _ = coefficients(tableau, z.dtype, z.device)
    rows = (A4, A5, A6, B6)
    addmm, maximum, vnorm = torch.addmm, torch.maximum, torch.linalg.vector_norm
    adaptive = ctrl.adaptive
    next_step = ctrl.next_step
    accepts = ctrl.accepts
    eps = 4.0 * torch.finfo(z.dtype).eps
    n_group = z.numel() // groups
    inv_sqrt = 1.0 / math.sqrt(n_group)
    inv_rtol = 1.0 / rtol
    atol_r = atol / rtol
    # Small states: dispatch-bound, so combine stages with one addmm over concatenated
    # stages.  Large states: bandwidth-bound, and concatenating would copy (and page in)
    # i*N floats per stage, so use one in-place add per coefficient.
    small = z.numel() <= _SMALL
    has_q = Q is not None and q is not None
    check_q = quad_norm and has_q
    abs_z = None
    nonfinite = False
    # the error estimate must not be recorded; skip the context manager where nothing is
    no_grad_if_needed = torch.no_grad if torch.is_grad_enabled() else contextlib.nullcontext
    while s < s_end:
        remaining = s_end - s
        # Land on s_end: a step within 1 % of the rest is stretched to it (no sliver
        # steps, and rounding in s never leaves a remainder of a few ulps).
        last = h * 1.01 >= remaining
        ht = remaining if last else h
        if tally.attempts >= max_steps:
            fail(MaxStepsExceeded, f"more than {max_steps} step attempts (max_steps)", s, ht)
        if not ht > eps * max(abs(s), abs(s_end)):
            if nonfinite or ht != ht:
                fail(NonFiniteState, "non-finite values in the vector field or the state "
                     "(the step size shrank to nothing trying to avoid them)", s, ht)
            fail(StepSizeUnderflow, "step size underflow", s, ht)
        tally.attempts += 1
        s_new = s_end if last else s + ht
        if prepare is not None:
            prepare(s, ht, s_new)

        tally.nfe += 6
        Q1 = None
        got = compiled(s, ht, z, k) if (compiled is not None and adaptive and not has_q) else None
        if got is not None:
            z7, k7, r_t, K6 = got
            k2, k3, k4, k5, k6 = K6[1:2], K6[2:3], K6[3:4], K6[4:5], K6[5:6]
            q7 = abs_z7 = None
            r = r_t.item()
            accepted = accepts(r)
        else:
            compiled = None  # failed: eager from here on
            (k2, k3, k4, k5, k6), (q2, q3, q4, q5, q6), K6, z7 = _stages(rhs, s, ht, z, k, rows, small)
            k7, q7 = rhs(s_new, z7)
        if got is not None:
            pass
        elif adaptive:
            with no_grad_if_needed():
                # the error estimate, pre-divided by rtol: (h Σ e_i k_i) / rtol
                if small:
                    err = addmm(k7, E6, K6, beta=ht * e7 * inv_rtol, alpha=ht * inv_rtol)
                else:
                    err = torch.mul(k7, ht * e7 * inv_rtol)
                    for c, kk in zip(e, (k, k2, k3, k4, k5, k6)):
                        if c != 0.0:
                            err.add_(kk, alpha=ht * c * inv_rtol)
                if abs_z is None:
                    abs_z = z.abs()
                abs_z7 = z7.abs()
                err.div_(maximum(abs_z, abs_z7).add_(atol_r))
                if groups == 1:
                    r = vnorm(err).item() * inv_sqrt
                else:
                    r = vnorm(err.view(groups, n_group), dim=1).max().item() * inv_sqrt
                if check_q:
                    rq, Q1 = _quad_error(Q, (q, q2, q3, q4, q5, q6, q7), b, e, ht, rtol, atol)
                    r = max(r, rq)
            accepted = accepts(r)
        else:
            r = 0.0
            accepted = True

        if accepted:
            h_next = next_step(ht, r, True)
            if last and h_next < h:
                h_next = h  # a step clipped to land on s_end says little about the next one
            if has_q:
                if Q1 is not None:
                    torch._foreach_copy_(Q, Q1)
                else:
                    _foreach_combo(Q, (q, q2, q3, q4, q5, q6), b, ht)
            if on_accept is not None:
                on_accept(s, ht, z, z7, (k, k2, k3, k4, k5, k6, k7), K6)
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


def _stages(rhs, s: float, h: float, z: torch.Tensor, k: torch.Tensor, rows, small: bool):
    """Stages 2–6 of a DP5 step of size ``h`` from ``z`` (first stage ``k``) and the
    propagated solution: the one place the stepping and the checkpointed replay compute a
    step, so that the replay differentiates exactly the operations of the forward solve.

    ``rows`` are :func:`coefficients`' ``(A4, A5, A6, B6)``; ``small`` picks one ``addmm``
    over concatenated stages instead of in-place adds (see :func:`march`).

    Returns:
        ``((k2, ..., k6), (q2, ..., q6), K6, z7)``: the stages, the extra outputs ``rhs``
        returned with them, the six stages concatenated (``None`` unless ``small``), and
        ``z + h Σ b_i k_i``.
    """
    c2, c3, c4, c5, c6 = _C[1:6]
    a21, = _A[1]
    a31, a32 = _A[2]
    A4, A5, A6, B6 = rows
    add, cat, addmm = torch.add, torch.cat, torch.addmm
    k2, q2 = rhs(s + c2 * h, add(z, k, alpha=h * a21))
    z3 = add(z, k, alpha=h * a31)
    z3.add_(k2, alpha=h * a32)
    k3, q3 = rhs(s + c3 * h, z3)
    if small:
        k4, q4 = rhs(s + c4 * h, addmm(z, A4, cat((k, k2, k3)), alpha=h))
        k5, q5 = rhs(s + c5 * h, addmm(z, A5, cat((k, k2, k3, k4)), alpha=h))
        k6, q6 = rhs(s + c6 * h, addmm(z, A6, cat((k, k2, k3, k4, k5)), alpha=h))
        K6 = cat((k, k2, k3, k4, k5, k6))
        z7 = addmm(z, B6, K6, alpha=h)
    else:
        K6 = None
        k4, q4 = rhs(s + c4 * h, _combo(z, (k, k2, k3), _A[3], h))
        k5, q5 = rhs(s + c5 * h, _combo(z, (k, k2, k3, k4), _A[4], h))
        k6, q6 = rhs(s + c6 * h, _combo(z, (k, k2, k3, k4, k5), _A[5], h))
        z7 = _combo(z, (k, k2, k3, k4, k5, k6), _B, h)
    return (k2, k3, k4, k5, k6), (q2, q3, q4, q5, q6), K6, z7


def _combo(z: torch.Tensor, ks, coeffs, h: float) -> torch.Tensor:
    """``z + h Σ c_i k_i`` with one in-place add per nonzero coefficient (a fresh tensor)."""
    out = None
    for c, k in zip(coeffs, ks):
        if c != 0.0:
            out = torch.add(z, k, alpha=h * c) if out is None else out.add_(k, alpha=h * c)
    return out


def dense_r5(h: float, ks, K6: torch.Tensor | None) -> torch.Tensor:
    """Hairer's dense-output correction ``r5 = h Σ d_i k_i`` of one step, as a row."""
    k7 = ks[6]
    if K6 is not None:
        D6 = coefficients(DOPRI5, K6.dtype, K6.device)[5]
        return torch.addmm(k7, D6, K6, beta=h * _D[6], alpha=h)
    out = torch.mul(k7, h * _D[6])
    for c, k in zip(_D[:6], ks[:6]):
        if c != 0.0:
            out.add_(k, alpha=h * c)
    return out


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
    record: str | None = None,
    tableau: Tableau = DOPRI5,
    first: RHS | None = None,
    max_states: int | None = None,
    compiled: Callable | None = None,
):
    """Solve ``dy/dt = f(t, y)`` from ``y0`` at ``times[0]``; return the states at ``times``.

    ``rhs(t, z_row) -> (f_row, None)`` evaluates the field on a row ``(1, N)`` view of
    the state.  Steps are not forced onto interior output times: those are read off the
    dense output (like torchdiffeq); the last step is clipped to land on ``times[-1]``.

    Returns:
        ``(ys, h_next, dense)``: the list of states at ``times`` (rows ``(1, N)``, except
        ``ys[0]``, which is ``y0`` itself), the step the controller proposes after the last
        one, and the record of the accepted steps ``(starts, steps, states, derivatives,
        r5s)``: with ``record="dense"`` all five (``states`` and ``derivatives`` hold one more
        entry: the end point), with ``record="states"`` the first three; then with
        ``max_states`` the states are a dict ``{step index: state}`` of at most that many
        entries, every ``stride``-th step (the stride doubles when the dict is full).
    """
    t0, t_end = times[0], times[-1]
    z0 = y0.reshape(1, -1)
    k0, _ = (first or rhs)(t0, z0)  # ``first`` may check what the field returns, once
    tally.nfe += 1
    if not bool(torch.isfinite(k0).all()):
        fail(NonFiniteState, "non-finite values in the vector field at the initial state", t0, None)
    if ctrl.initial is not None:
        h = ctrl.initial
    else:
        h = initial_step(rhs, t0, z0, k0, order=5, rtol=rtol, atol=atol)
        tally.nfe += 1
    ctrl.reset()

    n_out = len(times)
    ys: list = [None] * n_out
    ys[0] = y0
    dense = ([], [], [], [], []) if record else None
    dense_out = record == "dense"
    thin = [1] if (record == "states" and max_states) else None
    kept: dict = {}
    state = [1]  # next interior output

    def on_accept(s, ht, za, zb, ks, K6):
        ka, kb = ks[0], ks[6]
        j = state[0]
        s1 = s + ht
        r5 = None
        if record:
            starts, steps, zs, fs, r5s = dense
            starts.append(s)
            steps.append(ht)
            zs.append(za)
            if dense_out:
                r5 = dense_r5(ht, ks, K6)
                fs.append(ka)
                r5s.append(r5)
            elif thin:
                zs.pop()
                i = len(starts) - 1
                if i % thin[0] == 0:
                    if len(kept) >= max_states:
                        thin[0] *= 2
                        for key in [key for key in kept if key % thin[0]]:
                            del kept[key]
                    if i % thin[0] == 0:
                        kept[i] = za
        while j < n_out - 1 and times[j] <= s1:
            if times[j] == s1:
                ys[j] = zb
            else:
                if r5 is None:
                    r5 = dense_r5(ht, ks, K6)
                ys[j] = dense_eval((times[j] - s) / ht, ht, za, zb, ka, kb, r5)
            j += 1
        state[0] = j

    z, k, _, h = march(
        rhs, t0, t_end, z0, k0, None, None, h, ctrl=ctrl, rtol=rtol, atol=atol, groups=1,
        quad_norm=False, max_steps=max_steps, tally=tally, fail=fail,
        on_accept=on_accept if (n_out > 2 or record) else None, tableau=tableau, compiled=compiled,
    )
    ys[-1] = z
    if record:
        dense[2].append(z)
        if dense_out:
            dense[3].append(k)
        if thin:
            dense = (dense[0], dense[1], kept, dense[3], dense[4])
    return ys, h, dense


def step_again(rhs, s: float, h: float, s_new: float, z: torch.Tensor, *, with_last: bool = False):
    """Recompute one accepted DP5 step from its start ``z`` (the checkpointed adjoint).

    The same operations as :func:`march` (both go through :func:`_stages`; so, under
    autograd, the step's exact Jacobian):
    ``k1 = rhs(s, z)`` and the five further stages, then ``z1``; with ``with_last`` also the
    FSAL stage ``k7 = rhs(s_new, z1)`` and Hairer's ``r5`` for the dense output.

    Returns:
        ``(z1, ks, K6, r5)``; ``ks`` the seven (or six) stages, ``K6``/``r5`` or ``None``.
    """
    rows = coefficients(DOPRI5, z.dtype, z.device)[:4]
    k, _ = rhs(s, z)
    (k2, k3, k4, k5, k6), _, K6, z7 = _stages(rhs, s, h, z, k, rows, z.numel() <= _SMALL)
    if not with_last:
        return z7, (k, k2, k3, k4, k5, k6), K6, None
    k7, _ = rhs(s_new, z7)
    ks = (k, k2, k3, k4, k5, k6, k7)
    return z7, ks, K6, dense_r5(h, ks, K6)
