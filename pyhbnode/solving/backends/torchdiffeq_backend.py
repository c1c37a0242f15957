"""The ``torchdiffeq`` backend: torchdiffeq's solvers and its ``odeint_adjoint``."""
from __future__ import annotations

import torch
from torch import nn

from ..counting import CountingField
from ..errors import MaxStepsExceeded, StepSizeUnderflow
from ..options import SolverOptions
from ..solution import SolverStats, Status
from .base import Backend

__all__ = ["TorchDiffEqBackend"]

# Field evaluations per step attempt; with FSAL, dopri5 costs 6 per step plus 2 at start-up.
EVALS_PER_STEP = {
    "dopri5": 6, "bosh3": 3, "fehlberg2": 3, "adaptive_heun": 2, "dopri8": 13,
    "euler": 1, "midpoint": 2, "heun3": 3, "rk4": 4,
}
ADAPTIVE = {"dopri5", "bosh3", "fehlberg2", "adaptive_heun", "dopri8"}
STARTUP_EVALS = 2


class TorchDiffEqBackend(Backend):
    name = "torchdiffeq"
    # "checkpointed" runs as "direct" here (the same gradient) until the torchdiffeq branch's
    # replay lands; on merge, take that branch's version of this file
    adjoints = ("checkpointed", "backsolve", "direct")
    methods = tuple(EVALS_PER_STEP)

    def solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        import torchdiffeq

        per_step = EVALS_PER_STEP[options.method]
        counted = CountingField(field, stats, nfe_limit=per_step * options.max_steps + STARTUP_EVALS)
        solver_options = {"max_num_steps": options.max_steps} if options.method in ADAPTIVE else {}
        common = dict(rtol=options.rtol, atol=options.atol, method=options.method, options=solver_options)
        try:
            if getattr(options.adjoint, "name", options.adjoint) in ("direct", "checkpointed"):
                ys = torchdiffeq.odeint(counted, y0, t, **common)
                if ys.requires_grad:
                    # Backprop through the solver differentiates every recorded evaluation once.
                    def _count_backward(grad: torch.Tensor) -> None:
                        stats.nfe_backward = stats.nfe_forward

                    ys.register_hook(_count_backward)
            else:
                adjoint_options = dict(solver_options)
                if options.seminorm:
                    adjoint_options["norm"] = "seminorm"
                ys = torchdiffeq.odeint_adjoint(
                    counted, y0, t, **common,
                    adjoint_rtol=options.rtol, adjoint_atol=options.atol,
                    adjoint_options=adjoint_options,
                    adjoint_params=tuple(p for p in field.parameters() if p.requires_grad),
                )
        except AssertionError as err:  # torchdiffeq reports solver failures by assert
            msg = str(err)
            kwargs = dict(phase="forward", t=counted.time_reached, nfe_forward=stats.nfe_forward)
            if "underflow in dt" in msg:
                raise StepSizeUnderflow("step size underflow (" + msg + ")", **kwargs) from err
            if "max_num_steps" in msg:
                raise MaxStepsExceeded(
                    f"more than {options.max_steps} steps in one output interval", **kwargs
                ) from err
            raise
        counted.start_backward()
        if options.method in ADAPTIVE:
            stats.steps = max(0, (stats.nfe_forward - STARTUP_EVALS) // per_step)
        stats.status = Status.SUCCESS
        return ys
