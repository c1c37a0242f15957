"""Gradient strategies of the native backend, as one ``torch.autograd.Function`` family.

A solve with gradients runs the forward pass without recording (:class:`AdjointSolve`'s
``forward``) and computes ``dL/dy0`` and ``dL/dθ`` in ``backward`` by solving the adjoint
equations (spec §2) backward in time:

    da/dt = -a ∂f/∂y,    dL/dθ = ∫ a ∂f/∂θ dt,    a(T) = dL/dy(T),

with ``a`` jumping by ``dL/dy(t_i)`` at every output time.  One backward evaluation is one
field evaluation plus one vector–Jacobian product ``a ∂f/∂(y, θ)`` (``torch.autograd.grad``).
The strategies differ in where ``y(t)`` comes from:

* ``backsolve`` — re-integrates the state backward together with the adjoint (the
  augmented system of torchdiffeq's ``odeint_adjoint``), restarting ``y`` from the forward
  solution at each output time.  Memory: O(1) in the number of steps.  For a damped field
  (HBNODE/GHBNODE) the state equation run backward is anti-damped and the recovered
  ``y(t)`` drifts from the forward one, so the gradient carries that error.
* ``interpolating`` — keeps the forward dense output (three state-sized tensors per
  accepted step) and reads ``y(t)`` off the interpolant; only ``(a, ∫ a ∂f/∂θ)`` is
  integrated backward.  No backward re-integration of the state, so nothing drifts, and
  the backward step control sees the adjoint only.  Memory: O(steps × state).

Integration runs in ``s = -t`` so that the backward solve uses the same forward-stepping
loop (:func:`~.dopri5.march`).  The parameters' adjoint is a quadrature (it never feeds
back into the stages); with ``seminorm=True`` it is left out of the step-size control.
"""
from __future__ import annotations

import bisect
from typing import Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ...errors import NonFiniteState
from ...solution import SolverStats
from .controller import Controller, initial_step
from .dopri5 import Tally, dense_eval, march, solve_forward
from .tableau import DOPRI5, Tableau

__all__ = ["AdjointSolve", "Problem", "STRATEGIES"]

STRATEGIES = ("backsolve", "interpolating")


class Problem:
    """One solve: the field, its trainable parameters, the grid and the options.

    Built by the backend per ``odeint`` call and carried through ``AdjointSolve``.
    """

    __slots__ = (
        "field", "params", "times", "rtol", "atol", "max_steps", "seminorm", "strategy",
        "stats", "ctrl", "bctrl", "h_last", "dense", "dtype", "device", "tableau",
    )

    def __init__(self, field: nn.Module, params: Sequence[torch.Tensor], times: list[float], *,
                 rtol: float, atol: float, max_steps: int, seminorm: bool, strategy: str,
                 stats: SolverStats, ctrl: Controller, bctrl: Controller, dtype, device,
                 tableau: Tableau = DOPRI5) -> None:
        self.field, self.params, self.times = field, tuple(params), times
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps
        self.seminorm, self.strategy, self.stats = seminorm, strategy, stats
        self.ctrl, self.bctrl = ctrl, bctrl
        self.dtype, self.device = dtype, device
        self.tableau = tableau
        self.h_last = None
        self.dense = None

    # -- failures -------------------------------------------------------------------------
    def fail_forward(self, cls, what, s, h):
        stats = self.stats
        stats.status = cls.status
        raise cls(what, phase="forward", t=s, dt=h, nfe_forward=stats.nfe_forward,
                  nfe_backward=stats.nfe_backward)

    def fail_backward(self, cls, what, s, h, tally: Tally | None = None):
        stats = self.stats
        extra = tally.nfe if tally is not None else 0
        raise cls(what, phase="backward", t=-s, dt=h, nfe_forward=stats.nfe_forward,
                  nfe_backward=stats.nfe_backward + extra)

    # -- the field ------------------------------------------------------------------------
    def forward_rhs(self):
        field, dtype, device = self.field, self.dtype, self.device
        scalar = torch.scalar_tensor

        def rhs(s: float, y: torch.Tensor):
            return field(scalar(s, dtype=dtype, device=device), y), None

        return rhs

    def vjp(self):
        """``vjp(t, y, a) -> (f, a ∂f/∂y, flat a ∂f/∂θ or None)``; ``y`` a fresh leaf."""
        field, params, dtype, device = self.field, self.params, self.dtype, self.device
        scalar = torch.scalar_tensor
        grad = torch.autograd.grad
        inputs_n = 1 + len(params)
        cat = torch.cat

        def vjp(t: float, y: torch.Tensor, a: torch.Tensor):
            y.requires_grad_(True)
            f = field(scalar(t, dtype=dtype, device=device), y)
            if not f.requires_grad:  # f depends on neither y nor θ
                zq = cat([p.new_zeros(p.numel()) for p in params]) if params else None
                return f, torch.zeros_like(y), zq
            gs = grad(f, (y, *params), a, allow_unused=True)
            vy = gs[0] if gs[0] is not None else torch.zeros_like(y)
            if inputs_n == 1:
                return f, vy, None
            vq = cat([g.reshape(-1) if g is not None else p.new_zeros(p.numel()) for g, p in zip(gs[1:], params)])
            return f, vy, vq

        return vjp

    # -- forward --------------------------------------------------------------------------
    def solve(self, y0: torch.Tensor, record: bool) -> list[torch.Tensor]:
        tally = Tally()
        try:
            ys, h, dense, used = solve_forward(
                self.forward_rhs(), y0, self.times, ctrl=self.ctrl, rtol=self.rtol, atol=self.atol,
                max_steps=self.max_steps, tally=tally, fail=self._fail_forward_tally(tally), record=record,
                tableau=self.tableau,
            )
        finally:
            self._store_forward(tally)
        self.h_last = h
        self.dense = dense
        return ys, tally, used

    def _fail_forward_tally(self, tally: Tally):
        def fail(cls, what, s, h):
            self._store_forward(tally)
            self.fail_forward(cls, what, s, h)
        return fail

    def _store_forward(self, tally: Tally) -> None:
        stats = self.stats
        stats.nfe_forward = tally.nfe
        stats.steps, stats.accepted, stats.rejected = tally.attempts, tally.accepted, tally.rejected

    # -- backward -------------------------------------------------------------------------
    def backward(self, ys: torch.Tensor, g: torch.Tensor):
        tally = Tally()
        try:
            with torch.enable_grad():
                if self.strategy == "backsolve":
                    return self._backsolve(ys, g, tally)
                return self._interpolating(g, tally)
        finally:
            stats = self.stats
            stats.nfe_backward += tally.nfe
            stats.steps_backward = (stats.steps_backward or 0) + tally.attempts

    def _check_start(self, k, s, tally):
        if not bool(torch.isfinite(k).all()):
            self.fail_backward(NonFiniteState, "non-finite values in the adjoint's derivative at the "
                               "final time", s, None, tally)

    def _first_step(self, rhs, s0, z0, k0, groups, tally):
        h = initial_step(rhs, s0, z0, k0, order=5, rtol=self.rtol, atol=self.atol, groups=groups)
        tally.nfe += 1
        return h

    def _march_kwargs(self, groups, tally):
        def fail(cls, what, s, h):
            self.fail_backward(cls, what, s, h, tally)
        return dict(ctrl=self.bctrl, rtol=self.rtol, atol=self.atol, groups=groups,
                    quad_norm=not self.seminorm, max_steps=self.max_steps, tally=tally, fail=fail,
                    tableau=self.tableau)

    def _params_grads(self, Q):
        if Q is None:
            return ()
        out, i = [], 0
        for p in self.params:
            n = p.numel()
            out.append(Q[i:i + n].view_as(p))
            i += n
        return tuple(out)

    def _backsolve(self, ys: torch.Tensor, g: torch.Tensor, tally: Tally):
        vjp = self.vjp()
        times = self.times
        shape = ys.shape[1:]
        n = ys[0].numel()
        cat = torch.cat

        def rhs(s: float, z: torch.Tensor):
            y = z[:n].view(shape).detach()
            f, vy, vq = vjp(-s, y, z[n:].view(shape))
            dz = cat([f.detach().reshape(-1), vy.reshape(-1)])
            dz[:n].neg_()
            return dz, vq

        z = cat([ys[-1].reshape(-1), g[-1].reshape(-1)])
        s = -times[-1]
        k, q = rhs(s, z)
        tally.nfe += 1
        self._check_start(k, s, tally)
        Q = torch.zeros_like(q) if q is not None else None
        ctrl = self.bctrl
        ctrl.reset()
        h = self._first_step(rhs, s, z, k, 2, tally)
        kw = self._march_kwargs(2, tally)
        for j in range(len(times) - 2, -1, -1):
            z, k, q, h = march(rhs, s, -times[j], z, k, q, Q, h, **kw)
            s = -times[j]
            if j > 0:  # restart y from the forward solution, add the output's gradient
                a = z[n:].add(g[j].reshape(-1))
                z = cat([ys[j].reshape(-1), a])
                k, q = rhs(s, z)
                tally.nfe += 1
        gy0 = z[n:].add(g[0].reshape(-1)).view(shape)
        return gy0, self._params_grads(Q)

    def _interpolating(self, g: torch.Tensor, tally: Tally):
        vjp = self.vjp()
        times = self.times
        starts, steps, zs, fs, r5s = self.dense
        n_steps = len(starts)
        last = n_steps - 1
        right = bisect.bisect_right

        def y_at(t: float) -> torch.Tensor:
            i = right(starts, t) - 1
            if i < 0:
                i = 0
            elif i > last:
                i = last
            h = steps[i]
            theta = (t - starts[i]) / h
            if theta >= 1.0:
                return zs[i + 1].detach()
            if theta <= 0.0:
                return zs[i].detach()
            return dense_eval(theta, h, zs[i], zs[i + 1], fs[i], fs[i + 1], r5s[i])

        def rhs(s: float, a: torch.Tensor):
            t = -s
            _, vy, vq = vjp(t, y_at(t), a)
            return vy, vq

        a = g[-1]
        s = -times[-1]
        k, q = rhs(s, a)
        tally.nfe += 1
        self._check_start(k, s, tally)
        Q = torch.zeros_like(q) if q is not None else None
        ctrl = self.bctrl
        ctrl.reset()
        h = self._first_step(rhs, s, a, k, 1, tally)
        kw = self._march_kwargs(1, tally)
        for j in range(len(times) - 2, -1, -1):
            a, k, q, h = march(rhs, s, -times[j], a, k, q, Q, h, **kw)
            s = -times[j]
            if j > 0 and bool(g[j].any()):
                a = a + g[j]
                k, q = rhs(s, a)
                tally.nfe += 1
        return a + g[0], self._params_grads(Q)


class AdjointSolve(torch.autograd.Function):
    """``AdjointSolve.apply(problem, y0, *params) -> ys`` of shape ``(T, *y0.shape)``.

    The forward pass solves without recording; ``backward`` runs ``problem.strategy``.
    Errors of the backward solve are :class:`~pyhbnode.solving.errors.SolverError`
    subclasses with ``phase="backward"`` and reach the caller of ``loss.backward()``.
    """

    @staticmethod
    def forward(ctx, problem: Problem, y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        ys, _, _ = problem.solve(y0.detach(), record=problem.strategy == "interpolating")
        out = torch.stack(ys)
        ctx.problem = problem
        if problem.strategy == "backsolve":
            ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        problem: Problem = ctx.problem
        ys = ctx.saved_tensors[0] if problem.strategy == "backsolve" else None
        gy0, gparams = problem.backward(ys, g)
        if not gparams:
            gparams = (None,) * len(problem.params)
        return (None, gy0, *gparams)
