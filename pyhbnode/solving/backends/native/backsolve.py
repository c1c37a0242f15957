"""The native :class:`~pyhbnode.solving.adjoints.Backsolve`: the continuous adjoint, the
state re-integrated backward with it (torchdiffeq's ``odeint_adjoint``).

The augmented state ``(y, a)`` is integrated in ``σ = -s`` with the forward loop and step
method; ``y`` restarts from the forward solution and ``a`` jumps by ``dL/dy(t_i)`` at every
output time; the parameters' adjoint ``∫ a ∂F/∂θ`` is a quadrature (never fed back into the
stages), left out of the step control with ``seminorm=True``.  The step-attempt budget
``max_steps`` applies to each output interval of the backward solve (as torchdiffeq's
``max_num_steps`` does), so a fine output grid does not exhaust it.
"""

from __future__ import annotations

import torch

from ...errors import NonFiniteState
from .dopri5 import Dopri5
from .field import row_vjp
from .forward import first_step
from .integrate import Counter, StepFailure, integrate, run_to
from .problem import Problem

__all__ = ["backsolve_backward"]


def backsolve_backward(prob: Problem, ys: torch.Tensor, g: torch.Tensor, counter: Counter):
    """``(dL/dy0, (dL/dθ_i)_i)`` from the forward states ``ys`` and their cotangents ``g``."""
    vjp = row_vjp(prob.field, prob.params, prob.dtype, prob.device, prob.direction)
    times, shape = prob.times, prob.shape
    n = ys[0].numel()
    cat = torch.cat
    m = prob.method
    method = Dopri5(m.tableau, rtol=m.rtol, atol=m.atol, groups=2)
    controller = prob.controller.start(m.tableau.order)

    def rhs(sigma: float, z: torch.Tensor):
        y = z[:, :n].view(shape).detach()
        f, vy, vq = vjp(-sigma, y, z[:, n:].view(shape))
        dz = cat((f.detach().reshape(1, -1), vy.reshape(1, -1)), dim=1)
        dz[:, :n].neg_()
        return dz, vq

    z = cat((ys[-1].reshape(1, -1), g[-1].reshape(1, -1)), dim=1)
    sigma = -times[-1]
    try:
        k, q = rhs(sigma, z)
        counter.nfe += 1
        if not bool(torch.isfinite(k).all()):
            raise StepFailure(
                NonFiniteState, "non-finite values in the adjoint's derivative at the final time", sigma, None
            )
        Q = [torch.zeros_like(x) for x in q] if q is not None else None
        h = first_step(method, controller, rhs, sigma, -times[0], z, k, counter)
        for j in range(len(times) - 2, -1, -1):
            budget = counter.attempts + prob.max_steps  # max_steps per output interval
            z, k, q, h = run_to(
                integrate(
                    method,
                    rhs,
                    sigma,
                    -times[j],
                    z,
                    k,
                    h,
                    controller=controller,
                    counter=counter,
                    max_steps=budget,
                    q=q,
                    Q=Q,
                    quad_norm=not prob.seminorm,
                )
            )
            sigma = -times[j]
            if j > 0:  # restart y from the forward solution, add the output's gradient
                a = z[:, n:].add(g[j].reshape(1, -1))
                z = cat((ys[j].reshape(1, -1), a), dim=1)
                k, q = rhs(sigma, z)
                counter.nfe += 1
    except StepFailure as f:
        raise prob.fail(f, "backward", counter.nfe) from None
    gy0 = z[:, n:].add(g[0].reshape(1, -1)).view(shape)
    return gy0.detach(), tuple(x.detach() for x in Q) if Q is not None else ()
