"""The Julia backend (DifferentialEquations.jl DP5 + SciMLSensitivity adjoints), loaded lazily.

Importing this package imports neither juliacall nor torch: :func:`available` decides
without starting Julia (see :mod:`.detect`), and everything else is imported on first use.

* :func:`available` -> ``(ok, reason)``;
* :func:`load_backend` -> the :class:`~pyhbnode.julia.bridge.JuliaBackend` (starts Julia),
  or :class:`~pyhbnode.JuliaBackendUnavailable` with install advice;
* :func:`warmup` JITs one model once (first call per structure/dtype/device compiles);
* ``python -m pyhbnode.julia install`` resolves, installs and precompiles the Julia side.

The Julia package ``PyHBNODEBridge`` ships inside this package (``julia/PyHBNODEBridge``)
and is declared in ``pyhbnode/juliapkg.json``, so juliacall installs it on first use.
"""
from __future__ import annotations

from pathlib import Path

from .detect import available, mode, reset

__all__ = ["available", "load_backend", "warmup", "mode", "reset", "BRIDGE_DIR", "JULIAPKG_JSON"]

BRIDGE_DIR = Path(__file__).resolve().parent / "PyHBNODEBridge"
JULIAPKG_JSON = Path(__file__).resolve().parent.parent / "juliapkg.json"


def load_backend():
    """The julia backend; raises :class:`~pyhbnode.JuliaBackendUnavailable` (an
    ``ImportError``) within seconds when Julia is not usable, with install advice."""
    from ..solving.errors import JuliaBackendUnavailable

    ok, reason = available()
    if not ok:
        raise JuliaBackendUnavailable(f"backend='julia' is unavailable: {reason}")
    from .bridge import JuliaBackend
    from .runtime import get_runtime

    return JuliaBackend(get_runtime())


def warmup(field, y0, *, adjoint: str = "interpolating", t=(0.0, 0.1), rtol: float = 1e-4,
           atol: float = 1e-4) -> dict:
    """JIT-compile ``field`` for ``y0``'s structure, dtype and device with one tiny forward
    and backward solve; returns the seconds each took.

    ``y0`` is an example state (any batch size: batch size never recompiles).  Call it once
    before timing or training; the first call per (field structure, dtype, CPU/GPU,
    adjoint) compiles, later ones run at full speed."""
    import time

    import torch

    from ..solving import odeint

    y0 = y0.detach()[:1].clone().requires_grad_(True)
    ts = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
    start = time.perf_counter()
    sol = odeint(field, y0, ts, backend="julia", adjoint=adjoint, rtol=rtol, atol=atol)
    mid = time.perf_counter()
    params = [q for q in field.parameters() if q.requires_grad]
    with torch.autograd.set_multithreading_enabled(False):  # keep Julia on this thread
        torch.autograd.grad(sol.ys.sum(), [y0, *params], allow_unused=True)
    end = time.perf_counter()
    return {"forward_s": mid - start, "backward_s": end - mid}
