"""Timing helpers shared by the benchmarks.

The machine these run on is shared and noisy, so every comparison is *interleaved*: the
reference (torchdiffeq) and the candidate (native ``torch`` backend) alternate iteration by
iteration, each on its own copy of the same model and optimiser, and the field's own cost
(``t_f``: one evaluation; ``t_vjp``: one evaluation with autograd plus one vector–Jacobian
product w.r.t. the state and all trainable parameters, which is what one backward NFE
costs) is measured right after every iteration pair.  Reported numbers are medians over
iterations of per-iteration values.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field as dc_field
from typing import Callable

import torch
from torch import nn

from pyhbnode import record
from pyhbnode.layers import set_solver_options

__all__ = ["Variant", "REFERENCE", "CANDIDATE", "NATIVE_BACKSOLVE_SEMINORM", "NATIVE_BACKSOLVE", "field_costs", "Run", "interleave",
           "median", "ratio_of_medians_paired"]


@dataclass(frozen=True)
class Variant:
    """A backend and gradient mode as the benchmark runs it."""

    label: str
    backend: str
    adjoint: str
    seminorm: bool

    def options(self) -> dict:
        return dict(backend=self.backend, adjoint=self.adjoint, seminorm=self.seminorm)


# The reference as the authors' code uses it: torchdiffeq dopri5 + odeint_adjoint, no seminorm.
REFERENCE = Variant("torchdiffeq backsolve", "torchdiffeq", "backsolve", False)
# The native backend's recommended training mode: exact discrete gradient, fewest NFE.
CANDIDATE = Variant("torch checkpointed", "torch", "checkpointed", True)
NATIVE_BACKSOLVE_SEMINORM = Variant("torch backsolve+seminorm", "torch", "backsolve", True)
NATIVE_BACKSOLVE = Variant("torch backsolve", "torch", "backsolve", False)


def median(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def field_costs(field: nn.Module, y: torch.Tensor, reps: int = 20) -> tuple[float, float]:
    """``(t_f, t_vjp)`` in seconds: medians over ``reps`` timed calls of ``field`` at ``y``.

    ``t_vjp`` times ``field(t, y)`` under autograd plus ``torch.autograd.grad`` w.r.t.
    ``(y, *trainable parameters)`` with a random cotangent: the work of one backward NFE.
    """
    params = [p for p in field.parameters() if p.requires_grad]
    t = torch.tensor(0.5, dtype=y.dtype, device=y.device)
    y = y.detach()
    a = torch.randn_like(y)
    tf, tv = [], []
    with torch.no_grad():
        field(t, y)
    for _ in range(reps):
        t0 = time.process_time()
        with torch.no_grad():
            field(t, y)
        tf.append(time.process_time() - t0)
    for _ in range(reps):
        t0 = time.process_time()
        yy = y.clone().requires_grad_()
        out = field(t, yy)
        torch.autograd.grad(out, (yy, *params), a, allow_unused=True)
        tv.append(time.process_time() - t0)
    return median(tf), median(tv)


@dataclass
class Run:
    """Per-iteration records of one variant."""

    variant: Variant
    times: list = dc_field(default_factory=list)
    nfe_f: list = dc_field(default_factory=list)
    nfe_b: list = dc_field(default_factory=list)
    ideal: list = dc_field(default_factory=list)   # nfe_f * t_f + nfe_b * t_vjp
    losses: list = dc_field(default_factory=list)

    def overhead(self) -> float:
        return median([t / i for t, i in zip(self.times, self.ideal) if i > 0])

    def summary(self) -> dict:
        return dict(
            t_iter_ms=median(self.times) * 1e3,
            nfe_f=statistics.fmean(self.nfe_f) if self.nfe_f else float("nan"),
            nfe_b=statistics.fmean(self.nfe_b) if self.nfe_b else float("nan"),
            overhead=self.overhead(),
            loss=self.losses[-1] if self.losses else float("nan"),
        )


def interleave(
    model: nn.Module,
    variants: list[Variant],
    step: Callable[[nn.Module, torch.optim.Optimizer, int], float],
    make_opt: Callable[[nn.Module], torch.optim.Optimizer],
    probe: Callable[[nn.Module, int], tuple[nn.Module, torch.Tensor]],
    iters: int,
    warmup: int = 1,
    **solver_options,
) -> list[Run]:
    """Train one copy of ``model`` per variant, alternating iterations, and record them.

    ``step(model, opt, i) -> loss`` runs one training iteration on batch ``i``;
    ``probe(model, i) -> (field, y)`` gives the field as the solver sees it and a state at
    which to time it.  The order within each pair alternates to cancel order effects.
    """
    copies = []
    for v in variants:
        m = copy.deepcopy(model)
        set_solver_options(m, **v.options(), **solver_options)
        copies.append((m, make_opt(m), Run(v)))
    for i in range(warmup + iters):
        order = copies if i % 2 == 0 else copies[::-1]
        for m, opt, run in order:
            t0 = time.process_time()
            with record() as solves:
                loss = step(m, opt, i)
            dt = time.process_time() - t0
            if i < warmup:
                continue
            st = solves.stats
            run.times.append(dt)
            run.nfe_f.append(st.nfe_forward)
            run.nfe_b.append(st.nfe_backward)
            run.losses.append(loss)
            f, y = probe(m, i)
            t_f, t_v = field_costs(f, y)
            run.ideal.append(st.nfe_forward * t_f + st.nfe_backward * t_v)
    return [run for _, _, run in copies]


def ratio_of_medians_paired(a: Run, b: Run) -> float:
    """Median over iterations of ``b.time / a.time`` (adjacent iterations, same load)."""
    return median([tb / ta for ta, tb in zip(a.times, b.times)])
