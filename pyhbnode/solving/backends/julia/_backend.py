"""The ``julia`` backend: one ``torch.autograd.Function`` around a Julia DP5 solve whose
backward is SciMLSensitivity's ``adjoint_sensitivities``.  CPU tensors, and CUDA tensors
of dense (MLP) fields, solved on that GPU by CUDA.jl (through host copies: ``_runtime``).

Forward: the field is described as a spec + flat parameter vector (:mod:`._spec`), rebuilt
once per structure in Julia, and solved with ``DP5()`` at ``rtol``/``atol``/``maxiters =
max_steps``.  Backward: the trajectory's cotangent goes to Julia, which returns ``du0`` and
``dp``; autograd routes ``dp`` through the differentiable packing to every Parameter
(including ω and χ).  NFE: forward from the solution's ``stats.nf``, backward from the
bridge's counter around the vector field; both land in the same ``SolverStats``.

The backend works with any object providing the runtime API (``build``, ``call``,
``to_julia``, ``to_torch``); tests drive it with a numpy emulation.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ... import errors as E
from ...adjoints import Backsolve, Interpolating
from ...options import SolverOptions
from ...solution import SolverStats, Status
from ..base import Backend
from . import _maps
from ._runtime import require_main_thread
from ._spec import FieldSpec, describe, pack_parameters
from .errors import JuliaBackendError

__all__ = ["JuliaBackend", "solver_error"]

_DTYPES = (torch.float32, torch.float64)


def solver_error(
    retcode: str, *, phase: str, t: float | None, dt: float | None, nfe_forward: int, nfe_backward: int = 0
) -> E.SolverError:
    """The :class:`~pyhbnode.SolverError` for a failed Julia retcode."""
    cls = getattr(E, _maps.retcode_error(retcode))
    return cls(
        f"Julia DP5 stopped with retcode {retcode}",
        phase=phase,
        t=t,
        dt=dt,
        nfe_forward=nfe_forward,
        nfe_backward=nfe_backward,
    )


def _float_or_none(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def julia_device(device: torch.device, spec: FieldSpec) -> str:
    """Where the bridge solves a state on ``device``: ``"cpu"`` or ``"cuda:N"``.

    Raises ``TypeError`` for other devices and ``ValueError`` for a convolutional field on
    a GPU (NNlib's GPU convolutions need cuDNN, which the bridge does not pin)."""
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise TypeError(
            f"the julia backend solves CPU and CUDA tensors, got y0 on {device}; move the model and "
            "data to the CPU (or a CUDA device), or use backend='torch'"
        )
    convs = [d.get("key", "?") for d in spec.data["net"] if d.get("kind") == "conv"]
    if convs:
        raise ValueError(
            f"the julia backend runs convolutional fields on the CPU only (layers {convs}: on the GPU "
            "NNlib needs cuDNN, which PyHBNODEBridge does not pin); dense (MLP) fields run on CUDA. "
            "Move the model and data to the CPU, or use backend='torch' on the GPU"
        )
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index}"


def _params_to_julia(rt: Any, p: torch.Tensor) -> Any:
    """The flat parameter vector for Julia; ``None`` for a field without parameters."""
    return rt.to_julia(p) if p.numel() else None


class _Call:
    """One solve: what the forward sends to Julia and what the backward needs back."""

    def __init__(
        self,
        backend: JuliaBackend,
        handle: Any,
        spec: FieldSpec,
        adjoint: str,
        options: SolverOptions,
        stats: SolverStats,
        y0: torch.Tensor,
        t: torch.Tensor,
    ) -> None:
        self.backend, self.rt, self.handle, self.spec = backend, backend.runtime, handle, spec
        self.adjoint, self.options, self.stats = adjoint, options, stats
        self.shape, self.n_times = tuple(y0.shape), int(t.numel())
        self.device, self.julia_device = y0.device, julia_device(y0.device, spec)
        self.result: Any = None

    def forward(self, y0: torch.Tensor, p: torch.Tensor, t: torch.Tensor, keep: bool) -> torch.Tensor:
        rt, o, stats = self.rt, self.options, self.stats
        usize = tuple(reversed(self.shape))
        res = rt.call(
            "forward",
            self.handle,
            rt.to_julia(y0),
            usize,
            _params_to_julia(rt, p),
            rt.to_julia(t.detach()),
            rtol=float(o.rtol),
            atol=float(o.atol),
            maxiters=int(o.max_steps),
            sensealg=self.adjoint,
            seminorm=bool(o.seminorm),
            keep=bool(keep),
            device=self.julia_device,
            phase="forward",
        )
        stats.nfe_forward = int(res.nf)
        stats.accepted, stats.rejected = int(res.naccept), int(res.nreject)
        stats.steps = stats.accepted + stats.rejected
        self.backend.last_info = {
            "retcode": str(res.retcode),
            "nf": int(res.nf),
            "counter_forward": int(res.counter),
            "sensealg": self.adjoint,
            "device": self.julia_device,
        }
        if not bool(res.success):
            err = solver_error(
                str(res.retcode),
                phase="forward",
                t=_float_or_none(res.t_reached),
                dt=_float_or_none(res.dt_last),
                nfe_forward=stats.nfe_forward,
            )
            stats.status = err.status
            raise err
        stats.status = Status.SUCCESS
        ys = rt.to_torch(res.ys, (self.n_times, *self.shape), self.device)
        self.result = res if keep else None
        return ys

    def backward(self, grad_ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        require_main_thread("the backward pass of a julia solve")
        if self.result is None:
            raise RuntimeError("the julia solve kept no forward solution to differentiate")
        rt, stats = self.rt, self.stats
        back = rt.call("backward", self.result, rt.to_julia(grad_ys), phase="backward")
        nfe = int(back.nfe)
        stats.nfe_backward += nfe
        self.backend.last_info["nfe_backward"] = nfe
        kwargs: dict[str, Any] = dict(phase="backward", nfe_forward=stats.nfe_forward, nfe_backward=stats.nfe_backward)
        if bool(back.hit_maxiters) or not bool(back.reached_t0):
            cause = (
                f"it reached maxiters = max_steps = {self.options.max_steps}"
                if bool(back.hit_maxiters)
                else f"maxiters = max_steps = {self.options.max_steps}, step size underflow, instability "
                "or NaN: some DiffEqBase versions do not report which"
            )
            raise E.AdjointFailure(
                f"the adjoint solve stopped before reaching t0 ({cause}); its gradient would be wrong",
                **kwargs,
            )
        if not bool(back.finite):
            raise E.AdjointFailure("the adjoint produced non-finite du0 or dp (NaN/Inf)", **kwargs)
        dy0 = rt.to_torch(back.du0, self.shape, self.device)
        if self.spec.n_params:
            dp = rt.to_torch(back.dp, (self.spec.n_params,), self.device)
        else:
            dp = dy0.new_zeros(0)
        return dy0, dp


class _JuliaSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y0: torch.Tensor, p: torch.Tensor, t: torch.Tensor, call: _Call) -> torch.Tensor:
        ys = call.forward(y0, p, t, keep=True)
        ctx.call = call
        return ys

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ys: torch.Tensor):
        dy0, dp = ctx.call.backward(grad_ys.contiguous())
        return (
            dy0 if ctx.needs_input_grad[0] else None,
            dp if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


class JuliaBackend(Backend):
    """``backend="julia"``: OrdinaryDiffEq's DP5 + SciMLSensitivity adjoints, on the CPU or,
    for dense fields, on the CUDA device of the state.

    Gradient modes (``adjoint=``, a name or an ``Adjoint`` object with that ``name``):
    ``"backsolve"`` (``BacksolveAdjoint``) and ``"interpolating"``
    (``InterpolatingAdjoint`` on a dense forward solve); see :data:`_maps.ADJOINTS`.  The
    project-wide default ``"checkpointed"`` and ``"direct"`` are not offered (they
    differentiate the discrete solver's operations): they raise ``ValueError`` naming the
    two modes, so pass ``adjoint="backsolve"`` or ``"interpolating"``; ``backend="auto"``
    picks julia only for those two.  ``method`` must be ``"dopri5"``.  ``seminorm`` drops the parameter adjoint
    from the adjoint's error norm.
    """

    name = "julia"
    methods = ("dopri5",)

    def __init__(self, runtime: Any = None, *, layout_check: bool | None = None) -> None:
        self._runtime = runtime
        if layout_check is None:
            layout_check = os.environ.get("PYHBNODE_JULIA_LAYOUT_CHECK", "1") not in ("0", "no", "off")
        self.layout_check = layout_check
        self._checked: set[tuple[str, str, str]] = set()  # (spec, dtype, device)
        self.last_info: dict = {}

    @property
    def modes(self):
        # both modes are one call into the bridge; the mode's name selects the sensealg there
        return dict.fromkeys((Backsolve, Interpolating), self._solve)

    @property
    def runtime(self):
        if self._runtime is None:
            from ._runtime import get_runtime

            self._runtime = get_runtime()
        return self._runtime

    def check_options(self, options: SolverOptions) -> None:
        _maps.adjoint_name(options.adjoint)  # its own message: which modes julia has and why
        if options.method not in self.methods:
            raise ValueError(f"backend 'julia' has no method {options.method!r}; it solves with DP5 (method='dopri5')")
        super().check_options(options)  # controllers and compile are the torch backend's

    def _solve(
        self, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: SolverOptions, stats: SolverStats
    ) -> torch.Tensor:
        adjoint = _maps.adjoint_name(options.adjoint)
        if y0.dtype not in _DTYPES:
            raise TypeError(f"the julia backend solves float32 or float64 states, got {y0.dtype}")
        if y0.dim() < 2:
            raise ValueError(
                f"the julia backend needs a batched state (batch, features...), got shape {tuple(y0.shape)}"
            )
        spec = describe(field)  # NotTranslatableError before any Julia work
        device = julia_device(y0.device, spec)
        if t.device != y0.device:
            raise TypeError(f"t is on {t.device} but y0 is on {y0.device}: put both on one device")
        p = pack_parameters(spec, like=y0)
        if p.numel() and (p.dtype != y0.dtype or p.device != y0.device):
            raise TypeError(f"field parameters are {p.dtype} on {p.device} but y0 is {y0.dtype} on {y0.device}")
        if t.dtype != y0.dtype:
            raise TypeError(f"t has dtype {t.dtype} but y0 has {y0.dtype}")
        if t.requires_grad and torch.is_grad_enabled():
            raise ValueError(
                "the julia backend does not differentiate with respect to the output times t; "
                "pass t without requires_grad or use backend='torchdiffeq'"
            )
        rt = self.runtime
        require_main_thread("a julia solve")
        if device != "cpu":
            rt.load_cuda()
        handle = rt.build(spec.json)
        key = (spec.json, str(y0.dtype), device)
        if self.layout_check and key not in self._checked:
            self._check_layout(field, handle, y0, p, t, device)
            self._checked.add(key)
        call = _Call(self, handle, spec, adjoint, options, stats, y0, t)
        if torch.is_grad_enabled() and (y0.requires_grad or p.requires_grad):
            return _JuliaSolve.apply(y0, p, t, call)
        return call.forward(y0, p, t, keep=False)

    def rhs(self, field: nn.Module, t: float, y: torch.Tensor) -> torch.Tensor:
        """One evaluation of the Julia-built field at ``(t, y)``, in torch layout."""
        spec = describe(field)
        rt = self.runtime
        handle = rt.build(spec.json)
        p = pack_parameters(spec, like=y).detach()
        device = julia_device(y.device, spec)
        if device != "cpu":
            rt.load_cuda()
        out = rt.call(
            "rhs",
            handle,
            rt.to_julia(y),
            tuple(reversed(y.shape)),
            _params_to_julia(rt, p),
            float(t),
            device=device,
            phase="rhs",
        )
        return rt.to_torch(out, tuple(y.shape), y.device)

    def _check_layout(
        self, field: nn.Module, handle: Any, y0: torch.Tensor, p: torch.Tensor, t: torch.Tensor, device: str
    ) -> None:
        """Once per (structure, dtype): Julia's RHS must equal torch's at (t0, y0)."""
        y = y0.detach()[: min(2, y0.shape[0])].contiguous()
        t0 = t.detach()[0]
        with torch.no_grad():
            ref = field(t0, y)
        rt = self.runtime
        out = rt.call(
            "rhs",
            handle,
            rt.to_julia(y),
            tuple(reversed(y.shape)),
            _params_to_julia(rt, p.detach()),
            float(t0),
            device=device,
            phase="layout check",
        )
        got = rt.to_torch(out, tuple(y.shape), y.device)
        scale = max(1.0, float(ref.abs().max()))
        tol = (1e-10 if y0.dtype == torch.float64 else 1e-4) * scale
        err = float((got - ref).abs().max())
        if not err <= tol:
            raise JuliaBackendError(
                f"layout check failed: the Julia-built {type(field).__name__} differs from torch by "
                f"{err:.3g} (> {tol:.1g}) at t0 for a state of shape {tuple(y.shape)}. This is a "
                "bridge bug; please report it with the field's repr. Use backend='torchdiffeq' meanwhile."
            )
