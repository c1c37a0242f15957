"""The Dormand–Prince 5(4) step method: one step as a pure function, plus its dense output.

Written for speed on small states, where a solver's cost is the number of tensor
operations it dispatches (about 1–2 µs each on a CPU core) rather than their arithmetic:

* a state is one row ``(1, N)``; the field sees it viewed to its own shape;
* a stage input ``z + h Σ a_ij k_j`` is one ``torch.addmm`` of the tableau's coefficient row
  with the concatenated earlier stages (two plain ``add``\\ s for the first stages), and the
  new state and the error estimate share one concatenation, so a step costs ~13 operations
  of solver arithmetic instead of ~30 for one ``add`` per coefficient;
* large states (more than :data:`SMALL` elements) are bandwidth-bound instead, and
  concatenating would copy ``i·N`` floats per stage: they use one in-place ``add`` per
  nonzero coefficient;
* times and step sizes are Python floats; the step returns its error ratio as a 0-d tensor
  and never synchronises with the device (the integrate loop calls ``.item()``).

The same step runs with autograd recording (``adjoint="direct"``, the checkpointed replay:
every operation is out of place, or in place on a fresh tensor) or without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .tableau import DOPRI5_SHAMPINE, Tableau

__all__ = ["RHS", "StepResult", "Dopri5", "SMALL", "dense_weights", "rms"]

# rhs(s, z) -> (k, q): the derivative dz/ds as a row (1, N) and an optional quadrature
# integrand q (a tuple of tensors integrated alongside the state but never fed back into
# the stages; ``None`` when absent).
RHS = Callable[[float, torch.Tensor], "tuple[torch.Tensor, tuple | None]"]

SMALL = 8192  # states up to this many elements combine stages with addmm


@dataclass(slots=True)
class StepResult:
    """What one step of size ``h`` from ``(s, z)`` computed.

    Attributes:
        z: the propagated solution ``z + h Σ b_i k_i`` at ``s + h``, a row ``(1, N)``.
        k: the last stage ``rhs(s + h, z)`` (FSAL: the next step's first stage); ``None``
            when the step was asked for the solution only.
        stages: the first six stages ``(k1, ..., k6)`` (``k1`` is the step's input ``k``).
        K: those six stages concatenated ``(6, N)`` (small states only, else ``None``): the
            dense output and the error estimate reuse it.
        qs: the quadrature integrands of stages 2–7 (``None`` entries when ``rhs`` has none).
        ratio: the error ratio, a 0-d tensor: the RMS (mixed over ``groups``) of the local
            error estimate divided by ``atol + rtol · max(|z_start|, |z_end|)``; the step is
            acceptable when it is ``<= 1``.  ``None`` when no error was estimated.
    """

    z: torch.Tensor
    k: torch.Tensor | None
    stages: tuple
    K: torch.Tensor | None
    qs: tuple
    ratio: torch.Tensor | None


def dense_weights(theta: float) -> tuple[float, float, float, float, float]:
    """Weights ``(w_y0, w_y1, w_hf0, w_hf1, w_r5)`` of the interpolant at ``theta in [0, 1]``.

    Hairer's DOPRI5 dense output ``y0 + θ r2 + θ(1-θ) r3 + θ²(1-θ) r4 + θ²(1-θ)² r5`` with
    ``r2 = y1 - y0``, ``r3 = h f0 - r2``, ``r4 = r2 - h f1 - r3`` and ``r5 = h Σ d_i k_i``,
    rewritten in the five vectors ``y0, y1, h f0, h f1, r5``; 4th-order accurate and
    matching ``y0, y1, f0, f1`` at the ends.
    """
    t1 = 1.0 - theta
    a = theta * t1  # θ(1-θ)
    b = theta * a  # θ²(1-θ)
    return (1.0 - theta + a - 2.0 * b, theta - a + 2.0 * b, a - b, -b, b * t1)


class Dopri5:
    """The step method of a Dormand–Prince 5(4) pair with FSAL and dense output.

    Args:
        tableau: the pair's coefficients; :data:`~.tableau.DOPRI5_SHAMPINE` (default: the
            error weights of torchdiffeq and MATLAB's ode45) or :data:`~.tableau.DOPRI5`
            (Dormand & Prince's own, as Hairer's DOPRI5 and scipy's RK45).
        rtol, atol: tolerances of the error ratio.
        groups: the error norm is the largest RMS over ``groups`` equal slices of the state
            (torchdiffeq's mixed norm over the parts of an augmented state).
        estimate_error: ``False`` skips the error estimate (fixed steps; ``ratio`` is None).
    """

    def __init__(
        self,
        tableau: Tableau = DOPRI5_SHAMPINE,
        *,
        rtol: float = 1e-7,
        atol: float = 1e-9,
        groups: int = 1,
        estimate_error: bool = True,
    ) -> None:
        if tableau.stages != 7 or tableau.b[-1] != 0.0:
            raise ValueError(f"Dopri5 needs a 7-stage FSAL tableau, got {tableau.name!r} with {tableau.stages} stages")
        self.tableau = tableau
        self.rtol, self.atol, self.groups = float(rtol), float(atol), int(groups)
        self.estimate_error = estimate_error
        self._rows: dict = {}

    def rows(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Coefficient rows as tensors ``(A4 (1,3), A5 (1,4), A6 (1,5), B6, E6, D6 (1,6))``."""
        key = (dtype, device)
        got = self._rows.get(key)
        if got is None:
            t = self.tableau
            rows = (t.a[3], t.a[4], t.a[5], t.b[:6], t.e[:6], t.d[:6])
            got = self._rows[key] = tuple(torch.tensor([list(r)], dtype=dtype, device=device) for r in rows)
        return got

    def step(
        self, rhs: RHS, s: float, h: float, z: torch.Tensor, k: torch.Tensor, *, last_stage: bool = True
    ) -> StepResult:
        """One step of size ``h`` from ``z`` at ``s``, whose derivative there is ``k``.

        Five new stages and the solution, then (``last_stage``) the FSAL stage at the new
        state and the error ratio.  ``last_stage=False`` (the checkpointed replay of a step
        whose end derivative is not needed) stops after the solution: ``k`` and ``ratio``
        are ``None``, and the operations up to the solution are the same.

        ``s`` and ``h`` are Python floats eagerly; the compiled programs (:mod:`.compiled`)
        trace this very method with ``s``, ``h`` float64 0-d tensors (graph inputs, so that
        a new step size does not recompile), which :func:`_axpy`/:func:`_addmm` round to the
        state's dtype as the eager ``alpha=`` scalars are rounded.
        """
        tab = self.tableau
        c, a = tab.c, tab.a
        small = z.numel() <= SMALL
        k2, q2 = rhs(s + c[1] * h, _axpy(z, k, h * a[1][0]))
        z3 = _axpy(z, k, h * a[2][0])
        z3 = _axpy(z3, k2, h * a[2][1], inplace=True)
        k3, q3 = rhs(s + c[2] * h, z3)
        if small:
            A4, A5, A6, B6 = self.rows(z.dtype, z.device)[:4]
            cat = torch.cat
            k4, q4 = rhs(s + c[3] * h, _addmm(z, A4, cat((k, k2, k3)), h))
            k5, q5 = rhs(s + c[4] * h, _addmm(z, A5, cat((k, k2, k3, k4)), h))
            k6, q6 = rhs(s + c[5] * h, _addmm(z, A6, cat((k, k2, k3, k4, k5)), h))
            K = cat((k, k2, k3, k4, k5, k6))
            z7 = _addmm(z, B6, K, h)
        else:
            K = None
            k4, q4 = rhs(s + c[3] * h, _combo(z, (k, k2, k3), a[3], h))
            k5, q5 = rhs(s + c[4] * h, _combo(z, (k, k2, k3, k4), a[4], h))
            k6, q6 = rhs(s + c[5] * h, _combo(z, (k, k2, k3, k4, k5), a[5], h))
            z7 = _combo(z, (k, k2, k3, k4, k5, k6), tab.b, h)
        stages = (k, k2, k3, k4, k5, k6)
        if not last_stage:
            return StepResult(z7, None, stages, K, (q2, q3, q4, q5, q6, None), None)
        k7, q7 = rhs(s + c[6] * h, z7)
        ratio = None
        if self.estimate_error:
            if torch.is_grad_enabled():  # the estimate is never differentiated
                with torch.no_grad():
                    ratio = self._ratio(h, z, z7, stages, K, k7)
            else:
                ratio = self._ratio(h, z, z7, stages, K, k7)
        return StepResult(z7, k7, stages, K, (q2, q3, q4, q5, q6, q7), ratio)

    def _ratio(self, h: float, z, z7, stages, K, k7) -> torch.Tensor:
        """The error ratio, fast: the estimate pre-divided by rtol (one operation fewer) and
        normed unscaled.  Either overflows for states near the dtype's largest value (|k|/rtol,
        or a square past 1.8e19 in float32): the loop then asks :meth:`safe_ratio`."""
        e = self.tableau.e
        inv_rtol = 1.0 / self.rtol
        if K is not None:
            err = _addmm(k7, self.rows(z.dtype, z.device)[4], K, h * inv_rtol, beta=h * e[6] * inv_rtol)
        else:
            err = _scale(k7, h * e[6] * inv_rtol)
            # stages holds k1..k6; e[6] weighs k7, added above
            for ci, kk in zip(e, stages, strict=False):
                if ci != 0.0:
                    err = _axpy(err, kk, h * ci * inv_rtol, inplace=True)
        err.div_(torch.maximum(z.abs(), z7.abs()).add_(self.atol * inv_rtol))
        # the norm in the state's dtype, scaled in float64 (a float32 norm widens exactly)
        groups = self.groups
        if groups == 1:
            return torch.linalg.vector_norm(err).double().mul_(1.0 / math.sqrt(err.numel()))
        n = err.numel() // groups
        return torch.linalg.vector_norm(err.view(groups, n), dim=1).max().double().mul_(1.0 / math.sqrt(n))

    def safe_ratio(self, h: float, z: torch.Tensor, step: StepResult) -> torch.Tensor:
        """The error ratio of ``step`` (from ``z``, of size ``h``) without overflow:
        ``(h Σ e_i k_i) / (atol + rtol · max(|z|, |z1|))`` formed before any norm and normed
        by :func:`rms`.  Eager only, for the rare step whose fast ratio is not finite."""
        e = self.tableau.e
        assert step.k is not None  # asked only of full steps (last_stage), which have k7
        with torch.no_grad():
            err = torch.mul(step.k, h * e[6])
            # stages holds k1..k6; e[6] weighs k7, added above
            for ci, kk in zip(e, step.stages, strict=False):
                if ci != 0.0:
                    err.add_(kk, alpha=h * ci)
            tol = torch.maximum(z.abs(), step.z.abs()).mul_(self.rtol).add_(self.atol)
            return rms(err.div_(tol), self.groups)

    def r5(self, h: float, step: StepResult) -> torch.Tensor:
        """Hairer's dense-output correction ``r5 = h Σ d_i k_i`` of an accepted step, a row."""
        d = self.tableau.d
        k7 = step.k
        assert k7 is not None  # asked only of full steps (last_stage), which have k7
        if step.K is not None:
            D6 = self.rows(k7.dtype, k7.device)[5]
            return torch.addmm(k7, D6, step.K, beta=h * d[6], alpha=h)
        out = torch.mul(k7, h * d[6])
        # stages holds k1..k6; d[6] weighs k7, added above
        for ci, kk in zip(d, step.stages, strict=False):
            if ci != 0.0:
                out.add_(kk, alpha=h * ci)
        return out

    @staticmethod
    def interpolate(theta: float, h: float, z0: torch.Tensor, step: StepResult, r5: torch.Tensor) -> torch.Tensor:
        """The dense output at ``s + theta·h`` of the step ``step`` from ``z0`` (a fresh tensor)."""
        w0, w1, w2, w3, w4 = dense_weights(theta)
        assert step.k is not None  # asked only of full steps (last_stage), which have k7
        out = torch.mul(z0, w0)
        out.add_(step.z, alpha=w1).add_(step.stages[0], alpha=w2 * h).add_(step.k, alpha=w3 * h).add_(r5, alpha=w4)
        return out


def rms(x: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """The mixed RMS norm of a row ``(1, N)``: the largest RMS over ``groups`` equal slices,
    a float64 0-d tensor.  Each slice is divided by its largest magnitude before squaring
    (LAPACK's ``nrm2`` scaling): a plain ``vector_norm`` overflows once an element passes
    the square root of the dtype's largest value (1.8e19 in float32)."""
    n = x.numel() // groups
    x = x.view(groups, n)
    m = x.abs().amax(dim=1, keepdim=True).clamp_min_(torch.finfo(x.dtype).tiny)
    norms = torch.linalg.vector_norm(x / m, dim=1).double().mul_(m.view(groups).double())
    return (norms if groups == 1 else norms.max()).mul_(1.0 / math.sqrt(n)).view(())


def _scale(k: torch.Tensor, hc) -> torch.Tensor:
    """``hc · k`` (a fresh tensor); ``hc`` a Python float or a float64 0-d tensor."""
    return torch.mul(k, hc) if isinstance(hc, float) else k * hc.to(k.dtype)


def _axpy(z: torch.Tensor, k: torch.Tensor, hc, inplace: bool = False) -> torch.Tensor:
    """``z + hc · k`` (in place on ``z`` with ``inplace``, for a fresh ``z``).  ``hc`` is a
    Python float (eager: ``alpha=``) or a float64 0-d tensor (traced), rounded to the
    dtype either way."""
    if isinstance(hc, float):
        return z.add_(k, alpha=hc) if inplace else torch.add(z, k, alpha=hc)
    term = k * hc.to(k.dtype)
    return z.add_(term) if inplace else z + term


def _addmm(z: torch.Tensor, row: torch.Tensor, K: torch.Tensor, alpha, beta=1.0) -> torch.Tensor:
    """``beta · z + alpha · (row @ K)`` for a coefficient row ``(1, m)`` and stages ``K (m, N)``.

    Eagerly (Python floats) one ``addmm``; traced (float64 0-d tensors) a weighted sum of
    rows that inductor fuses with its neighbours instead of calling a GEMM per stage."""
    if isinstance(alpha, float):
        return torch.addmm(z, row, K, beta=beta, alpha=alpha)
    dt = z.dtype
    acc = (row.view(-1, 1) * K).sum(0, keepdim=True) * alpha.to(dt)
    return acc + (z if isinstance(beta, float) and beta == 1.0 else z * beta.to(dt))


def _combo(z: torch.Tensor, ks, coeffs, h) -> torch.Tensor:
    """``z + h Σ c_i k_i`` with one in-place add per nonzero coefficient (a fresh tensor)."""
    out = None
    for c, k in zip(coeffs, ks, strict=False):
        if c != 0.0:
            out = _axpy(z, k, h * c) if out is None else _axpy(out, k, h * c, inplace=True)
    return z.clone() if out is None else out
