"""The native :class:`~pyhbnode.solving.adjoints.Checkpointed`: backprop through one
replayed step at a time, last step first.

The forward kept the state at the start of accepted steps (:class:`~.forward.Checkpoints`);
each step is recomputed under autograd from its start with the very step function of the
forward solve (:meth:`~.dopri5.Dopri5.step`: 6 evaluations, 7 when an output is read off
its dense output) and differentiated with one ``autograd.grad`` call — or, with compiled
programs (:mod:`.compiled`) and no output inside the step, by the compiled step VJP.  The result is the
exact gradient of the discrete forward solution, as with ``Direct``, while only one step's
graph is alive.

When fewer states were kept (``max_checkpoints``), the steps between two kept states are
replayed without a graph by recursive bisection: memory ``max_checkpoints + log2(stride)``
states whatever the step count, for about ``log2(stride) / 2`` extra forward replays per
step (counted in ``nfe_backward``).
"""

from __future__ import annotations

import torch

from ...errors import NonFiniteState
from .integrate import Counter
from .problem import Problem

__all__ = ["checkpointed_backward"]


def checkpointed_backward(prob: Problem, g: torch.Tensor, counter: Counter):
    """``(dL/dy0, (dL/dθ_i)_i)`` from the cotangents ``g`` ``(T, *shape)`` of the outputs."""
    traj = prob.trajectory
    assert traj is not None  # the forward solve recorded it
    method, times, params = prob.method, prob.times, prob.params
    starts, steps = traj.starts, traj.steps
    n_steps = len(starts)
    _, rhs = prob.rhs()
    s_final = times[-1]
    grad = torch.autograd.grad

    # outputs per step: index j of times[j] inside step n (start < t < end), or at its end
    inside: dict[int, list[int]] = {}
    at_end: dict[int, list[int]] = {}
    n = 0
    for j in range(1, len(times) - 1):
        t = times[j]
        while n < n_steps - 1 and starts[n + 1] <= t:
            n += 1
        if t == starts[n] and n > 0:
            at_end.setdefault(n - 1, []).append(j)
        elif t == traj.end(n, s_final):
            at_end.setdefault(n, []).append(j)
        else:
            inside.setdefault(n, []).append(j)

    a = g[-1].reshape(1, -1)
    Q = [torch.zeros_like(p) for p in params]
    programs = prob.programs
    if programs is not None:
        by_id = {id(p): name for name, p in prob.field.named_parameters()}
        names = tuple(by_id[id(p)] for p in params)
        detached = tuple(p.detach() for p in params)
        programs.begin()

    def back_step(n: int, z_n: torch.Tensor) -> None:
        """Backprop through step ``n`` from its start ``z_n``: ``a`` and ``Q`` updated."""
        nonlocal a
        for j in at_end.get(n, ()):
            a = a + g[j].reshape(1, -1)
        s, h = starts[n], steps[n]
        outs = inside.get(n, ())
        if programs is not None and not outs:  # the compiled VJP of the whole step
            got = programs.step_vjp(prob.field, names, detached, s, h, z_n, a)
            if got is not None:
                counter.nfe += 6
                counter.attempts += 1
                a = got[0]
                if Q:
                    torch._foreach_add_(Q, list(got[1]))
                return
        z = z_n.detach().requires_grad_(True)
        k, _ = rhs(s, z)
        step = method.step(rhs, s, h, z, k, last_stage=bool(outs))
        counter.nfe += 7 if outs else 6
        counter.attempts += 1
        outputs, cotangents = [step.z], [a]
        if outs:
            r5 = method.r5(h, step)
            for j in outs:
                outputs.append(method.interpolate((times[j] - s) / h, h, z, step, r5))
                cotangents.append(g[j].reshape(1, -1))
        gs = grad(outputs, (z, *params), cotangents, allow_unused=True)
        a = gs[0] if gs[0] is not None else torch.zeros_like(a)
        if Q:
            torch._foreach_add_(
                Q, [x if x is not None else torch.zeros_like(p) for x, p in zip(gs[1:], params, strict=True)]
            )

    def replay(i: int, m: int, z: torch.Tensor) -> torch.Tensor:
        """The state at the start of step ``m`` from the one at step ``i`` (no graph)."""
        with torch.no_grad():
            for n in range(i, m):
                k, _ = rhs(starts[n], z)
                z = method.step(rhs, starts[n], steps[n], z, k, last_stage=False).z
                counter.nfe += 6
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

    kept = traj.checkpoints
    marks = kept.marks() + [n_steps]
    for c in range(len(marks) - 2, -1, -1):
        back_range(marks[c], marks[c + 1], kept.states[marks[c]])
    a = a + g[0].reshape(1, -1)
    if not bool(torch.isfinite(a).all()):
        raise prob.fail_backward(NonFiniteState, "non-finite values in the adjoint state", times[0], counter)
    return a.view(prob.shape), tuple(Q)
