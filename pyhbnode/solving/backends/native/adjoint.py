"""Gradient strategies of the native backend, as one ``torch.autograd.Function`` family.

A solve with gradients runs the forward pass without recording (:class:`AdjointSolve`'s
``forward``) and computes ``dL/dy0`` and ``dL/dθ`` in ``backward``.  Three strategies:

* ``backsolve`` — the continuous adjoint (spec §2) ``da/dt = -a ∂f/∂y``,
  ``dL/dθ = ∫ a ∂f/∂θ dt``, solved backward together with the state (the augmented system
  of torchdiffeq's ``odeint_adjoint``), ``y`` restarted from the forward solution and ``a``
  jumping by ``dL/dy(t_i)`` at every output time.  Memory O(1) in the number of steps.  For
  a damped field (HBNODE/GHBNODE) the state equation run backward is anti-damped and the
  recovered ``y(t)`` drifts from the forward one; the gradient carries that error.
* ``interpolating`` — the same adjoint equations, with ``y(t)`` read off the forward dense
  output (three state-sized tensors per accepted step) instead of re-integrated; only
  ``(a, ∫ a ∂f/∂θ)`` is integrated, and its steps end on the forward steps' boundaries
  (inside one forward step ``y(t)`` is a polynomial, so the error estimate sees a smooth
  integrand), starting from the forward's last step.
* ``checkpointed`` — the discrete adjoint: the forward keeps the state at the start of
  every accepted step; ``backward`` recomputes one step at a time under autograd and
  differentiates it with one ``autograd.grad`` call.  Exactly the gradient of the discrete
  solution (as ``adjoint="direct"``), 6 evaluations per accepted step, one state per step
  and one step's graph in memory, no backward step control.

One backward evaluation (``nfe_backward``) is one field evaluation plus one
vector–Jacobian product ``a ∂f/∂(y, θ)``.  The continuous adjoints integrate in ``s = -t``
so that the backward solve uses the forward-stepping loop (:func:`~.dopri5.march`); the
parameters' adjoint is a quadrature (it never feeds back into the stages) and with
``seminorm=True`` it is left out of the step-size control.
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
from .compiled import CompiledDopri5
from .dopri5 import Tally, dense_eval, dense_weights, march, solve_forward, step_again
from .tableau import DOPRI5, Tableau

__all__ = ["AdjointSolve", "Problem", "STRATEGIES"]

STRATEGIES = ("backsolve", "interpolating", "checkpointed")
_RECORD = {"backsolve": None, "interpolating": "dense", "checkpointed": "states"}


class Problem:
    """One solve: the field, its trainable parameters, the grid and the options.

    Built by the backend per ``odeint`` call and carried through ``AdjointSolve``.
    """

    __slots__ = (
        "field", "params", "times", "rtol", "atol", "max_steps", "seminorm", "strategy",
        "stats", "ctrl", "bctrl", "dense", "dtype", "device", "tableau", "align", "max_checkpoints",
        "compiled",
    )

    def __init__(self, field: nn.Module, params: Sequence[torch.Tensor], times: list[float], *,
                 rtol: float, atol: float, max_steps: int, seminorm: bool, strategy: str,
                 stats: SolverStats, ctrl: Controller, bctrl: Controller, dtype, device,
                 tableau: Tableau = DOPRI5, max_checkpoints: int | None = None,
                 compiled: CompiledDopri5 | None = None) -> None:
        self.field, self.params, self.times = field, tuple(params), times
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps
        self.seminorm, self.strategy, self.stats = seminorm, strategy, stats
        self.ctrl, self.bctrl = ctrl, bctrl
        self.dtype, self.device = dtype, device
        self.tableau = tableau
        self.align = True  # interpolating: backward steps end on forward step boundaries
        self.max_checkpoints = max_checkpoints  # checkpointed: None keeps every step's state
        self.dense = None
        self.compiled = compiled  # the compiled attempt and step VJP, or None: eager

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
    def forward_rhs(self, shape):
        """``rhs(t, z_row) -> (f_row, None)``: the field on a row ``(1, N)`` of the state."""
        field, dtype, device = self.field, self.dtype, self.device
        scalar = torch.scalar_tensor

        def rhs(s: float, z: torch.Tensor):
            return field(scalar(s, dtype=dtype, device=device), z.view(shape)).reshape(1, -1), None

        def first(s: float, z: torch.Tensor):
            f = field(scalar(s, dtype=dtype, device=device), z.view(shape))
            if not isinstance(f, torch.Tensor) or f.shape != shape:
                got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
                raise ValueError(
                    f"the vector field returned {got} for a state of shape {tuple(shape)}; "
                    "forward(t, y) must return dy/dt with the shape of y"
                )
            return f.reshape(1, -1), None

        return first, rhs

    def vjp(self):
        """``vjp(t, y, a) -> (f, a ∂f/∂y, (a ∂f/∂θ_i)_i or None)``; ``y`` becomes a leaf."""
        field, params, dtype, device = self.field, self.params, self.dtype, self.device
        scalar = torch.scalar_tensor
        grad = torch.autograd.grad
        inputs_n = 1 + len(params)

        def vjp(t: float, y: torch.Tensor, a: torch.Tensor):
            y.requires_grad_(True)
            f = field(scalar(t, dtype=dtype, device=device), y)
            if not f.requires_grad:  # f depends on neither y nor θ
                return f, torch.zeros_like(y), (tuple(torch.zeros_like(p) for p in params) or None)
            gs = grad(f, (y, *params), a, allow_unused=True)
            vy = gs[0] if gs[0] is not None else torch.zeros_like(y)
            if inputs_n == 1:
                return f, vy, None
            vq = gs[1:]
            if any(x is None for x in vq):
                vq = tuple(g if g is not None else torch.zeros_like(p) for g, p in zip(vq, params))
            return f, vy, vq

        return vjp

    # -- forward --------------------------------------------------------------------------
    def solve(self, y0: torch.Tensor, record: str | None):
        """Solve forward; returns ``(ys, tally)`` with ``ys`` a list of states shaped like ``y0``."""
        tally = Tally()
        shape = y0.shape
        C, field = self.compiled, self.field
        fast = None
        if C is not None and not torch.is_grad_enabled():
            def fast(s, h, z, k):
                return C.attempt(field, s, h, z, k)
        try:
            first, rhs = self.forward_rhs(shape)
            ys, _, dense = solve_forward(
                rhs, y0, self.times, ctrl=self.ctrl, rtol=self.rtol, atol=self.atol,
                max_steps=self.max_steps, tally=tally, fail=self._fail_forward_tally(tally), record=record,
                tableau=self.tableau, first=first, max_states=self.max_checkpoints, compiled=fast,
            )
        finally:
            self._store_forward(tally)
        self.dense = dense
        return [y.view(shape) for y in ys], tally

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
    def backward(self, ys: torch.Tensor | None, g: torch.Tensor):
        tally = Tally()
        try:
            with torch.enable_grad():
                if self.strategy == "backsolve":
                    return self._backsolve(ys, g, tally)
                if self.strategy == "checkpointed":
                    return self._checkpointed(g, tally)
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

    def _backsolve(self, ys: torch.Tensor, g: torch.Tensor, tally: Tally):
        vjp = self.vjp()
        times = self.times
        shape = ys.shape[1:]
        n = ys[0].numel()
        cat = torch.cat

        def rhs(s: float, z: torch.Tensor):
            y = z[:, :n].view(shape).detach()
            f, vy, vq = vjp(-s, y, z[:, n:].view(shape))
            dz = cat((f.detach().reshape(1, -1), vy.reshape(1, -1)), dim=1)
            dz[:, :n].neg_()
            return dz, vq

        z = cat((ys[-1].reshape(1, -1), g[-1].reshape(1, -1)), dim=1)
        s = -times[-1]
        k, q = rhs(s, z)
        tally.nfe += 1
        self._check_start(k, s, tally)
        Q = [torch.zeros_like(x) for x in q] if q is not None else None
        ctrl = self.bctrl
        ctrl.reset()
        h = self._first_step(rhs, s, z, k, 2, tally)
        kw = self._march_kwargs(2, tally)
        for j in range(len(times) - 2, -1, -1):
            z, k, q, h = march(rhs, s, -times[j], z, k, q, Q, h, **kw)
            s = -times[j]
            if j > 0:  # restart y from the forward solution, add the output's gradient
                a = z[:, n:].add(g[j].reshape(1, -1))
                z = cat((ys[j].reshape(1, -1), a), dim=1)
                k, q = rhs(s, z)
                tally.nfe += 1
        gy0 = z[:, n:].add(g[0].reshape(1, -1)).view(shape)
        return gy0, tuple(Q) if Q is not None else ()

    def _interpolating(self, g: torch.Tensor, tally: Tally):
        vjp = self.vjp()
        times = self.times
        starts, steps, zs, fs, r5s = self.dense
        shape = g.shape[1:]
        dtype, device = self.dtype, self.device
        last = len(starts) - 1
        right = bisect.bisect_right
        weights = dense_weights
        stacked: dict[int, torch.Tensor] = {}   # forward step -> (5, N) [y0, y1, f0, f1, r5]
        ready: dict[float, torch.Tensor] = {}   # stage time s -> y(-s), filled by prepare()

        def locate(t: float):
            i = right(starts, t) - 1
            i = 0 if i < 0 else (last if i > last else i)
            h = steps[i]
            theta = (t - starts[i]) / h
            w0, w1, w2, w3, w4 = weights(0.0 if theta < 0.0 else (1.0 if theta > 1.0 else theta))
            return i, [w0, w1, w2 * h, w3 * h, w4]

        def rows(i: int) -> torch.Tensor:
            R = stacked.get(i)
            if R is None:
                if len(stacked) > 4:  # the backward sweep never returns to later steps
                    for key in [key for key in stacked if key > i]:
                        del stacked[key]
                R = stacked[i] = torch.cat((zs[i], zs[i + 1], fs[i], fs[i + 1], r5s[i]))
            return R

        def y_at(t: float) -> torch.Tensor:
            i, w = locate(t)
            return torch.mm(torch.tensor([w], dtype=dtype, device=device), rows(i)).view(shape)

        def prepare(s: float, h: float, s_new: float) -> None:
            """y at the six new stage times of the attempt, grouped per forward step."""
            ready.clear()
            keys = [s + c * h for c in _STAGE_C] + [s_new]
            groups: dict[int, list] = {}
            for key in keys:
                if key in ready:
                    continue
                i, w = locate(-key)
                groups.setdefault(i, []).append((key, w))
                ready[key] = None
            for i, members in groups.items():
                Y = torch.mm(torch.tensor([w for _, w in members], dtype=dtype, device=device), rows(i))
                for r, (key, _) in enumerate(members):
                    ready[key] = Y[r].view(shape)

        def rhs(s: float, a: torch.Tensor):
            y = ready.get(s)
            y = y_at(-s) if y is None else y.detach()
            _, vy, vq = vjp(-s, y, a.view(shape))
            return vy.reshape(1, -1), vq

        a = g[-1].reshape(1, -1)
        s = -times[-1]
        k, q = rhs(s, a)
        tally.nfe += 1
        self._check_start(k, s, tally)
        Q = [torch.zeros_like(x) for x in q] if q is not None else None
        ctrl = self.bctrl
        ctrl.reset()
        # With aligned steps the forward's last step is the natural first try (and saves
        # the initial-step probe); the controller subdivides it if the adjoint needs it.
        h = steps[-1] if self.align else self._first_step(rhs, s, a, k, 1, tally)
        kw = self._march_kwargs(1, tally)
        # Backward steps end on the forward steps' boundaries: inside one forward step y(t)
        # is a polynomial, so the backward error estimate sees a smooth integrand (a step
        # across a boundary sees the interpolant's kink and is needlessly rejected).
        bounds = [-x for x in starts[1:]] if self.align else []
        for j in range(len(times) - 2, -1, -1):
            s_out = -times[j]
            while bounds and bounds[-1] <= s:
                bounds.pop()
            while bounds and bounds[-1] < s_out:
                stop = bounds.pop()
                if stop - s > 1e-12 * max(1.0, abs(s)):
                    a, k, q, h = march(rhs, s, stop, a, k, q, Q, h, prepare=prepare, **kw)
                    s = stop
            a, k, q, h = march(rhs, s, s_out, a, k, q, Q, h, prepare=prepare, **kw)
            ready.clear()
            s = s_out
            if j > 0 and bool(g[j].any()):
                a = a + g[j].reshape(1, -1)
                k, q = rhs(s, a)
                tally.nfe += 1
        return (a + g[0].reshape(1, -1)).view(shape), tuple(Q) if Q is not None else ()

    def _checkpointed(self, g: torch.Tensor, tally: Tally):
        """Backprop through one recomputed step at a time, last step first.

        The forward kept the state at the start of every accepted step; each step is
        recomputed under autograd from that checkpoint (6 evaluations, 7 when an output is
        read off its dense output) and differentiated with one ``autograd.grad`` call.  The
        result is the exact gradient of the discrete forward solution, as with ``direct``,
        while only one step's graph is alive at a time.

        With ``max_checkpoints`` the forward kept at most that many states (every
        ``stride``-th step, the stride doubling as the solve grows); the steps between two
        of them are replayed without a graph by recursive bisection, so memory stays
        ``max_checkpoints + log2(stride)`` states whatever the step count, for about
        ``log2(stride) / 2`` extra forward replays per step (counted in ``nfe_backward``).
        """
        starts, steps, zs, _, _ = self.dense
        times, params = self.times, self.params
        shape = g.shape[1:]
        field, dtype, device = self.field, self.dtype, self.device
        scalar = torch.scalar_tensor
        n_steps = len(starts)

        def rhs(s: float, z: torch.Tensor):
            return field(scalar(s, dtype=dtype, device=device), z.view(shape)).reshape(1, -1), None

        # outputs per step: index j of times[j] inside step n (start < t < end), or at its end
        inside: dict[int, list[int]] = {}
        at_end: dict[int, list[int]] = {}
        n = 0
        for j in range(1, len(times) - 1):
            t = times[j]
            while n < n_steps - 1 and starts[n + 1] <= t:
                n += 1
            end = starts[n] + steps[n]
            if t == starts[n] and n > 0:
                at_end.setdefault(n - 1, []).append(j)
            elif t == end:
                at_end.setdefault(n, []).append(j)
            else:
                inside.setdefault(n, []).append(j)
        state = {"a": g[-1].reshape(1, -1)}
        Q = [torch.zeros_like(p) for p in params] if params else None
        inputs_tail = tuple(params)
        grad = torch.autograd.grad
        C = self.compiled
        if C is not None:
            by_id = {id(p): name for name, p in field.named_parameters()}
            names = tuple(by_id[id(p)] for p in params)

        def s_after(n: int) -> float:
            return times[-1] if n == n_steps - 1 else starts[n + 1]

        def back_step(n: int, z_n: torch.Tensor) -> None:
            """Backprop through step ``n`` from its start ``z_n``; updates ``a`` and ``Q``."""
            a = state["a"]
            for j in at_end.get(n, ()):
                a = a + g[j].reshape(1, -1)
            s, h = starts[n], steps[n]
            outs_j = inside.get(n, ())
            if C is not None and not outs_j:
                got = C.step_vjp(field, names, params, s, h, z_n, a)
                if got is not None:
                    tally.nfe += 6
                    tally.attempts += 1
                    state["a"] = got[0]
                    if Q is not None:
                        torch._foreach_add_(Q, list(got[1]))
                    return
            z = z_n.detach().requires_grad_(True)
            z1, ks, K6, r5 = step_again(rhs, s, h, s_after(n), z, with_last=bool(outs_j))
            tally.nfe += len(ks)
            tally.attempts += 1
            outputs, cotangents = [z1], [a]
            for j in outs_j:
                outputs.append(dense_eval((times[j] - s) / h, h, z, z1, ks[0], ks[6], r5))
                cotangents.append(g[j].reshape(1, -1))
            gs = grad(outputs, (z, *inputs_tail), cotangents, allow_unused=True)
            state["a"] = gs[0] if gs[0] is not None else torch.zeros_like(a)
            if Q is not None:
                torch._foreach_add_(Q, [x if x is not None else torch.zeros_like(p) for x, p in zip(gs[1:], params)])

        def replay(i: int, m: int, z: torch.Tensor) -> torch.Tensor:
            """The state at the start of step ``m`` from the one at step ``i`` (no graph)."""
            with torch.no_grad():
                for n in range(i, m):
                    z = step_again(rhs, starts[n], steps[n], s_after(n), z)[0]
                    tally.nfe += 6
            return z

        def back_range(i: int, j: int, z_i: torch.Tensor) -> None:
            """Steps ``j-1 ... i`` given the state at ``i``, by recursive bisection: memory
            O(log(j - i)) states, each step replayed O(log(j - i)) times."""
            if j - i == 1:
                back_step(i, z_i)
                return
            m = (i + j) // 2
            back_range(m, j, replay(i, m, z_i))
            back_range(i, m, z_i)

        if isinstance(zs, dict):  # thinned checkpoints: recompute between them
            marks = sorted(zs) + [n_steps]
            for c in range(len(marks) - 2, -1, -1):
                back_range(marks[c], marks[c + 1], zs[marks[c]])
        else:
            for n in range(n_steps - 1, -1, -1):
                back_step(n, zs[n])
        a = state["a"] + g[0].reshape(1, -1)
        if not bool(torch.isfinite(a).all()):
            self.fail_backward(NonFiniteState, "non-finite values in the adjoint state", -times[0], None, tally)
        return a.view(shape), tuple(Q) if Q is not None else ()


_STAGE_C = DOPRI5.c[1:6]


class AdjointSolve(torch.autograd.Function):
    """``AdjointSolve.apply(problem, y0, *params) -> ys`` of shape ``(T, *y0.shape)``.

    The forward pass solves without recording; ``backward`` runs ``problem.strategy``.
    Errors of the backward solve are :class:`~pyhbnode.solving.errors.SolverError`
    subclasses with ``phase="backward"`` and reach the caller of ``loss.backward()``.
    """

    @staticmethod
    def forward(ctx, problem: Problem, y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        ys, _ = problem.solve(y0.detach(), record=_RECORD[problem.strategy])
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
